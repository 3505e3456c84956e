//! Property-based fuzzing of the parsers that read what users write: the CSV reader, the run
//! configuration (TOML files and `--set KEY=VALUE`) and the IDX image reader.
//!
//! In the test suite each property runs a short smoke run from a fixed seed (256 cases, seconds).
//! For a long run, raise the case count:
//!
//!     PROPTEST_CASES=200000 cargo test --release --test integration fuzz::
//!
//! Properties: no input makes a parser panic; every error names its origin (and, for CSV, the
//! line; for IDX, the file and byte); an IDX header's sizes, whatever they claim, cost no more
//! memory than the bytes that are there; tables written in any accepted dialect read back exactly; one bad cell is reported at
//! its own line and column, or skipped and counted; configurations round-trip through TOML.

use std::path::Path;

use descent::config::{DataConfig, RunConfig, parse_toml};
use descent::data::DataError;
use descent::data::csv_table::{Columns, CsvOptions, CsvTable, Target, parse_csv};
use descent::data::images::parse_idx;
use descent::regression::CsvSource;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn config() -> ProptestConfig {
    ProptestConfig {
        rng_seed: RngSeed::Fixed(20_261_122),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn read(bytes: &[u8], columns: &Columns, options: &CsvOptions) -> Result<CsvTable, DataError> {
    parse_csv(bytes, Path::new("fuzz.csv"), columns, options)
}

/// Whatever the reader returns is consistent: one row of features per row, finite values, and
/// errors that name the file.
fn check_outcome(result: Result<CsvTable, DataError>) -> Result<(), TestCaseError> {
    match result {
        Ok(table) => {
            prop_assert_eq!(table.x.len(), table.rows * table.features.len());
            prop_assert!(table.rows > 0);
            if let Some(y) = &table.y {
                prop_assert_eq!(y.len(), table.rows);
                prop_assert!(y.iter().all(|v| v.is_finite()));
            }
            prop_assert!(table.x.iter().all(|v| v.is_finite()));
            prop_assert_eq!(table.feature_columns.len(), table.features.len());
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(message.starts_with("fuzz.csv"), "{}", message);
        }
    }
    Ok(())
}

fn delimiters() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![b',', b';', b'\t', b'|', b' '])
}

/// Text made mostly of the characters CSV files and numbers are made of.
fn csv_like() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = b"0123456789.,;-+eE\n\r\" \tanifyNIx|\xef\xbb\xbf".to_vec();
    prop::collection::vec(prop::sample::select(alphabet), 0..300)
}

fn all_but_y() -> Columns {
    Columns { features: None, target: Target::Required("y".into()) }
}

/// A finite f32 of any magnitude.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        -1e3f32..1e3f32,
        any::<f32>().prop_filter("finite", |v| v.is_finite()),
        Just(0.0f32),
        Just(-0.0f32),
    ]
}

/// A table: 1 to 4 features and the target `y`, 1 to 20 rows.
fn table() -> impl Strategy<Value = (usize, Vec<Vec<f32>>)> {
    (1usize..5).prop_flat_map(|features| {
        (Just(features), prop::collection::vec(prop::collection::vec(value(), features + 1), 1..20))
    })
}

/// How a table is written: delimiter, CRLF, a byte-order mark, quotes, spaces, exponents.
#[derive(Clone, Debug)]
struct Dialect {
    delimiter: u8,
    crlf: bool,
    bom: bool,
    quote: bool,
    spaces: bool,
    exponent: bool,
}

fn dialect() -> impl Strategy<Value = Dialect> {
    (
        prop::sample::select(vec![b',', b';', b'\t', b'|']),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(delimiter, crlf, bom, quote, spaces, exponent)| Dialect {
            delimiter,
            crlf,
            bom,
            quote,
            spaces,
            exponent,
        })
}

fn write_table(features: usize, rows: &[Vec<String>], dialect: &Dialect) -> Vec<u8> {
    let delimiter = (dialect.delimiter as char).to_string();
    let end = if dialect.crlf { "\r\n" } else { "\n" };
    let field = |text: &str| {
        let text = if dialect.quote { format!("\"{text}\"") } else { text.to_string() };
        if dialect.spaces && dialect.delimiter != b'\t' { format!(" {text} ") } else { text }
    };
    let mut header: Vec<String> = (0..features).map(|j| field(&format!("x{j}"))).collect();
    header.push(field("y"));
    let mut text = String::new();
    if dialect.bom {
        text.push('\u{feff}');
    }
    text.push_str(&header.join(&delimiter));
    text.push_str(end);
    for row in rows {
        let fields: Vec<String> = row.iter().map(|v| field(v)).collect();
        text.push_str(&fields.join(&delimiter));
        text.push_str(end);
    }
    text.into_bytes()
}

fn formatted(value: f32, exponent: bool) -> String {
    if exponent { format!("{value:e}") } else { value.to_string() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_csv_reader_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        delimiter in delimiters(),
        skip_bad_rows in any::<bool>(),
    ) {
        check_outcome(read(&bytes, &all_but_y(), &CsvOptions { delimiter, skip_bad_rows }))?;
    }

    #[test]
    fn the_csv_reader_never_panics_on_csv_like_text(
        body in csv_like(),
        delimiter in delimiters(),
        skip_bad_rows in any::<bool>(),
        header in prop::sample::select(vec!["a,y\n", "y\n", "a;b;y\n", "x,y,y\n", "\"y\",a\r\n", ""]),
    ) {
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let options = CsvOptions { delimiter, skip_bad_rows };
        check_outcome(read(&bytes, &all_but_y(), &options))?;
        let named = Columns { features: Some(vec!["a".into()]), target: Target::Optional("y".into()) };
        check_outcome(read(&bytes, &named, &options))?;
    }

    #[test]
    fn tables_written_in_any_accepted_dialect_read_back_exactly(
        (features, rows) in table(),
        dialect in dialect(),
    ) {
        let text: Vec<Vec<String>> =
            rows.iter().map(|row| row.iter().map(|&v| formatted(v, dialect.exponent)).collect()).collect();
        let bytes = write_table(features, &text, &dialect);
        let table = read(&bytes, &all_but_y(), &CsvOptions { delimiter: dialect.delimiter, skip_bad_rows: false })
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(table.rows, rows.len());
        let x: Vec<f32> = rows.iter().flat_map(|row| row[..features].iter().copied()).collect();
        let y: Vec<f32> = rows.iter().map(|row| row[features]).collect();
        prop_assert_eq!(table.x, x);
        prop_assert_eq!(table.y, Some(y));
    }

    #[test]
    fn one_bad_cell_is_reported_at_its_line_and_column_or_skipped_and_counted(
        (features, rows) in table(),
        dialect in dialect(),
        at in any::<prop::sample::Index>(),
        column in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec!["abc", "NaN", "inf", "-inf", "", "1e40", "--1", "1.2.3", "0x10", "1,5"]),
    ) {
        let row = at.index(rows.len());
        let column = column.index(features + 1);
        let mut text: Vec<Vec<String>> =
            rows.iter().map(|row| row.iter().map(|&v| formatted(v, dialect.exponent)).collect()).collect();
        // A comma in a cell is a delimiter when the delimiter is a comma: a space then.
        text[row][column] =
            if dialect.delimiter == b',' { bad.replace(',', " ") } else { bad.to_string() };
        let dialect = Dialect { quote: false, ..dialect };
        let bytes = write_table(features, &text, &dialect);
        let line = row as u64 + 2;
        let options = CsvOptions { delimiter: dialect.delimiter, skip_bad_rows: false };
        let message = match read(&bytes, &all_but_y(), &options) {
            Ok(_) => return Err(TestCaseError::fail(format!("`{bad}` was read: {}", String::from_utf8_lossy(&bytes)))),
            Err(error) => error.to_string(),
        };
        let expected = format!("fuzz.csv, line {line}: column {}", column + 1);
        prop_assert!(message.starts_with(&expected), "{} (expected {})", message, expected);

        let skipping = read(&bytes, &all_but_y(), &CsvOptions { skip_bad_rows: true, ..options });
        if rows.len() == 1 {
            prop_assert!(skipping.is_err());
        } else {
            let table = skipping.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(table.rows, rows.len() - 1);
            prop_assert_eq!(table.skipped.count, 1);
            prop_assert_eq!(table.skipped.first_lines, vec![line]);
        }
    }

    #[test]
    fn the_idx_reader_never_panics_on_arbitrary_bytes(
        images in prop::collection::vec(any::<u8>(), 0..64),
        labels in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        check_idx(&images, &labels, None)?;
    }

    #[test]
    fn the_idx_reader_checks_any_header_before_reading(
        count in idx_size(),
        rows in idx_size(),
        columns in idx_size(),
        label_count in idx_size(),
        pixels in prop::collection::vec(any::<u8>(), 0..200),
        label_bytes in prop::collection::vec(0u8..12, 0..20),
    ) {
        let mut images = vec![0, 0, 8, 3];
        for size in [count, rows, columns] {
            images.extend_from_slice(&size.to_be_bytes());
        }
        images.extend_from_slice(&pixels);
        let mut labels = vec![0, 0, 8, 1];
        labels.extend_from_slice(&label_count.to_be_bytes());
        labels.extend_from_slice(&label_bytes);
        check_idx(&images, &labels, Some((count, rows, columns, label_count)))?;
    }

    #[test]
    fn the_config_parser_never_panics_on_arbitrary_text(text in ".{0,300}") {
        config_outcome(&text)?;
    }

    #[test]
    fn the_config_parser_never_panics_on_mutated_configurations(
        base in prop::sample::select(base_configs()),
        at in any::<prop::sample::Index>(),
        cut in 0usize..40,
        insert in prop::sample::select(vec![
            "", "=", "[", "]", "\"", "nan", "inf", "-1", "0", "1e400", "[model]\nname = \"cnn\"\n",
            "[data]\nsource = \"csv\"\n", "init = []\n", "features = []\n", "valid_fraction = 1.0\n",
            "epochs = 0\n", "batch_size = -3\n", "lr = nan\n", "delimiter = \"ab\"\n", "momentum = 2\n",
            "name = \"adam\"\n", "channels = [0]\n", "\u{0}", "é",
        ]),
    ) {
        let text = base.to_toml();
        let start = at.index(text.len() + 1);
        let start = (0..=start).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let end = (start + cut).min(text.len());
        let end = (end..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        let mutated = format!("{}{insert}{}", &text[..start], &text[end..]);
        config_outcome(&mutated)?;
    }

    #[test]
    fn set_never_panics_and_keeps_the_configuration_valid(
        base in prop::sample::select(base_configs()),
        key in prop::sample::select(vec![
            "seed", "device", "data.n", "data.source", "data.path", "data.valid_fraction", "data.features",
            "data.delimiter", "data.target", "model.init", "model.name", "model.channels", "training.epochs",
            "training.batch_size", "optimizer.lr", "optimizer.name", "optimizer.momentum", "optimizer.beta_2",
            "schedule.name", "schedule.warmup_steps", "a.b.c", "", ".", "seed.x",
        ]),
        value in prop_oneof![
            ".{0,20}",
            prop::sample::select(vec!["0", "-1", "1e400", "nan", "inf", "0.5", "[1, 2]", "[]", "true", "\"x\"", "{a = 1}", "adam", "csv"])
                .prop_map(String::from),
        ],
    ) {
        let mut config = base.clone();
        match config.set(&format!("{key}={value}")) {
            Ok(()) => {
                prop_assert!(config.validate().is_ok());
                let back: RunConfig = parse_toml(&config.to_toml(), "round trip")
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(back, config);
            }
            Err(_) => prop_assert_eq!(config, base),
        }
    }
}

/// An IDX size field: small, at the edges of the arithmetic, or anything.
fn idx_size() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..6, Just(1 << 16), Just(1 << 31), Just(u32::MAX), any::<u32>()]
}

/// Read an IDX pair from bytes: it never panics; an error names one of the two files and a byte
/// within (or at the end of) what was there; a success holds exactly the images the header
/// claims (`header`: count, rows, columns, labels), each label a digit.
fn check_idx(
    images: &[u8],
    labels: &[u8],
    header: Option<(u32, u32, u32, u32)>,
) -> Result<(), TestCaseError> {
    let (images_path, labels_path) = (Path::new("images.idx"), Path::new("labels.idx"));
    match parse_idx(images, images_path, labels, labels_path) {
        Ok(set) => {
            prop_assert!(!set.is_empty());
            if let Some((count, rows, columns, label_count)) = header {
                prop_assert_eq!(set.len() as u64, u64::from(count));
                prop_assert_eq!(count, label_count);
                prop_assert_eq!(
                    (set.side() as u64, set.side() as u64),
                    (u64::from(rows), u64::from(columns))
                );
            }
            for i in 0..set.len() {
                prop_assert!(set.label(i) < 10);
                prop_assert!(set.image(i).iter().all(|p| (0.0..=1.0).contains(p)));
            }
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(
                message.starts_with("images.idx, byte") || message.starts_with("labels.idx, byte"),
                "{}",
                message
            );
            let DataError::Binary { path, offset, .. } = &error else {
                return Err(TestCaseError::fail(format!("not a binary-file error: {message}")));
            };
            let length = if path == images_path { images.len() } else { labels.len() };
            prop_assert!(*offset <= length.max(16), "byte {} of a {}-byte file: {}", offset, length, message);
        }
    }
    Ok(())
}

/// Configurations of every kind of run, to mutate.
fn base_configs() -> Vec<RunConfig> {
    let csv = RunConfig {
        data: DataConfig::Csv(CsvSource {
            features: Some(vec!["a".into(), "b".into()]),
            delimiter: ";".into(),
            skip_bad_rows: true,
            ..CsvSource::new("table.csv".into(), "y".into())
        }),
        model: descent::config::ModelConfig::Linear { init: None },
        ..RunConfig::default()
    };
    vec![RunConfig::default(), RunConfig::cnn(), csv]
}

/// Parsing either fails with an error naming the origin, or gives a configuration that, when it
/// validates, writes itself out and reads back equal.
fn config_outcome(text: &str) -> Result<(), TestCaseError> {
    match parse_toml::<RunConfig>(text, "fuzz.toml") {
        Ok(config) => {
            if config.validate().is_ok() {
                let back: RunConfig = parse_toml(&config.to_toml(), "round trip")
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(back, config);
            }
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(message.starts_with("fuzz.toml"), "{}", message);
        }
    }
    Ok(())
}
