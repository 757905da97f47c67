//! Multi-class graded AUC: pairwise AUC over ranked classes, averaged over class pairs.

use serde::{Deserialize, Serialize};

use crate::error::{MetricError, check_len, check_scores};
use crate::order::{ratio, score_key};

/// The largest `n_classes` [`multi_auc`] accepts: it keeps a `n_classes²` table of counts.
pub const MAX_CLASSES: u32 = 1024;

/// The AUC of one ordered class pair inside [`MultiAuc`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PairAuc {
    /// The better class (larger index).
    pub higher: u32,
    /// The worse class (smaller index).
    pub lower: u32,
    /// `P(s_higher > s_lower) + ½ P(s_higher = s_lower)`; `None` when either class is empty.
    pub auc: Option<f64>,
    /// Rows of class `higher`.
    pub n_higher: u64,
    /// Rows of class `lower`.
    pub n_lower: u64,
}

/// The result of [`multi_auc`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MultiAuc {
    /// Mean of the defined pair AUCs; `None` when no pair is defined.
    pub value: Option<f64>,
    /// Pairs where both classes have rows.
    pub pairs_used: u64,
    /// Pairs left out because a class has no rows.
    pub pairs_skipped: u64,
    /// Every pair `higher > lower`, ordered by `higher` ascending, then `lower` ascending:
    /// `(1,0), (2,0), (2,1), (3,0), …`.
    pub per_pair: Vec<PairAuc>,
}

/// Multi-class graded AUC.
///
/// Inputs: `scores` and `classes` of the same length `n`; `classes[i] < n_classes` is the
/// rank of row `i`'s class: a larger index is a better class (see
/// [`graded_classes`](crate::graded_classes) to build classes from several binary tasks).
///
/// Formula: for every ordered pair of classes `h > l`, with `n_h`, `n_l` rows,
///
/// ```text
/// AUC(h, l) = ( #{(i, j) : c_i = h, c_j = l, s_i > s_j} + ½ · #{… s_i = s_j} ) / (n_h · n_l)
/// MultiAUC  = mean of AUC(h, l) over the pairs with n_h > 0 and n_l > 0
/// ```
///
/// With two classes this is exactly [`auc`](crate::auc()) with `labels = classes`.
///
/// Cost: one sort of all scores, then one pass over the tie groups keeping per-class counts
/// of rows below; `O(n log n + G · k · C)` for `G` tie groups holding `k` distinct classes,
/// `C = n_classes`, plus a `C²` table.
///
/// # Errors
/// [`MetricError::LengthMismatch`], [`MetricError::NanScore`],
/// [`MetricError::ClassOutOfRange`], and [`MetricError::InvalidArgument`] when
/// `n_classes > MAX_CLASSES`.
pub fn multi_auc(scores: &[f32], classes: &[u32], n_classes: u32) -> Result<MultiAuc, MetricError> {
    check_len("classes", scores.len(), classes.len())?;
    check_scores(scores)?;
    if n_classes > MAX_CLASSES {
        return Err(MetricError::InvalidArgument(
            "n_classes exceeds MAX_CLASSES",
        ));
    }
    if let Some(index) = classes.iter().position(|&c| c >= n_classes) {
        return Err(MetricError::ClassOutOfRange {
            index,
            class: classes[index],
            n_classes,
        });
    }
    let c_count = n_classes as usize;

    let mut rows: Vec<u64> = scores
        .iter()
        .zip(classes)
        .map(|(&s, &c)| (u64::from(score_key(s)) << 32) | u64::from(c))
        .collect();
    rows.sort_unstable();

    // wins2[h * C + l]: 2·#(h above l) + #(h tied with l), for h > l.
    let mut wins2 = vec![0u128; c_count * c_count];
    let mut below = vec![0u64; c_count];
    let mut in_group = vec![0u64; c_count];
    let mut present: Vec<usize> = Vec::new();
    for group in rows.chunk_by(|a, b| a >> 32 == b >> 32) {
        for &r in group {
            let c = (r & 0xffff_ffff) as usize;
            if in_group[c] == 0 {
                present.push(c);
            }
            in_group[c] += 1;
        }
        for &h in &present {
            let gh = u128::from(in_group[h]);
            let row = &mut wins2[h * c_count..h * c_count + h];
            for (l, w) in row.iter_mut().enumerate() {
                *w += gh * (2 * u128::from(below[l]) + u128::from(in_group[l]));
            }
        }
        for &c in &present {
            below[c] += in_group[c];
            in_group[c] = 0;
        }
        present.clear();
    }
    // After the pass, `below` holds the class totals.
    let totals = below;

    let mut per_pair = Vec::with_capacity(c_count * c_count.saturating_sub(1) / 2);
    let (mut sum, mut used, mut skipped) = (0.0f64, 0u64, 0u64);
    for h in 1..c_count {
        for l in 0..h {
            let auc = ratio(wins2[h * c_count + l], totals[h], totals[l]);
            match auc {
                Some(a) => {
                    sum += a;
                    used += 1;
                }
                None => skipped += 1,
            }
            per_pair.push(PairAuc {
                higher: h as u32,
                lower: l as u32,
                auc,
                n_higher: totals[h],
                n_lower: totals[l],
            });
        }
    }
    Ok(MultiAuc {
        value: (used > 0).then(|| sum / used as f64),
        pairs_used: used,
        pairs_skipped: skipped,
        per_pair,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_classes_one_empty() {
        // class 0: {0.1, 0.3}; class 1: {0.3, 0.5}; class 2: empty; class 3: {0.6, 0.2}.
        // (1,0): 0.3>0.1, 0.3=0.3 (½), 0.5>0.1, 0.5>0.3 -> 3.5/4 = 0.875
        // (3,0): 0.6>0.1, 0.6>0.3, 0.2>0.1, 0.2<0.3     -> 3/4   = 0.75
        // (3,1): 0.6>0.3, 0.6>0.5, 0.2<0.3, 0.2<0.5     -> 2/4   = 0.5
        // (2,0), (2,1), (3,2): skipped. Mean = 2.125 / 3.
        let scores = [0.1, 0.3, 0.6, 0.3, 0.5, 0.2];
        let classes = [0, 1, 3, 0, 1, 3];
        let m = multi_auc(&scores, &classes, 4).unwrap();
        assert_eq!(m.pairs_used, 3);
        assert_eq!(m.pairs_skipped, 3);
        assert!((m.value.unwrap() - 2.125 / 3.0).abs() < 1e-12);
        let got: Vec<(u32, u32, Option<f64>, u64, u64)> = m
            .per_pair
            .iter()
            .map(|p| (p.higher, p.lower, p.auc, p.n_higher, p.n_lower))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, Some(0.875), 2, 2),
                (2, 0, None, 0, 2),
                (2, 1, None, 0, 2),
                (3, 0, Some(0.75), 2, 2),
                (3, 1, Some(0.5), 2, 2),
                (3, 2, None, 2, 0),
            ]
        );
    }

    #[test]
    fn three_classes_with_ties() {
        // class 0: {0.2}; class 1: {0.2, 0.4}; class 2: {0.4}.
        // (1,0): 0.2=0.2 ½, 0.4>0.2 1 -> 1.5/2 = 0.75
        // (2,0): 1/1 = 1;  (2,1): 0.4>0.2 1, 0.4=0.4 ½ -> 0.75
        let m = multi_auc(&[0.4, 0.2, 0.2, 0.4], &[2, 1, 0, 1], 3).unwrap();
        let aucs: Vec<Option<f64>> = m.per_pair.iter().map(|p| p.auc).collect();
        assert_eq!(aucs, vec![Some(0.75), Some(1.0), Some(0.75)]);
        assert!((m.value.unwrap() - 2.5 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn two_classes_equal_auc() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.1];
        let labels = [0u8, 0, 1, 1, 1, 0];
        let classes: Vec<u32> = labels.iter().map(|&y| u32::from(y)).collect();
        let m = multi_auc(&scores, &classes, 2).unwrap();
        assert_eq!(m.value, crate::auc(&scores, &labels).unwrap());
    }

    #[test]
    fn degenerate_and_invalid() {
        let m = multi_auc(&[], &[], 3).unwrap();
        assert_eq!((m.value, m.pairs_used, m.pairs_skipped), (None, 0, 3));
        let m = multi_auc(&[0.1], &[0], 1).unwrap();
        assert_eq!((m.value, m.per_pair.len()), (None, 0));
        let m = multi_auc(&[], &[], 0).unwrap();
        assert_eq!(m.value, None);
        assert_eq!(
            multi_auc(&[0.1, 0.2], &[0, 3], 3),
            Err(MetricError::ClassOutOfRange {
                index: 1,
                class: 3,
                n_classes: 3
            })
        );
        assert!(matches!(
            multi_auc(&[0.1], &[0], MAX_CLASSES + 1),
            Err(MetricError::InvalidArgument(_))
        ));
        assert!(matches!(
            multi_auc(&[f32::NAN], &[0], 2),
            Err(MetricError::NanScore { index: 0 })
        ));
        assert!(matches!(
            multi_auc(&[0.1], &[], 2),
            Err(MetricError::LengthMismatch { .. })
        ));
    }
}
