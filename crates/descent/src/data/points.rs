//! Reading the lesson's points from a CSV file with the columns `x` and `y`.

use std::path::Path;

use super::csv_table::{Columns, CsvOptions, Target, read_csv};
use super::{DataError, Table};

/// Read a CSV file with a header naming the columns `x` and `y` (other columns are ignored) and
/// return the lesson's table: features `[x, 1]` (the column of ones added as in the notebook),
/// target `y`.
///
/// Errors name the file and, for a bad value, the line and the column.
pub fn read_points(path: &Path) -> Result<Table, DataError> {
    let columns = Columns { features: Some(vec!["x".into()]), target: Target::Required("y".into()) };
    let table = read_csv(path, &columns, &CsvOptions::default())?;
    let y = table.y.expect("the target is required");
    let x = table.x.into_iter().flat_map(|x| [x, 1.0]).collect();
    Ok(Table::new(x, y, 2))
}

/// Read the column `x` of a CSV file with a header (other columns are ignored): the inputs of
/// `descent predict` for the lesson's model. Errors as [`read_points`].
pub fn read_x(path: &Path) -> Result<Vec<f32>, DataError> {
    let columns = Columns { features: Some(vec!["x".into()]), target: Target::None };
    Ok(read_csv(path, &columns, &CsvOptions::default())?.x)
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
        assert!(read_x(file.path()).unwrap_err().to_string().contains("no column `x` (found: y)"));
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
