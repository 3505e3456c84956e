//! Reading numeric columns of a CSV file: the one CSV reader behind `descent fit`, `--data` for
//! the lesson and `descent predict`.
//!
//! The file streams through a buffered reader one record at a time; only the chosen columns'
//! values are kept, as `f32`. A header row is required. Accepted: any one-byte delimiter, CRLF or
//! LF line ends, a UTF-8 byte-order mark, quoted fields, spaces around fields, scientific
//! notation, blank lines (skipped). Refused, with the file, the line and the column: a row with
//! more or fewer fields than the header, a value that is not a number, NaN or infinity, a number
//! beyond `f32`, an empty field; a missing or duplicated column name; a file with no header or no
//! rows. With [`CsvOptions::skip_bad_rows`] a bad row is skipped and counted instead.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::DataError;
use crate::limits::MAX_CSV_RECORD_BYTES;

/// How many skipped lines [`SkippedRows`] remembers.
pub const REMEMBERED_SKIPPED_LINES: usize = 5;

/// How the file is written and what to do with bad rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field delimiter (`b','` by default).
    pub delimiter: u8,
    /// Skip a ragged row or a row with a bad value in a chosen column, and count it, instead of
    /// stopping at it.
    pub skip_bad_rows: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self { delimiter: b',', skip_bad_rows: false }
    }
}

/// Which columns to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    /// The feature columns, in this order; `None`: every column but the target, in file order.
    pub features: Option<Vec<String>>,
    /// The target column.
    pub target: Target,
}

/// The target column's part in a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every row must have it.
    Required(String),
    /// Read it when the header has it (predictions on labelled rows).
    Optional(String),
    /// No target.
    None,
}

impl Target {
    fn name(&self) -> Option<&str> {
        match self {
            Target::Required(name) | Target::Optional(name) => Some(name),
            Target::None => None,
        }
    }
}

/// The rows skipped under [`CsvOptions::skip_bad_rows`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkippedRows {
    /// How many rows were skipped.
    pub count: u64,
    /// The line numbers of the first few (at most [`REMEMBERED_SKIPPED_LINES`]).
    pub first_lines: Vec<u64>,
    /// Why the first one was skipped.
    pub first_reason: Option<String>,
}

impl SkippedRows {
    fn record(&mut self, line: u64, reason: String) {
        self.count += 1;
        if self.first_lines.len() < REMEMBERED_SKIPPED_LINES {
            self.first_lines.push(line);
        }
        self.first_reason.get_or_insert(reason);
    }

    /// "3 bad rows skipped (lines 4, 9, 12; line 4: ...)", or `None` when none was.
    pub fn describe(&self) -> Option<String> {
        let first = *self.first_lines.first()?;
        let reason = self.first_reason.as_deref().unwrap_or("bad row");
        if self.count == 1 {
            return Some(format!("1 bad row skipped (line {first}: {reason})"));
        }
        let lines: Vec<String> = self.first_lines.iter().map(u64::to_string).collect();
        let more = if self.count > self.first_lines.len() as u64 { ", ..." } else { "" };
        Some(format!(
            "{} bad rows skipped (lines {}{more}; line {first}: {reason})",
            self.count,
            lines.join(", ")
        ))
    }
}

/// The chosen columns of a CSV file, as `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvTable {
    /// The feature columns' names, in the order of [`Self::x`]'s columns.
    pub features: Vec<String>,
    /// The features' 1-based column numbers in the file.
    pub feature_columns: Vec<usize>,
    /// Features, row-major: `rows() * features.len()` values.
    pub x: Vec<f32>,
    /// The target of every row, when a target was read.
    pub y: Option<Vec<f32>>,
    /// Number of rows kept.
    pub rows: usize,
    /// Rows skipped under [`CsvOptions::skip_bad_rows`].
    pub skipped: SkippedRows,
}

impl CsvTable {
    /// Number of rows read.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Read the chosen columns of the CSV file at `path`.
pub fn read_csv(path: &Path, columns: &Columns, options: &CsvOptions) -> Result<CsvTable, DataError> {
    let file = File::open(path).map_err(|source| DataError::Open { path: path.into(), source })?;
    let mut input = std::io::BufReader::with_capacity(1 << 16, file);
    // A picture or an archive given for CSV is named for what it is, not parsed as text. The
    // first bytes are looked at in the buffer, not consumed: a pipe is read once.
    let start = std::io::BufRead::fill_buf(&mut input)
        .map_err(|source| DataError::Open { path: path.into(), source })?;
    if let Some(kind) = super::binary_kind(start) {
        return Err(DataError::Rows {
            path: path.into(),
            message: format!(
                "this is {kind}, not CSV text: expected a header row of column names, then rows of numbers separated by `{}`",
                char::from(options.delimiter)
            ),
        });
    }
    parse_csv(input, path, columns, options)
}

/// Read the chosen columns of CSV text from `input`; errors name `path`.
pub fn parse_csv(
    input: impl Read,
    path: &Path,
    columns: &Columns,
    options: &CsvOptions,
) -> Result<CsvTable, DataError> {
    let input = BoundedRecords::new(input, options.delimiter, MAX_CSV_RECORD_BYTES);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(options.delimiter)
        .trim(csv::Trim::All)
        // Records end at `\n` only; the trim removes the `\r` of CRLF files. The csv crate's
        // default terminator (\r, \n or \r\n) reports the line of the previous record on CRLF
        // files (rust-csv issue #395), which would put every error one line early.
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(input);
    let malformed = |line: u64, message: String| DataError::Malformed { path: path.into(), line, message };
    let io_error = |error: csv::Error| match error.into_kind() {
        csv::ErrorKind::Io(source) => record_too_long(source, path),
        other => malformed(0, format!("{other:?}")),
    };

    let headers: Vec<String> = reader
        .byte_headers()
        .map_err(io_error)?
        .iter()
        .map(|name| String::from_utf8_lossy(&unquoted(name)).into_owned())
        .collect();
    let mut budget = RowBudget::new(path, None)?;
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(DataError::Empty { path: path.into(), what: "no header row".into() });
    }
    let selection = Selection::new(&headers, columns, options.delimiter).map_err(|m| malformed(1, m))?;

    let width = selection.features.len();
    let mut table = CsvTable {
        features: selection.features.iter().map(|&i| headers[i].clone()).collect(),
        feature_columns: selection.features.iter().map(|&i| i + 1).collect(),
        x: Vec::new(),
        y: selection.target.map(|_| Vec::new()),
        rows: 0,
        skipped: SkippedRows::default(),
    };
    let mut record = csv::ByteRecord::new();
    let mut row = Vec::with_capacity(width + 1);
    while reader.read_byte_record(&mut record).map_err(io_error)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record[0].is_empty() && headers.len() > 1 {
            continue; // a blank line
        }
        match selection.values(&record, &headers, &mut row) {
            Ok(()) => {
                budget.add_row(width + usize::from(table.y.is_some()))?;
                table.x.extend_from_slice(&row[..width]);
                if let Some(y) = &mut table.y {
                    y.push(row[width]);
                }
                table.rows += 1;
            }
            Err(message) if options.skip_bad_rows => table.skipped.record(line, message),
            Err(message) => {
                let hint = if options.skip_bad_rows { "" } else { " (--skip-bad-rows skips such rows)" };
                return Err(malformed(line, format!("{message}{hint}")));
            }
        }
    }
    if table.rows == 0 {
        let what = match table.skipped.describe() {
            Some(skipped) => format!("a header and no good rows: {skipped}"),
            None => "a header but no rows".into(),
        };
        return Err(DataError::Empty { path: path.into(), what });
    }
    Ok(table)
}

/// The 0-based indices of the chosen columns in the header.
struct Selection {
    features: Vec<usize>,
    target: Option<usize>,
    delimiter: u8,
}

impl Selection {
    fn new(headers: &[String], columns: &Columns, delimiter: u8) -> Result<Self, String> {
        let found = || found_columns(headers);
        let delimiter_hint = || delimiter_hint(headers, delimiter);
        let index_of = |name: &str| -> Result<usize, String> {
            let mut matches = headers.iter().enumerate().filter(|(_, h)| *h == name).map(|(i, _)| i);
            let first = matches.next().ok_or_else(|| {
                format!("the header has no column `{}` ({}){}", shown(name), found(), delimiter_hint())
            })?;
            if let Some(second) = matches.next() {
                return Err(format!(
                    "the header names `{}` twice (columns {} and {}): column names must be unique",
                    shown(name),
                    first + 1,
                    second + 1
                ));
            }
            Ok(first)
        };
        // Named features first: a missing feature is reported before a missing target.
        let named = match &columns.features {
            Some(names) => {
                if names.is_empty() {
                    return Err("no feature columns were chosen".into());
                }
                for (i, name) in names.iter().enumerate() {
                    if names[..i].contains(name) {
                        return Err(format!("the feature `{}` is chosen twice", shown(name)));
                    }
                    if Some(name.as_str()) == columns.target.name() {
                        return Err(format!("`{}` is the target: it cannot also be a feature", shown(name)));
                    }
                }
                Some(names.iter().map(|name| index_of(name)).collect::<Result<Vec<_>, _>>()?)
            }
            None => None,
        };
        let target = match &columns.target {
            Target::Required(name) => Some(index_of(name)?),
            Target::Optional(name) => {
                headers.iter().any(|h| h == name).then(|| index_of(name)).transpose()?
            }
            Target::None => None,
        };
        let features = match named {
            Some(features) => features,
            None => {
                let features: Vec<usize> = (0..headers.len()).filter(|&i| Some(i) != target).collect();
                if features.is_empty() {
                    return Err(format!(
                        "the header has no column beside the target ({}){}",
                        found(),
                        delimiter_hint()
                    ));
                }
                for &i in &features {
                    if headers[..i].contains(&headers[i]) {
                        return Err(format!(
                            "the header names `{}` twice: column names must be unique",
                            shown(&headers[i])
                        ));
                    }
                }
                features
            }
        };
        Ok(Self { features, target, delimiter })
    }

    /// The chosen values of one record (features, then the target), or why the row is bad.
    fn values(&self, record: &csv::ByteRecord, headers: &[String], row: &mut Vec<f32>) -> Result<(), String> {
        if record.len() != headers.len() {
            return Err(format!("found {} fields, the header has {}", record.len(), headers.len()));
        }
        row.clear();
        for &index in self.features.iter().chain(&self.target) {
            let field = unquoted(&record[index]);
            let field = field.as_ref();
            let value = number(field).map_err(|problem| {
                let text = String::from_utf8_lossy(field);
                let mut value: String = text.chars().take(40).flat_map(char::escape_debug).collect();
                if text.chars().nth(40).is_some() {
                    value.push_str("...");
                }
                let hint = if problem == Problem::NotANumber && self.delimiter != b',' && text.contains(',') {
                    " (decimal commas are not read: write 1.5, not 1,5)"
                } else {
                    ""
                };
                let what = match problem {
                    Problem::Empty => "is empty (a missing value)".to_string(),
                    Problem::NotANumber => format!("`{value}` is not a number{hint}"),
                    Problem::NotFinite => format!("`{value}` is not a finite number"),
                    Problem::TooLarge => format!("`{value}` is beyond the f32 range (±3.4e38)"),
                };
                format!("column {} (`{}`): {what}", index + 1, shown(&headers[index]))
            })?;
            row.push(value);
        }
        Ok(())
    }
}

/// The header's first names, for a message: `found: a,b,c` (and how many in all).
fn found_columns(headers: &[String]) -> String {
    let shown: Vec<String> = headers.iter().take(8).map(|name| shown(name)).collect();
    let more =
        if headers.len() > 8 { format!(", ... {} columns in all", headers.len()) } else { String::new() };
    format!("found: {}{more}", shown.join(","))
}

/// When a comma-delimited header has one column holding another delimiter, a hint to pass
/// `--delimiter`; else nothing.
fn delimiter_hint(headers: &[String], delimiter: u8) -> String {
    if headers.len() == 1 && delimiter == b',' {
        let only = &headers[0];
        let only = only.get(..only.len().min(4096)).unwrap_or(only);
        if let Some(other) = [';', '\t', '|'].iter().find(|c| only.contains(**c)) {
            return format!(" (the header has one column: is the delimiter {other:?}? pass --delimiter)");
        }
    }
    String::new()
}

/// A column name from a file as it is printed: control characters escaped, at most 40
/// characters.
pub fn shown(name: &str) -> String {
    crate::limits::printable(name, 40)
}

/// The values read so far, checked against the memory the process may still allocate every
/// [`RowBudget::CHECK_EVERY`] values: a file of more rows than fit is an error, not an abort.
pub(crate) struct RowBudget {
    path: std::path::PathBuf,
    values: u64,
    next_check: u64,
    /// The most values the file can hold (a value and its separator take two bytes at least),
    /// when it is a regular file: a small file is never asked to fit a whole check's worth.
    most: u64,
}

impl RowBudget {
    /// Values between checks (16 MiB of `f32`); a row holds fewer, being at most one record.
    const CHECK_EVERY: u64 = 1 << 22;

    /// The budget of reading `path`, whose size in bytes is `bytes` when known (else it is
    /// asked of the file, when it is a regular file).
    pub(crate) fn new(path: &Path, bytes: Option<u64>) -> Result<Self, DataError> {
        let bytes = bytes.or_else(|| std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len()));
        let most = bytes.map_or(u64::MAX, |bytes| bytes / 2 + 1);
        let mut budget = Self { path: path.into(), values: 0, next_check: 0, most };
        budget.add_row(0)?;
        Ok(budget)
    }

    /// Count one row of `values` numbers.
    pub(crate) fn add_row(&mut self, values: usize) -> Result<(), DataError> {
        self.values += values as u64;
        if self.values < self.next_check {
            return Ok(());
        }
        self.next_check = self.values + Self::CHECK_EVERY;
        // The values up to the next check (or all the file can hold) must fit, with room for the
        // vectors to double as they grow.
        let bytes = self.next_check.min(self.most.max(self.values)).saturating_mul(4 * 2);
        crate::limits::check_memory(Some(bytes)).map_err(|message| DataError::Rows {
            path: self.path.clone(),
            message: format!(
                "the file is too large to hold in memory: after {} values, reading on {message}",
                self.values
            ),
        })
    }
}

/// Why a record was refused by [`BoundedRecords`]: it is longer than the limit.
#[derive(Debug)]
struct RecordTooLong {
    line: u64,
    limit: u64,
}

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is longer than {}", self.line, crate::limits::Bytes(self.limit))
    }
}

impl std::error::Error for RecordTooLong {}

/// An I/O error of the CSV reader: a record over the limit becomes a [`DataError::Malformed`]
/// at its line; anything else is a read error.
pub(crate) fn record_too_long(source: std::io::Error, path: &Path) -> DataError {
    match source.get_ref().and_then(|inner| inner.downcast_ref::<RecordTooLong>()) {
        Some(too_long) => DataError::Malformed {
            path: path.into(),
            line: too_long.line,
            message: format!(
                "the line (the record starting there) is longer than {}, the most one CSV record may hold",
                crate::limits::Bytes(too_long.limit)
            ),
        },
        None => DataError::Open { path: path.into(), source },
    }
}

/// A reader that fails once one CSV record grows past `limit` bytes, before the CSV parser can
/// buffer it: a file that is one endless line (`/dev/zero`) costs `limit` bytes, not all the
/// memory. It follows the parser's quoting (a `"` at the start of a field opens a quoted field,
/// in which line breaks do not end the record; `""` is a quote inside it), so a record is
/// counted as the parser sees it.
pub(crate) struct BoundedRecords<R> {
    inner: R,
    delimiter: u8,
    limit: u64,
    state: Quoting,
    record_bytes: u64,
    line: u64,
    record_line: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quoting {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl<R: Read> BoundedRecords<R> {
    pub(crate) fn new(inner: R, delimiter: u8, limit: u64) -> Self {
        Self { inner, delimiter, limit, state: Quoting::FieldStart, record_bytes: 0, line: 1, record_line: 1 }
    }
}

impl<R: Read> Read for BoundedRecords<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        for &byte in &buffer[..read] {
            use Quoting::*;
            let ends_record = byte == b'\n' && self.state != Quoted;
            if byte == b'\n' {
                self.line += 1;
            }
            self.state = match (self.state, byte) {
                (_, b'\n') if ends_record => FieldStart,
                (FieldStart, b'"') => Quoted,
                (Quoted, b'"') => QuoteInQuoted,
                (Quoted, _) => Quoted,
                (QuoteInQuoted, b'"') => Quoted,
                (_, byte) if byte == self.delimiter => FieldStart,
                _ => Unquoted,
            };
            if ends_record {
                self.record_bytes = 0;
                self.record_line = self.line;
                continue;
            }
            self.record_bytes += 1;
            if self.record_bytes > self.limit {
                return Err(std::io::Error::other(RecordTooLong {
                    line: self.record_line,
                    limit: self.limit,
                }));
            }
        }
        Ok(read)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Problem {
    Empty,
    NotANumber,
    NotFinite,
    TooLarge,
}

/// A field quoted after a space (`a, "b"`), which the CSV parser keeps as written, without its
/// quotes (and `""` inside as `"`); any other field as it is.
fn unquoted(field: &[u8]) -> Cow<'_, [u8]> {
    match field {
        [b'"', inner @ .., b'"'] if field.len() >= 2 => {
            if inner.windows(2).any(|pair| pair == b"\"\"") {
                Cow::Owned(String::from_utf8_lossy(inner).replace("\"\"", "\"").into_bytes())
            } else {
                Cow::Borrowed(inner)
            }
        }
        _ => Cow::Borrowed(field),
    }
}

/// A field as a finite `f32`.
fn number(field: &[u8]) -> Result<f32, Problem> {
    if field.is_empty() {
        return Err(Problem::Empty);
    }
    let text = std::str::from_utf8(field).map_err(|_| Problem::NotANumber)?;
    // Parsed straight to f32 (correctly rounded, as the value is written); f64 only tells an
    // overflow from an infinity or NaN written out.
    match text.parse::<f32>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) if text.parse::<f64>().is_ok_and(f64::is_finite) => Err(Problem::TooLarge),
        Ok(_) => Err(Problem::NotFinite),
        Err(_) => Err(Problem::NotANumber),
    }
}

/// A delimiter given by name or as one character: `,` `;` `|` `tab` or `\t`, `space`.
pub fn parse_delimiter(text: &str) -> Result<u8, DelimiterError> {
    match text {
        "tab" | "\\t" | "\t" => return Ok(b'\t'),
        "space" | " " => return Ok(b' '),
        _ => {}
    }
    match text.as_bytes() {
        [byte @ (b'.' | b'-' | b'+')] => Err(DelimiterError::InNumbers(char::from(*byte))),
        [b'"'] => Err(DelimiterError::Quote),
        [byte] if byte.is_ascii() && !byte.is_ascii_alphanumeric() && !matches!(byte, b'\n' | b'\r') => {
            Ok(*byte)
        }
        _ => Err(DelimiterError::NotPunctuation(crate::limits::printable(text, 20))),
    }
}

/// Why a delimiter cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DelimiterError {
    /// A character numbers are written with.
    #[error(
        "`{0}` is written inside numbers (1.5, -2, 1e+3), so it cannot separate them: choose another delimiter such as , ; | tab or space"
    )]
    InNumbers(char),
    /// The quote character.
    #[error(
        "`\"` quotes fields, so it cannot separate them: choose another delimiter such as , ; | tab or space"
    )]
    Quote,
    /// Not one ASCII punctuation character (what was given, escaped and cut).
    #[error("expected one ASCII punctuation character such as , ; | or the names tab and space, got `{0}`")]
    NotPunctuation(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, columns: &Columns, options: &CsvOptions) -> Result<CsvTable, DataError> {
        parse_csv(text.as_bytes(), Path::new("t.csv"), columns, options)
    }

    fn all_but(target: &str) -> Columns {
        Columns { features: None, target: Target::Required(target.into()) }
    }

    #[test]
    fn reads_every_accepted_form() {
        let text = "\u{feff}a; \"b\" ;y\r\n 1.5 ;\"-2e3\";  3\r\n\r\n4;+5E-1;\"6\"\r\n";
        let options = CsvOptions { delimiter: b';', ..CsvOptions::default() };
        let table = read(text, &all_but("y"), &options).unwrap();
        assert_eq!(table.features, ["a", "b"]);
        assert_eq!(table.x, [1.5, -2000.0, 4.0, 0.5]);
        assert_eq!(table.y, Some(vec![3.0, 6.0]));
        assert_eq!(table.rows, 2);
    }

    #[test]
    fn chosen_features_in_their_order_and_other_columns_ignored() {
        let text = "name,b,a,y\nfirst,1,2,3\nsecond,4,5,6\n";
        let columns =
            Columns { features: Some(vec!["a".into(), "b".into()]), target: Target::Required("y".into()) };
        let table = read(text, &columns, &CsvOptions::default()).unwrap();
        assert_eq!(table.x, [2.0, 1.0, 5.0, 4.0]);
        assert_eq!(table.feature_columns, [3, 2]);
        // Without --features the text column is a feature, and it is not a number.
        let error = read(text, &all_but("y"), &CsvOptions::default()).unwrap_err().to_string();
        assert_eq!(
            error,
            "t.csv, line 2: column 1 (`name`): `first` is not a number (--skip-bad-rows skips such rows)"
        );
    }

    #[test]
    fn bad_rows_name_the_line_and_column() {
        let cases = [
            ("a,y\n1,2\n3\n", "line 3: found 1 fields, the header has 2"),
            ("a,y\n1,2\n3,4,5\n", "line 3: found 3 fields, the header has 2"),
            ("a,y\n1,2\n3,NaN\n", "line 3: column 2 (`y`): `NaN` is not a finite number"),
            ("a,y\n1,2\n-inf,1\n", "line 3: column 1 (`a`): `-inf` is not a finite number"),
            ("a,y\n1,2\n1e39,1\n", "line 3: column 1 (`a`): `1e39` is beyond the f32 range"),
            ("a,y\n1,\n", "line 2: column 2 (`y`): is empty"),
            ("a,y\n1,2\n\"x\ny\",3\n", "line 3: column 1 (`a`): `x\\ny` is not a number"),
        ];
        for (text, expected) in cases {
            let error = read(text, &all_but("y"), &CsvOptions::default()).unwrap_err().to_string();
            assert!(error.starts_with("t.csv, ") && error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn crlf_files_report_their_own_line_numbers() {
        let text = "a,y\r\n1,\"2\"\r\n\r\n3,4\r\n5,x\r\n";
        let error = read(text, &all_but("y"), &CsvOptions::default()).unwrap_err().to_string();
        assert!(error.starts_with("t.csv, line 5: column 2 (`y`): `x`"), "{error}");
        let options = CsvOptions { skip_bad_rows: true, ..CsvOptions::default() };
        let table = read(text, &all_but("y"), &options).unwrap();
        assert_eq!((table.x, table.y), (vec![1.0, 3.0], Some(vec![2.0, 4.0])));
    }

    #[test]
    fn missing_columns_and_empty_files() {
        let error = read("a,b\n1,2\n", &all_but("y"), &CsvOptions::default()).unwrap_err().to_string();
        assert_eq!(error, "t.csv, line 1: the header has no column `y` (found: a,b)");
        let error = read("a;y\n1;2\n", &all_but("y"), &CsvOptions::default()).unwrap_err().to_string();
        assert!(error.contains("is the delimiter ';'"), "{error}");
        let error = read("a,a,y\n1,2,3\n", &all_but("y"), &CsvOptions::default()).unwrap_err().to_string();
        assert!(error.contains("names `a` twice"), "{error}");
        let error = read("y\n1\n", &all_but("y"), &CsvOptions::default()).unwrap_err().to_string();
        assert!(error.contains("no column beside the target"), "{error}");
        let error = read("a,y\n", &all_but("y"), &CsvOptions::default()).unwrap_err().to_string();
        assert_eq!(error, "t.csv has a header but no rows: expected a header row and at least one data row");
        let error = read("", &all_but("y"), &CsvOptions::default()).unwrap_err().to_string();
        assert!(error.contains("no header row"), "{error}");
        let columns = Columns { features: Some(vec!["y".into()]), target: Target::Required("y".into()) };
        let error = read("a,y\n1,2\n", &columns, &CsvOptions::default()).unwrap_err().to_string();
        assert!(error.contains("`y` is the target"), "{error}");
    }

    #[test]
    fn skipping_counts_the_bad_rows() {
        let text = "a,y\n1,2\nx,3\n4,5\n6\n7,8,9\n10,NaN\n11,12\n";
        let options = CsvOptions { skip_bad_rows: true, ..CsvOptions::default() };
        let table = read(text, &all_but("y"), &options).unwrap();
        assert_eq!(table.x, [1.0, 4.0, 11.0]);
        assert_eq!(table.skipped.count, 4);
        assert_eq!(table.skipped.first_lines, [3, 5, 6, 7]);
        let described = table.skipped.describe().unwrap();
        assert!(
            described.starts_with("4 bad rows skipped (lines 3, 5, 6, 7; line 3: column 1 (`a`)"),
            "{described}"
        );
        let error = read("a,y\nx,1\n", &all_but("y"), &options).unwrap_err().to_string();
        assert!(error.contains("no good rows: 1 bad row skipped (line 2: column 1 (`a`)"), "{error}");
    }

    #[test]
    fn optional_target() {
        let columns = Columns { features: Some(vec!["x".into()]), target: Target::Optional("y".into()) };
        let with = read("x,y\n1,2\n", &columns, &CsvOptions::default()).unwrap();
        assert_eq!(with.y, Some(vec![2.0]));
        let without = read("x\n1\n\n2\n", &columns, &CsvOptions::default()).unwrap();
        assert_eq!((without.y, without.x), (None, vec![1.0, 2.0]));
    }

    #[test]
    fn delimiters_by_name() {
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert_eq!(parse_delimiter("|"), Ok(b'|'));
        assert!(parse_delimiter("ab").is_err());
        assert!(parse_delimiter("a").is_err());
        assert!(parse_delimiter(".").is_err());
        assert!(parse_delimiter("é").is_err());
    }

    /// Where [`BoundedRecords`] stops `text` with a record limit of `limit` bytes: the line the
    /// long record starts at, or `None` when it reads through.
    fn stops_at(text: &[u8], limit: u64) -> Option<u64> {
        let mut reader = BoundedRecords::new(text, b',', limit);
        let mut sink = Vec::new();
        match reader.read_to_end(&mut sink) {
            Ok(_) => None,
            Err(error) => Some(error.get_ref().unwrap().downcast_ref::<RecordTooLong>().unwrap().line),
        }
    }

    #[test]
    fn records_are_measured_as_the_parser_sees_them() {
        assert_eq!(stops_at(b"a,b\n1,2\n", 3), None, "3 bytes a line, line breaks not counted");
        assert_eq!(stops_at(b"a,b\n1,22\n", 3), Some(2));
        assert_eq!(stops_at(b"a,b\r\n1,2\r\n", 4), None);
        assert_eq!(stops_at(b"a,b\r\n1,2\r\n", 3), Some(1), "CRLF: the \\r counts");
        // Line breaks inside a quoted field do not end the record; the record starts at line 2.
        assert_eq!(stops_at(b"a,b\n\"1\n\n\n\n\",2\n", 6), Some(2));
        assert_eq!(stops_at(b"a,b\n\"1\n\",2\n3,4\n", 8), None);
        // An escaped quote stays inside the field; a closing quote ends it.
        assert_eq!(stops_at(b"\"a\"\"\nb\",c\nd\n", 9), None);
        assert_eq!(
            stops_at(b"\"a\"\"\nb\",c\nd\n", 8),
            Some(1),
            "the 9 bytes up to the comma are one record"
        );
        // A quote inside an unquoted field is a plain character: the line break ends the record.
        assert_eq!(stops_at(b"a\"b,c\nd,e\nf,g\n", 5), None);
        // A file that is one endless line costs the limit, not the file.
        let mut reader = BoundedRecords::new(std::io::repeat(b'0'), b',', 1 << 16);
        let mut sink = Vec::new();
        assert!(reader.read_to_end(&mut sink).is_err());
        assert!(sink.len() < 1 << 17, "{}", sink.len());
    }

    #[test]
    fn an_endless_line_is_an_error_at_its_line() {
        let mut text = b"x,y\n1,2\n".to_vec();
        text.extend(std::iter::repeat_n(b'9', (MAX_CSV_RECORD_BYTES + 10) as usize));
        let error = parse_csv(
            text.as_slice(),
            Path::new("t.csv"),
            &Columns { features: None, target: Target::Required("y".into()) },
            &CsvOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("t.csv, line 3: ") && error.contains("longer than 1.0 MiB"), "{error}");
    }
}
