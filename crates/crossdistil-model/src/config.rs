//! Validation of configurations: the workspace's one [`ConfigError`] and the shared checks, from
//! `crossdistil-core`, and their conversion into candle's error where a constructor validates
//! its configuration.

pub(crate) use crossdistil_core::{ConfigError, layer_sizes, non_negative, positive, rate};

/// `e` as candle's error, with the same message.
pub(crate) fn to_candle(e: ConfigError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}
