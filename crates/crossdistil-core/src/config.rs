//! Validation of configurations: the error every `validate()` returns and the shared checks.
//!
//! Keys are dotted paths. A config validates its own fields with relative keys ("experts"); the
//! config that contains it prefixes them with [`ConfigError::within`], so the message the user
//! reads names the full key ("model.backbone.experts must be > 0").

/// A configuration value that is out of range: `key` names it, `problem` says why. Displays as
/// `"{key} {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {problem}")]
pub struct ConfigError {
    /// The dotted path of the offending key ("model.backbone.experts").
    pub key: String,
    /// What is wrong with its value ("must be > 0").
    pub problem: String,
}

impl ConfigError {
    /// The error of `key`, which `problem` describes ("must be > 0").
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The same error with `parent.` in front of its key.
    pub fn within(self, parent: &str) -> Self {
        ConfigError {
            key: format!("{parent}.{}", self.key),
            problem: self.problem,
        }
    }
}

/// The largest size any size key accepts (a layer width, an embedding size, a number of
/// experts): anything larger is a typo that would only fail later, at allocation.
pub const MAX_SIZE: usize = 1 << 16;

/// `0 < value <= MAX_SIZE`.
pub fn positive(key: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(key, "must be > 0"));
    }
    if value > MAX_SIZE {
        return Err(ConfigError::new(
            key,
            format!("must be at most {MAX_SIZE}, got {value}"),
        ));
    }
    Ok(())
}

/// A dropout rate: `0 <= p < 1`.
pub fn rate(key: &str, p: f32) -> Result<(), ConfigError> {
    if !(0.0..1.0).contains(&p) {
        return Err(ConfigError::new(key, format!("must be in [0, 1), got {p}")));
    }
    Ok(())
}

/// Hidden layer sizes: at least one layer, every size > 0.
pub fn layer_sizes(key: &str, hidden: &[usize]) -> Result<(), ConfigError> {
    if hidden.is_empty() {
        return Err(ConfigError::new(key, "must not be empty"));
    }
    for (i, &h) in hidden.iter().enumerate() {
        positive(&format!("{key}[{i}]"), h)?;
    }
    Ok(())
}

/// A finite value `>= 0`.
pub fn non_negative(key: &str, value: f64) -> Result<(), ConfigError> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(ConfigError::new(
            key,
            format!("must be finite and >= 0, got {value}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_full_key() {
        let e = ConfigError::new("margin", "must be >= 0").within("ranking");
        assert_eq!(e.to_string(), "ranking.margin must be >= 0");
    }

    #[test]
    fn the_checks_refuse_what_is_out_of_range() {
        assert!(positive("k", 1).is_ok());
        assert_eq!(positive("k", 0).unwrap_err().key, "k");
        assert!(positive("k", MAX_SIZE + 1).is_err());
        assert!(rate("p", 0.0).is_ok());
        assert!(rate("p", 1.0).is_err());
        assert!(non_negative("w", 0.0).is_ok());
        assert!(non_negative("w", f64::NAN).is_err());
        assert_eq!(layer_sizes("hidden", &[4, 0]).unwrap_err().key, "hidden[1]");
        assert!(layer_sizes("hidden", &[]).is_err());
    }
}
