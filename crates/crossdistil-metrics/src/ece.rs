//! Calibration: reliability bins and the expected calibration error (ECE).

use serde::{Deserialize, Serialize};

use crate::error::{MetricError, check_labels, check_len, check_probs};

/// The largest `n_bins` [`calibration`] accepts.
pub const MAX_BINS: usize = 1 << 20;

/// One equal-width probability bin of a reliability diagram.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bin {
    /// Lower edge, `i / n_bins` (inclusive).
    pub lower: f64,
    /// Upper edge, `(i + 1) / n_bins` (exclusive, except for the last bin, which holds 1.0).
    pub upper: f64,
    /// Rows whose probability falls in the bin.
    pub count: u64,
    /// Mean predicted probability of those rows; `None` for an empty bin.
    pub mean_pred: Option<f64>,
    /// Fraction of those rows with label 1; `None` for an empty bin.
    pub frac_pos: Option<f64>,
}

/// The result of [`calibration`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// Expected calibration error.
    pub ece: f64,
    /// All `n_bins` bins, from `[0, 1/n_bins)` up to `[(n_bins-1)/n_bins, 1]`, empty ones included.
    pub bins: Vec<Bin>,
}

/// Reliability bins and expected calibration error.
///
/// Inputs: `probs` and `labels` of the same length `n`; `probs[i]` in `[0, 1]` is the predicted
/// probability that `labels[i] == 1`; `n_bins >= 1` equal-width bins over `[0, 1]`.
///
/// Row `i` goes to bin `b_i = min(⌊p_i · n_bins⌋, n_bins - 1)`, so `p = 1.0` falls in the last
/// bin. For a non-empty bin `b` with `n_b` rows,
///
/// ```text
/// mean_pred_b = (1/n_b) Σ_{i ∈ b} p_i        frac_pos_b = (1/n_b) Σ_{i ∈ b} y_i
/// ECE         = Σ_{b non-empty} (n_b / n) · |mean_pred_b - frac_pos_b|
/// ```
///
/// Returns `Ok(None)` on empty input.
///
/// # Errors
/// [`MetricError::LengthMismatch`], [`MetricError::InvalidLabel`], [`MetricError::NanScore`],
/// [`MetricError::ProbabilityOutOfRange`]; [`MetricError::InvalidArgument`] when
/// `n_bins == 0` or `n_bins > MAX_BINS`.
pub fn calibration(
    probs: &[f32],
    labels: &[u8],
    n_bins: usize,
) -> Result<Option<Calibration>, MetricError> {
    check_len("labels", probs.len(), labels.len())?;
    check_labels(labels)?;
    check_probs(probs)?;
    if n_bins == 0 {
        return Err(MetricError::InvalidArgument("n_bins must be at least 1"));
    }
    if n_bins > MAX_BINS {
        return Err(MetricError::InvalidArgument("n_bins exceeds MAX_BINS"));
    }
    if probs.is_empty() {
        return Ok(None);
    }

    let mut count = vec![0u64; n_bins];
    let mut sum_pred = vec![0.0f64; n_bins];
    let mut positives = vec![0u64; n_bins];
    for (&p, &y) in probs.iter().zip(labels) {
        let p = f64::from(p);
        let b = ((p * n_bins as f64) as usize).min(n_bins - 1);
        count[b] += 1;
        sum_pred[b] += p;
        positives[b] += u64::from(y);
    }

    let n = probs.len() as f64;
    let mut ece = 0.0;
    let bins = (0..n_bins)
        .map(|b| {
            let (mean_pred, frac_pos) = if count[b] == 0 {
                (None, None)
            } else {
                let c = count[b] as f64;
                let (m, f) = (sum_pred[b] / c, positives[b] as f64 / c);
                ece += c / n * (m - f).abs();
                (Some(m), Some(f))
            };
            Bin {
                lower: b as f64 / n_bins as f64,
                upper: (b + 1) as f64 / n_bins as f64,
                count: count[b],
                mean_pred,
                frac_pos,
            }
        })
        .collect();
    Ok(Some(Calibration { ece, bins }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn hand_computed() {
        // Bin [0, .5): {0.1 -, 0.3 +}: mean 0.2, frac 0.5, gap 0.3, weight 2/5.
        // Bin [.5, 1]: {0.6 +, 0.9 +, 0.95 -}: mean 2.45/3, frac 2/3, gap 0.15, weight 3/5.
        // ECE = 0.4·0.3 + 0.6·0.15 = 0.21.
        let c = calibration(&[0.1, 0.3, 0.6, 0.9, 0.95], &[0, 1, 1, 1, 0], 2)
            .unwrap()
            .unwrap();
        assert!(close(c.ece, 0.21), "{}", c.ece);
        assert_eq!(c.bins.len(), 2);
        let (b0, b1) = (&c.bins[0], &c.bins[1]);
        assert_eq!((b0.lower, b0.upper, b0.count), (0.0, 0.5, 2));
        assert_eq!((b1.lower, b1.upper, b1.count), (0.5, 1.0, 3));
        assert!(close(b0.mean_pred.unwrap(), 0.2));
        assert!(close(b0.frac_pos.unwrap(), 0.5));
        assert!(close(b1.mean_pred.unwrap(), 2.45 / 3.0));
        assert!(close(b1.frac_pos.unwrap(), 2.0 / 3.0));
    }

    #[test]
    fn edges_and_empty_bins() {
        // 4 bins of width 0.25: 0.0 -> 0, 0.5 -> 2, 1.0 -> 3 (last bin holds 1.0), bin 1 empty.
        let c = calibration(&[0.0, 0.5, 1.0], &[0, 1, 1], 4)
            .unwrap()
            .unwrap();
        let counts: Vec<u64> = c.bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![1, 0, 1, 1]);
        assert_eq!(c.bins[1].mean_pred, None);
        assert_eq!(c.bins[1].frac_pos, None);
        // Gaps: 0, |0.5 - 1| = 0.5, 0 -> ECE = 0.5 / 3.
        assert!(close(c.ece, 0.5 / 3.0));
    }

    #[test]
    fn perfectly_calibrated_is_zero() {
        let c = calibration(&[0.5, 0.5], &[0, 1], 10).unwrap().unwrap();
        assert_eq!(c.ece, 0.0);
    }

    #[test]
    fn empty_and_invalid() {
        assert_eq!(calibration(&[], &[], 10).unwrap(), None);
        assert!(matches!(
            calibration(&[0.5], &[1], 0),
            Err(MetricError::InvalidArgument(_))
        ));
        assert!(matches!(
            calibration(&[0.5], &[1], MAX_BINS + 1),
            Err(MetricError::InvalidArgument(_))
        ));
        assert!(matches!(
            calibration(&[-0.1], &[1], 10),
            Err(MetricError::ProbabilityOutOfRange { index: 0, .. })
        ));
        assert!(matches!(
            calibration(&[0.5], &[1, 0], 10),
            Err(MetricError::LengthMismatch { .. })
        ));
        assert!(matches!(
            calibration(&[0.5], &[7], 10),
            Err(MetricError::InvalidLabel { .. })
        ));
    }
}
