//! Validation of the loss configurations: the error every `validate()` returns.
//!
//! Keys are dotted paths. A config validates its own fields with relative keys (`margin`); the
//! config that contains it prefixes them with [`ConfigError::within`], so the message the user
//! reads names the full key (`distill.ranking.margin must be finite and >= 0`).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_full_key() {
        let e = ConfigError::new("margin", "must be >= 0").within("ranking");
        assert_eq!(e.to_string(), "ranking.margin must be >= 0");
    }
}
