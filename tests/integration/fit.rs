//! `descent fit`: linear regression on a CSV table, against an independent closed form written
//! out here; divergence without standardisation; every bad input refused with its file, line and
//! column and nothing written; `--skip-bad-rows` counts; a fit model predicts and resumes.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{descent, summary};
use descent::data::random::SeededRng;

/// A fresh folder under the test's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fit").join(name);
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    path
}

/// `descent fit` of the column `y` of `data` into the run folder `out`, with `extra` flags.
fn fit_y(data: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["fit", "--data", data, "--target", "y", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    descent(&args)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The five features' scales, offsets and true coefficients: scales from 1e-3 to 1e5, each
/// feature moving y by a few units.
const SCALES: [f64; 5] = [1e-3, 1.0, 50.0, 1e3, 1e5];
const OFFSETS: [f64; 5] = [0.0, 5.0, -200.0, 3e3, 5e5];
const TRUE_COEFFICIENTS: [f64; 5] = [2000.0, -3.0, 0.05, 0.004, -2e-5];
const TRUE_INTERCEPT: f64 = 7.0;
const NAMES: [&str; 5] = ["tiny", "unit", "mid", "large", "huge"];

/// Rows of the generated table, each value already rounded to f32 as the reader stores it.
fn generated_rows(n: usize, seed: u64) -> Vec<[f32; 6]> {
    let mut rng = SeededRng::new(seed);
    (0..n)
        .map(|_| {
            let normals = rng.normal(6);
            let mut row = [0.0f32; 6];
            let mut y = TRUE_INTERCEPT + 0.5 * f64::from(normals[5]);
            for j in 0..5 {
                row[j] = (OFFSETS[j] + SCALES[j] * f64::from(normals[j])) as f32;
                y += TRUE_COEFFICIENTS[j] * f64::from(row[j]);
            }
            row[5] = y as f32;
            row
        })
        .collect()
}

/// The table as CSV text: `{}` prints the shortest text that reads back as the same f32.
fn csv_text(rows: &[[f32; 6]], delimiter: char, line_end: &str) -> String {
    let mut text = NAMES.iter().chain(&["y"]).copied().collect::<Vec<_>>().join(&delimiter.to_string());
    text.push_str(line_end);
    for row in rows {
        let fields: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        text.push_str(&fields.join(&delimiter.to_string()));
        text.push_str(line_end);
    }
    text
}

/// Least squares with an intercept, in f64, by the centred normal equations
/// `(Xcᵀ Xc) b = Xcᵀ yc` (Gauss–Jordan with partial pivoting on columns scaled to unit norm) and
/// `intercept = mean(y) - mean(x)·b`: an oracle independent of the crate's own.
#[allow(clippy::needless_range_loop)] // matrix algebra reads best with its indices
fn closed_form(rows: &[[f32; 6]]) -> (Vec<f64>, f64) {
    let n = rows.len() as f64;
    let d = 5;
    let mean: Vec<f64> = (0..=d).map(|j| rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n).collect();
    let centred = |r: &[f32; 6], j: usize| f64::from(r[j]) - mean[j];
    let norm: Vec<f64> =
        (0..d).map(|j| rows.iter().map(|r| centred(r, j).powi(2)).sum::<f64>().sqrt()).collect();
    let mut m = vec![vec![0.0; d + 1]; d];
    for r in rows {
        for j in 0..d {
            let xj = centred(r, j) / norm[j];
            for k in 0..d {
                m[j][k] += xj * centred(r, k) / norm[k];
            }
            m[j][d] += xj * centred(r, d);
        }
    }
    for column in 0..d {
        let pivot = (column..d).max_by(|&p, &q| m[p][column].abs().total_cmp(&m[q][column].abs())).unwrap();
        m.swap(column, pivot);
        for row in 0..d {
            if row != column {
                let factor = m[row][column] / m[column][column];
                for k in column..=d {
                    m[row][k] -= factor * m[column][k];
                }
            }
        }
    }
    let b: Vec<f64> = (0..d).map(|j| m[j][d] / m[j][j] / norm[j]).collect();
    let intercept = mean[d] - (0..d).map(|j| mean[j] * b[j]).sum::<f64>();
    (b, intercept)
}

fn coefficients(summary: &serde_json::Value, key: &str) -> Vec<f64> {
    NAMES.iter().map(|name| summary[key][*name].as_f64().unwrap_or_else(|| panic!("{key}.{name}"))).collect()
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn five_features_of_very_different_scales_fit_the_closed_form_on_the_original_scale() {
    let dir = scratch("five");
    let rows = generated_rows(10_000, 7);
    let data = write(&dir, "table.csv", &csv_text(&rows, ',', "\n"));
    let out = dir.join("run");
    let output = fit_y(&data, &out, &["--valid-fraction", "0", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let summary = summary(&output);

    let (b, intercept) = closed_form(&rows);
    let fitted = coefficients(&summary, "coefficients");
    for j in 0..5 {
        assert!(relative(fitted[j], b[j]) < 1e-2, "{}: {} vs closed form {}", NAMES[j], fitted[j], b[j]);
        // The closed form itself is near the generating coefficients (noise 0.5 on 10,000 rows).
        assert!(relative(b[j], TRUE_COEFFICIENTS[j]) < 1e-2, "{}: {}", NAMES[j], b[j]);
    }
    let fitted_intercept = summary["intercept"].as_f64().unwrap();
    assert!(relative(fitted_intercept, intercept) < 1e-2, "{fitted_intercept} vs {intercept}");
    // The closed form descent reports is this one.
    let ols = coefficients(&summary, "ols_coefficients");
    for j in 0..5 {
        assert!(relative(ols[j], b[j]) < 1e-6, "{}: {} vs {}", NAMES[j], ols[j], b[j]);
    }
    assert!(relative(summary["ols_intercept"].as_f64().unwrap(), intercept) < 1e-6);

    // R² by hand from the reported line, on every row (no validation rows).
    let n = rows.len() as f64;
    let mean_y = rows.iter().map(|r| f64::from(r[5])).sum::<f64>() / n;
    let sse: f64 = rows
        .iter()
        .map(|r| {
            let prediction: f64 = fitted_intercept + (0..5).map(|j| fitted[j] * f64::from(r[j])).sum::<f64>();
            (f64::from(r[5]) - prediction).powi(2)
        })
        .sum();
    let sst: f64 = rows.iter().map(|r| (f64::from(r[5]) - mean_y).powi(2)).sum();
    let r2 = summary["r2_train"].as_f64().unwrap();
    assert!((r2 - (1.0 - sse / sst)).abs() < 1e-4, "{r2} vs {}", 1.0 - sse / sst);
    assert!((summary["mse_train"].as_f64().unwrap() - sse / n).abs() / (sse / n) < 1e-3);
    assert!(summary["r2_valid"].is_null() && summary["rows_valid"] == 0);

    // The saved model predicts on the original columns: y = x·coefficients + intercept.
    let input = write(&dir, "new.csv", "huge,tiny,unit,mid,large\n500000,0.001,5,-200,3000\n");
    let predicted = descent(&["predict", "--model", out.to_str().unwrap(), "--input", &input]);
    assert!(predicted.status.success(), "{}", String::from_utf8_lossy(&predicted.stderr));
    let text = String::from_utf8_lossy(&predicted.stdout);
    let last: f64 = text.lines().nth(1).unwrap().rsplit(',').next().unwrap().parse().unwrap();
    let x = [0.001, 5.0, -200.0, 3000.0, 500000.0];
    let expected = fitted_intercept + (0..5).map(|j| fitted[j] * x[j]).sum::<f64>();
    assert!((last - expected).abs() < 1e-3 * expected.abs().max(1.0), "{text}: expected {expected}");
}

#[test]
fn the_split_reports_both_sides_and_the_same_table_in_any_dialect_gives_the_same_fit() {
    let dir = scratch("dialects");
    let rows = generated_rows(500, 11);
    let plain = write(&dir, "plain.csv", &csv_text(&rows, ',', "\n"));
    // Semicolons, CRLF, a byte-order mark, quoted names, spaces around fields.
    let text = csv_text(&rows, ';', "\r\n").replace(';', " ; ").replacen("tiny", "\"tiny\"", 1);
    let windows = write(&dir, "windows.csv", &format!("\u{feff}{text}"));
    let fit = |data: &str, extra: &[&str], name: &str| {
        let output = fit_y(data, &dir.join(name), &[&["--json", "-q"], extra].concat());
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        summary(&output)
    };
    let a = fit(&plain, &[], "plain");
    let b = fit(&windows, &["--delimiter", ";"], "windows");
    assert_eq!(a["coefficients"], b["coefficients"]);
    assert_eq!((a["rows_train"].as_u64(), a["rows_valid"].as_u64()), (Some(400), Some(100)));
    let (r2_train, r2_valid) = (a["r2_train"].as_f64().unwrap(), a["r2_valid"].as_f64().unwrap());
    assert!(r2_train > 0.99 && r2_valid > 0.99, "{r2_train} {r2_valid}");
    let (mse, rmse) = (a["mse_valid"].as_f64().unwrap(), a["rmse_valid"].as_f64().unwrap());
    assert!((rmse - mse.sqrt()).abs() < 1e-12);
    // Another seed, another split.
    let c = fit(&plain, &["--seed", "5"], "seed5");
    assert_ne!(a["mse_valid"], c["mse_valid"]);
    // --features picks and orders columns.
    let d = fit(&plain, &["--features", "unit,tiny"], "two");
    assert_eq!(d["features"], serde_json::json!(["unit", "tiny"]));
}

#[test]
fn unscaled_features_at_lr_0_1_diverge_with_exit_code_3() {
    let dir = scratch("diverge");
    let data = write(&dir, "table.csv", &csv_text(&generated_rows(1000, 3), ',', "\n"));
    let out = dir.join("run");
    let output = fit_y(&data, &out, &["--no-standardize"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("loss became inf at step") || stderr.contains("loss became NaN at step"),
        "{stderr}"
    );
    assert!(stderr.contains("(lr 0.1)") && stderr.contains("descent lr-find"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.join("metrics.csv").exists() && !out.join("model.bpk").exists());
}

/// Run `fit` on `text`; it must exit 2 naming the file and each of `expected`, and leave `--out`
/// uncreated.
fn refused(dir: &Path, name: &str, text: &str, extra: &[&str], expected: &[&str]) {
    let data = write(dir, name, text);
    let out = dir.join(format!("{name}.run"));
    let output = fit_y(&data, &out, extra);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    assert!(stderr.contains(&data), "{name}: no file name in {stderr}");
    for needle in expected {
        assert!(stderr.contains(needle), "{name}: expected `{needle}` in {stderr}");
    }
    assert!(!out.exists(), "{name}: the output folder was written");
}

#[test]
fn every_bad_input_names_its_file_line_and_column_and_writes_nothing() {
    let dir = scratch("bad");
    let good = "a,b,y\n1,2,3\n2,1,4\n3,5,1\n4,4,0\n5,0,2\n";
    refused(
        &dir,
        "ragged.csv",
        "a,b,y\n1,2,3\n2,1\n3,5,1\n",
        &[],
        &["line 3", "found 2 fields, the header has 3"],
    );
    refused(
        &dir,
        "text.csv",
        "a,b,y\n1,2,3\n2,abc,4\n",
        &[],
        &["line 3", "column 2 (`b`)", "`abc` is not a number"],
    );
    refused(
        &dir,
        "nan.csv",
        "a,b,y\n1,2,3\n2,1,NaN\n",
        &[],
        &["line 3", "column 3 (`y`)", "`NaN` is not a finite number"],
    );
    refused(
        &dir,
        "inf.csv",
        "a,b,y\n1,2,3\ninf,1,2\n",
        &[],
        &["line 3", "column 1 (`a`)", "`inf` is not a finite number"],
    );
    refused(&dir, "missing.csv", "a,b,y\n1,,3\n", &[], &["line 2", "column 2 (`b`)", "empty"]);
    refused(&dir, "empty.csv", "", &[], &["no header row"]);
    refused(&dir, "header.csv", "a,b,y\n", &[], &["a header but no rows"]);
    refused(&dir, "target.csv", "a,b,z\n1,2,3\n", &[], &["line 1", "no column `y`", "found: a,b,z"]);
    refused(&dir, "feature.csv", good, &["--features", "a,c"], &["line 1", "no column `c`"]);
    refused(
        &dir,
        "constant.csv",
        "a,b,y\n1,7,3\n2,7,4\n3,7,1\n4,7,0\n5,7,2\n",
        &["--valid-fraction", "0"],
        &["column 2 (`b`)", "same value (7)", "cannot be standardised"],
    );
    refused(&dir, "semicolons.csv", "a;b;y\n1;2;3\n", &[], &["no column `y`", "is the delimiter ';'"]);
    refused(
        &dir,
        "decimal.csv",
        "a;b;y\n1,5;2;3\n2;1;4\n",
        &["--delimiter", ";"],
        &["line 2", "decimal commas"],
    );
    refused(
        &dir,
        "too_few.csv",
        "a,b,y\n1,2,3\n2,1,4\n",
        &["--valid-fraction", "0"],
        &["2 training rows for 2 features", "at least 3"],
    );
}

#[test]
fn bad_flags_are_refused_before_anything_is_read() {
    let dir = scratch("flags");
    let data = write(&dir, "t.csv", "a,y\n1,2\n2,3\n3,5\n");
    for (args, expected) in [
        (vec!["fit", "--data", &data], "--target COLUMN is required"),
        (vec!["fit", "--target", "y"], "descent fit needs a table"),
        (vec!["fit", "--data", &data, "--target", "y", "--valid-fraction", "1"], "less than 1"),
        (vec!["fit", "--data", &data, "--target", "y", "--delimiter", "ab"], "--delimiter"),
        (
            vec!["fit", "--data", &data, "--target", "y", "--features", "a,y"],
            "--features (data.features): holds the target `y`",
        ),
        (vec!["fit", "--data", &data, "--target", "y", "--features", "a,a"], "names `a` twice"),
    ] {
        let output = descent(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: expected `{expected}` in {stderr}");
    }
    let missing = dir.join("nope.csv");
    let output = descent(&["fit", "--data", missing.to_str().unwrap(), "--target", "y"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nope.csv") && stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn skip_bad_rows_skips_and_counts_them() {
    let dir = scratch("skip");
    let mut text = String::from("a,b,y\n");
    let mut bad_lines = Vec::new();
    let mut rng = SeededRng::new(1);
    for i in 0..200usize {
        let line = i + 2;
        let (a, b) = (rng.unit() * 4.0 - 2.0, rng.unit() * 4.0 - 2.0);
        let y = 1.5 * a - 2.0 * b + 0.5;
        match i % 37 {
            5 => text.push_str(&format!("{a},oops,{y}\n")),
            9 => text.push_str(&format!("{a},{b}\n")),
            20 => text.push_str(&format!("{a},{b},NaN\n")),
            _ => {
                text.push_str(&format!("{a},{b},{y}\n"));
                continue;
            }
        }
        bad_lines.push(line as u64);
    }
    let data = write(&dir, "t.csv", &text);
    refused(&dir, "t.csv", &text, &[], &[&format!("line {}", bad_lines[0]), "--skip-bad-rows"]);
    let out = dir.join("run");
    let output = fit_y(&data, &out, &["--skip-bad-rows", "--steps", "300", "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary = summary(&output);
    assert_eq!(summary["skipped_rows"].as_u64(), Some(bad_lines.len() as u64));
    let first: Vec<u64> =
        summary["skipped_lines"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(first, bad_lines[..5]);
    assert_eq!(summary["rows"].as_u64(), Some(200 - bad_lines.len() as u64));
    assert!(
        stderr.contains(&format!("{} bad rows skipped (lines {}", bad_lines.len(), bad_lines[0])),
        "{stderr}"
    );
    // The good rows lie on y = 1.5a - 2b + 0.5 exactly.
    let fitted =
        (summary["coefficients"]["a"].as_f64().unwrap(), summary["coefficients"]["b"].as_f64().unwrap());
    assert!((fitted.0 - 1.5).abs() < 1e-3 && (fitted.1 + 2.0).abs() < 1e-3, "{fitted:?}");
}

#[test]
fn a_fit_run_resumes_from_its_checkpoint_to_the_same_parameters() {
    let dir = scratch("resume");
    let data = write(&dir, "t.csv", &csv_text(&generated_rows(300, 5), ',', "\n"));
    let succeeded = |output: Output| {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        summary(&output)
    };
    let (straight, split) = (dir.join("straight"), dir.join("split"));
    let common = ["--batch-size", "32", "--optim", "adam", "--lr", "0.05", "--json", "-q"];
    let whole = succeeded(fit_y(&data, &straight, &[&["--epochs", "6"], &common[..]].concat()));
    succeeded(fit_y(&data, &split, &[&["--epochs", "3"], &common[..]].concat()));
    let resumed =
        succeeded(descent(&["fit", "--resume", split.to_str().unwrap(), "--epochs", "6", "--json", "-q"]));
    assert_eq!(whole["a"], resumed["a"]);
    assert_eq!(whole["coefficients"], resumed["coefficients"]);
    assert_eq!(whole["r2_valid"], resumed["r2_valid"]);
}
