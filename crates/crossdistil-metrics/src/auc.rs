//! Exact ROC AUC of one binary task.

use crate::error::{MetricError, check_labels, check_len, check_scores};
use crate::order::{count_sorted, score_key};

/// Exact area under the ROC curve.
///
/// Inputs: `scores` and `labels` of the same length `n`; `labels[i]` is 0 or 1, scores are
/// any non-NaN `f32` (only their order matters).
///
/// Formula (the Mann-Whitney statistic with midranks): with `P` positives and `N` negatives,
///
/// ```text
/// AUC = ( #{(i, j) : y_i = 1, y_j = 0, s_i > s_j} + ½ · #{(i, j) : y_i = 1, y_j = 0, s_i = s_j} ) / (P · N)
/// ```
///
/// Computed with one sort, `O(n log n)`, and exact integer pair counts.
///
/// Returns `Ok(None)` when `P = 0` or `N = 0` (including empty input): AUC is undefined.
///
/// # Errors
/// [`MetricError::LengthMismatch`], [`MetricError::InvalidLabel`], [`MetricError::NanScore`].
///
/// ```
/// let auc = crossdistil_metrics::auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]).unwrap();
/// assert_eq!(auc, Some(0.75));
/// ```
pub fn auc(scores: &[f32], labels: &[u8]) -> Result<Option<f64>, MetricError> {
    check_len("labels", scores.len(), labels.len())?;
    check_labels(labels)?;
    check_scores(scores)?;
    // Score key in the high bits, label in the lowest: one sort of plain u64s.
    let mut rows: Vec<u64> = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| (u64::from(score_key(s)) << 1) | u64::from(y))
        .collect();
    rows.sort_unstable();
    Ok(count_sorted(&rows, |r| r >> 1, |r| r & 1 == 1).auc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_counted() {
        // Pairs (pos, neg): 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4.
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]).unwrap(),
            Some(0.75)
        );
    }

    #[test]
    fn ties_count_half() {
        // pos {0.5, 0.9}, neg {0.5, 0.2}: (0.5,0.5) tie ½, (0.5,0.2) 1, (0.9,0.5) 1, (0.9,0.2) 1
        // -> 3.5 / 4.
        let got = auc(&[0.5, 0.9, 0.5, 0.2], &[1, 1, 0, 0]).unwrap();
        assert_eq!(got, Some(0.875));
        // All scores equal: every pair is a tie.
        assert_eq!(auc(&[0.3; 5], &[1, 0, 0, 1, 0]).unwrap(), Some(0.5));
        // Signed zeros are the same score.
        assert_eq!(auc(&[-0.0, 0.0], &[1, 0]).unwrap(), Some(0.5));
    }

    #[test]
    fn perfect_and_reversed() {
        assert_eq!(auc(&[0.1, 0.2, 0.3], &[0, 1, 1]).unwrap(), Some(1.0));
        assert_eq!(auc(&[0.1, 0.2, 0.3], &[1, 0, 0]).unwrap(), Some(0.0));
        let inf = f32::INFINITY;
        assert_eq!(auc(&[-inf, inf], &[0, 1]).unwrap(), Some(1.0));
    }

    #[test]
    fn undefined_is_none() {
        assert_eq!(auc(&[], &[]).unwrap(), None);
        assert_eq!(auc(&[0.1, 0.2], &[1, 1]).unwrap(), None);
        assert_eq!(auc(&[0.1, 0.2], &[0, 0]).unwrap(), None);
    }

    #[test]
    fn invalid_input_is_an_error() {
        assert_eq!(
            auc(&[0.1, 0.2], &[1]),
            Err(MetricError::LengthMismatch {
                what: "labels",
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            auc(&[0.1, 0.2], &[1, 2]),
            Err(MetricError::InvalidLabel { index: 1, value: 2 })
        );
        assert_eq!(
            auc(&[0.1, f32::NAN], &[1, 0]),
            Err(MetricError::NanScore { index: 1 })
        );
    }
}
