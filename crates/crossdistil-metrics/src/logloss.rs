//! Mean binary cross-entropy.

use crate::error::{MetricError, check_labels, check_len, check_probs};

/// Probabilities are clamped to `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` before taking logarithms,
/// so a confident wrong prediction costs at most `-ln(1e-7) ≈ 16.12` instead of infinity.
pub const LOG_LOSS_EPS: f64 = 1e-7;

/// Mean binary cross-entropy (log loss), natural logarithm.
///
/// Inputs: `probs` and `labels` of the same length `n`; `probs[i]` in `[0, 1]` is the
/// predicted probability that `labels[i] == 1`.
///
/// Formula, with `p̂_i = clamp(p_i, 1e-7, 1 - 1e-7)` (see [`LOG_LOSS_EPS`]) computed in `f64`:
///
/// ```text
/// LogLoss = -(1/n) · Σ_i [ y_i · ln(p̂_i) + (1 - y_i) · ln(1 - p̂_i) ]
/// ```
///
/// Returns `Ok(None)` on empty input (the mean is undefined).
///
/// # Errors
/// [`MetricError::LengthMismatch`], [`MetricError::InvalidLabel`], [`MetricError::NanScore`],
/// [`MetricError::ProbabilityOutOfRange`].
pub fn log_loss(probs: &[f32], labels: &[u8]) -> Result<Option<f64>, MetricError> {
    check_len("labels", probs.len(), labels.len())?;
    check_labels(labels)?;
    check_probs(probs)?;
    if probs.is_empty() {
        return Ok(None);
    }
    let total: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = f64::from(p).clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            if y == 1 { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    Ok(Some(total / probs.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn hand_computed() {
        // -(ln 0.75 + ln(1 - 0.25) + ln 0.5) / 3 = (2 ln(4/3) + ln 2) / 3 ≈ 0.42284
        let want = (2.0 * (4.0f64 / 3.0).ln() + 2.0f64.ln()) / 3.0;
        let got = log_loss(&[0.75, 0.25, 0.5], &[1, 0, 1]).unwrap().unwrap();
        assert!(close(got, want), "{got} vs {want}");
    }

    #[test]
    fn clamp_bounds_the_loss() {
        // A certain, wrong prediction costs -ln(1e-7) instead of infinity.
        let got = log_loss(&[0.0, 1.0], &[1, 0]).unwrap().unwrap();
        let want = -(1e-7f64).ln();
        assert!(close(got, want), "{got} vs {want}");
        // A certain, right prediction costs -ln(1 - 1e-7), about 1e-7, not exactly 0.
        let got = log_loss(&[1.0, 0.0], &[1, 0]).unwrap().unwrap();
        assert!(close(got, -(1.0 - 1e-7f64).ln()));
        assert!(got > 0.0);
    }

    #[test]
    fn empty_and_invalid() {
        assert_eq!(log_loss(&[], &[]).unwrap(), None);
        assert_eq!(
            log_loss(&[1.5], &[1]),
            Err(MetricError::ProbabilityOutOfRange {
                index: 0,
                value: 1.5
            })
        );
        assert_eq!(
            log_loss(&[f32::NAN], &[1]),
            Err(MetricError::NanScore { index: 0 })
        );
        assert!(matches!(
            log_loss(&[0.5], &[]),
            Err(MetricError::LengthMismatch { .. })
        ));
        assert!(matches!(
            log_loss(&[0.5], &[3]),
            Err(MetricError::InvalidLabel { .. })
        ));
    }
}
