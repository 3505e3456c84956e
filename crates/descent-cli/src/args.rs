//! Value parsers shared by the commands: each error says what was found and what is allowed;
//! clap adds the flag's name and exits with code 2.

/// A whole number of at least 1.
pub fn positive_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1, got 0".into()),
        Ok(value) => Ok(value),
        Err(_) => Err(format!("expected a whole number of at least 1, got `{text}`")),
    }
}

/// A finite number greater than 0.
pub fn positive_finite(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        Ok(value) => Err(format!("must be a finite number greater than 0, got {value}")),
        Err(_) => Err(format!("expected a number greater than 0, got `{text}`")),
    }
}

/// A finite number of at least 0.
pub fn non_negative_finite(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        Ok(value) => Err(format!("must be a finite number of at least 0, got {value}")),
        Err(_) => Err(format!("expected a number of at least 0, got `{text}`")),
    }
}

/// Two finite numbers separated by a comma, such as `3,2` or `-1,1` (slope, intercept).
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
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("expected 2 comma-separated finite numbers (slope,intercept), `{part}` is not one")),
    };
    Ok([number(parts[0])?, number(parts[1])?])
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
    }
}
