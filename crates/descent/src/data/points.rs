//! Reading the lesson's points from a CSV file with the columns `x` and `y`.

use std::fs::File;
use std::path::Path;

use super::{DataError, Table};

/// Read a CSV file with a header naming the columns `x` and `y` (other columns are ignored) and
/// return the lesson's table: features `[x, 1]` (the column of ones added as in the notebook),
/// target `y`.
///
/// Errors name the file and, for a bad value, the line and the column.
pub fn read_points(path: &Path) -> Result<Table, DataError> {
    let mut columns = read_columns(path, &["x", "y"], "x,y")?;
    let y = columns.pop().expect("two columns");
    let x = columns.pop().expect("two columns").into_iter().flat_map(|x| [x, 1.0]).collect();
    Ok(Table::new(x, y, 2))
}

/// Read the column `x` of a CSV file with a header (other columns are ignored): the inputs of
/// `descent predict` for the linear model. Errors as [`read_points`].
pub fn read_x(path: &Path) -> Result<Vec<f32>, DataError> {
    Ok(read_columns(path, &["x"], "x")?.pop().expect("one column"))
}

/// The columns `names` of a CSV file with a header, as finite f32 values; `expected` describes
/// the columns in errors.
fn read_columns(path: &Path, names: &[&str], expected: &str) -> Result<Vec<Vec<f32>>, DataError> {
    let file = File::open(path).map_err(|source| DataError::Open { path: path.into(), source })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));

    let malformed = |line: u64, message: String| DataError::Malformed { path: path.into(), line, message };
    let headers = reader
        .headers()
        .map_err(|error| malformed(error.position().map_or(1, |p| p.line()), error.to_string()))?
        .clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(DataError::Empty { path: path.into(), what: "no header row".into() });
    }
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            malformed(
                1,
                format!(
                    "the header has no column `{name}` (found: {}{}); expected the columns {expected}",
                    headers.iter().take(8).collect::<Vec<_>>().join(","),
                    if headers.len() > 8 {
                        format!(", ... {} columns in all", headers.len())
                    } else {
                        String::new()
                    }
                ),
            )
        })
    };
    let indices = names.iter().map(|name| column(name)).collect::<Result<Vec<_>, _>>()?;

    let mut columns = vec![Vec::new(); names.len()];
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                return Err(malformed(error.position().map_or(0, |p| p.line()), error.to_string()));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record[0].is_empty() {
            continue; // a blank line
        }
        if record.len() != headers.len() {
            return Err(malformed(
                line,
                format!("found {} fields, the header has {}", record.len(), headers.len()),
            ));
        }
        let value = |index: usize, name: &str| -> Result<f32, DataError> {
            let text = &record[index];
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v.abs() <= f64::from(f32::MAX) => Ok(v as f32),
                Ok(_) => Err(malformed(line, format!("column `{name}`: `{text}` is not a finite number"))),
                Err(_) => Err(malformed(line, format!("column `{name}`: `{text}` is not a number"))),
            }
        };
        for ((column, &index), name) in columns.iter_mut().zip(&indices).zip(names) {
            column.push(value(index, name)?);
        }
    }
    if columns[0].is_empty() {
        return Err(DataError::Empty { path: path.into(), what: "a header but no rows".into() });
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
        file.write_all(text.as_bytes()).expect("write the temporary file");
        file
    }

    #[test]
    fn reads_points_and_adds_the_column_of_ones() {
        let file = file_with("\u{feff}y, x\r\n5.0, 1\r\n-1e0,-1\r\n\r\n");
        let table = read_points(file.path()).unwrap();
        assert_eq!(table.x(), &[1.0, 1.0, -1.0, 1.0]);
        assert_eq!(table.y(), &[5.0, -1.0]);
    }

    #[test]
    fn bad_values_name_the_line_and_column() {
        let file = file_with("x,y\n1,2\n3,oops\n");
        let message = read_points(file.path()).unwrap_err().to_string();
        assert!(
            message.contains("line 3") && message.contains("`y`") && message.contains("oops"),
            "{message}"
        );
        let file = file_with("x,y\n1,2\n3,NaN\n");
        assert!(read_points(file.path()).unwrap_err().to_string().contains("not a finite number"));
        let file = file_with("x,y\n1,2,3\n");
        assert!(read_points(file.path()).unwrap_err().to_string().contains("found 3 fields"));
    }

    #[test]
    fn predict_inputs_need_only_x() {
        let file = file_with("id,x\n1,0.5\n2,-2\n");
        assert_eq!(read_x(file.path()).unwrap(), vec![0.5, -2.0]);
        let file = file_with("y\n1\n");
        assert!(read_x(file.path()).unwrap_err().to_string().contains("expected the columns x"));
    }

    #[test]
    fn missing_columns_and_empty_files_are_errors() {
        let file = file_with("a,b\n1,2\n");
        assert!(read_points(file.path()).unwrap_err().to_string().contains("no column `x`"));
        let file = file_with("x,y\n");
        assert!(read_points(file.path()).unwrap_err().to_string().contains("no rows"));
        let file = file_with("");
        assert!(read_points(file.path()).unwrap_err().to_string().contains("no header"));
        let missing = read_points(Path::new("/nonexistent/points.csv")).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/points.csv"), "{missing}");
    }
}
