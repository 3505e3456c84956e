//! `metrics.csv`: one row per reported step or epoch, for spreadsheets and plotting scripts.

pub use crate::train::MetricsRow;

/// The header of `metrics.csv`.
pub const METRICS_HEADER: &str = "step,epoch,lr,train_loss,valid_loss,accuracy,error_rate";

/// The rows as CSV text, with a header; numbers in full precision (Rust's shortest round-trip
/// form), absent values as empty fields.
pub fn metrics_csv(rows: &[MetricsRow]) -> String {
    let optional = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    let mut text = format!("{METRICS_HEADER}\n");
    for row in rows {
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            row.step,
            row.epoch,
            row.lr,
            row.train_loss,
            optional(row.valid_loss),
            optional(row.accuracy),
            optional(row.error_rate)
        ));
    }
    text
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_the_text() {
        let rows = [
            MetricsRow { step: 0, epoch: 1, lr: 0.1, train_loss: 6.394186496734619, ..MetricsRow::default() },
            MetricsRow {
                step: 23,
                epoch: 1,
                lr: 1e-3,
                train_loss: 1.1,
                valid_loss: Some(1.05),
                accuracy: Some(0.935933147632312),
                error_rate: Some(0.06406685236768802),
            },
        ];
        let text = metrics_csv(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], METRICS_HEADER);
        assert_eq!(lines[1], "0,1,0.1,6.394186496734619,,,");
        let fields: Vec<f64> = lines[2].split(',').map(|f| f.parse().unwrap()).collect();
        assert_eq!(fields[6], 0.06406685236768802);
    }
}
