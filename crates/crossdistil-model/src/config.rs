//! Validation of configurations: the error every `validate()` returns and the shared checks.
//!
//! Keys are dotted paths. A config validates its own fields with relative keys ("experts"); the
//! config that contains it prefixes them with [`ConfigError::within`], so the message the user
//! reads names the full key ("model.backbone.experts must be > 0").

/// A configuration value that is out of range: `key` names it, `problem` says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
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

impl From<ConfigError> for candle_core::Error {
    fn from(e: ConfigError) -> Self {
        candle_core::Error::Msg(e.to_string())
    }
}

/// The largest size any `[model]` key accepts (a layer width, an embedding size, a number of
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
