//! Value parsers shared by the commands: each error says what was found and what is allowed;
//! clap adds the flag's name and exits with code 2.

//!
//! Numeric flags accept a leading `-` (clap would otherwise read `--lr -inf` as an unknown flag
//! `-i`), so that a negative value is reported as out of range, naming the flag. Real numbers are
//! checked against the f32 range the devices compute in: a value that would become infinite
//! there is refused here, not reported later as a divergence.

use crate::limits::F32_MAX;

/// A whole number of at least 1.
pub fn positive_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1, got 0".into()),
        Ok(value) => Ok(value),
        Err(_) if is_negative(text) => {
            Err(format!("must be a whole number of at least 1, got {}", text.trim()))
        }
        Err(_) if is_whole(text) => {
            Err(format!("must be a whole number from 1 to {}, got {}", usize::MAX, text.trim()))
        }
        Err(_) => Err(format!("expected a whole number of at least 1, got `{text}`")),
    }
}

/// A seed: a whole number from 0 to 2^64 - 1.
pub fn seed(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| {
        if is_negative(text) || is_whole(text) {
            format!("must be a whole number from 0 to {}, got {}", u64::MAX, text.trim())
        } else {
            format!("expected a whole number from 0 to {}, got `{text}`", u64::MAX)
        }
    })
}

/// A finite number greater than 0, within the f32 range.
pub fn positive_finite(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 && value <= F32_MAX => Ok(value),
        Ok(value) => Err(format!(
            "must be a finite number greater than 0 and at most 3.4e38 (the f32 range), got {}",
            number(value)
        )),
        Err(_) => Err(format!("expected a number greater than 0, got `{text}`")),
    }
}

/// A finite number of at least 0, within the f32 range.
pub fn non_negative_finite(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if (0.0..=F32_MAX).contains(&value) => Ok(value),
        Ok(value) => {
            Err(format!("must be a finite number from 0 to 3.4e38 (the f32 range), got {}", number(value)))
        }
        Err(_) => Err(format!("expected a number of at least 0, got `{text}`")),
    }
}

/// Two numbers within the f32 range separated by a comma, such as `3,2` or `-1,1` (slope,
/// intercept).
pub fn pair(text: &str) -> Result<[f64; 2], String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() != 2 {
        return Err(format!(
            "expected 2 comma-separated numbers (slope,intercept), got {} value{}",
            parts.len(),
            if parts.len() == 1 { "" } else { "s" }
        ));
    }
    let number = |part: &str| match part.parse::<f64>() {
        Ok(value) if value.is_finite() && value.abs() <= F32_MAX => Ok(value),
        Ok(value) if value.is_finite() => {
            Err(format!("`{part}` is beyond the f32 range (±3.4e38): each number must be within it"))
        }
        _ => Err(format!("expected 2 comma-separated finite numbers (slope,intercept), `{part}` is not one")),
    };
    Ok([number(parts[0])?, number(parts[1])?])
}

/// A number as people write it: `0.1`, `-5`, `1e39` (not forty digits).
fn number(value: f64) -> String {
    if value.is_finite() && value != 0.0 && !(1e-4..1e16).contains(&value.abs()) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

fn is_negative(text: &str) -> bool {
    text.trim().starts_with('-')
}

fn is_whole(text: &str) -> bool {
    let digits = text.trim().trim_start_matches(['-', '+']);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        assert_eq!(pair("-1,1"), Ok([-1.0, 1.0]));
        assert_eq!(pair(" 3 , 2 "), Ok([3.0, 2.0]));
        assert!(pair("1,2,3").unwrap_err().contains("got 3 values"));
        assert!(pair("1").unwrap_err().contains("got 1 value"));
        assert!(pair("1,x").unwrap_err().contains("`x`"));
    }

    #[test]
    fn numbers() {
        assert!(positive_finite("0").is_err());
        assert!(positive_finite("inf").is_err());
        assert!(positive_finite("NaN").is_err());
        assert_eq!(positive_finite("0.1"), Ok(0.1));
        assert!(positive_count("0").is_err());
        assert_eq!(positive_count("32"), Ok(32));
        assert!(non_negative_finite("-1").is_err());
        assert!(positive_finite("1e39").unwrap_err().contains("f32 range"));
        assert!(non_negative_finite("1e39").unwrap_err().contains("f32 range"));
        assert!(pair("1e39,1").unwrap_err().contains("f32 range"));
        assert!(pair("-3.4e38,1").is_ok());
        assert!(positive_count("-5").unwrap_err().contains("got -5"));
        assert!(positive_count("99999999999999999999999").unwrap_err().contains("from 1 to"));
        assert!(seed("-1").unwrap_err().contains("from 0 to 18446744073709551615, got -1"));
        assert_eq!(seed("18446744073709551615"), Ok(u64::MAX));
    }
}
