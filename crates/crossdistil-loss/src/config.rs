//! Validation of the loss configurations: the workspace's one [`ConfigError`], from
//! `crossdistil-core`, which every `validate()` returns.
//!
//! Keys are dotted paths. A config validates its own fields with relative keys (`margin`); the
//! config that contains it prefixes them with [`ConfigError::within`], so the message the user
//! reads names the full key (`distill.ranking.margin must be finite and >= 0`).

pub use crossdistil_core::ConfigError;
