//! Group AUC: per-user AUC averaged with the users' row counts as weights.

use serde::{Deserialize, Serialize};

use crate::error::{MetricError, check_labels, check_len, check_scores};
use crate::order::{count_sorted, score_key};

/// The result of [`gauc`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gauc {
    /// The weighted mean of per-user AUCs; `None` when no user has both classes.
    pub value: Option<f64>,
    /// Users with at least one positive and one negative row (those that count).
    pub users_used: u64,
    /// Users whose rows are all of one class (left out).
    pub users_skipped: u64,
    /// Total rows of the used users: the denominator of the weighting.
    pub rows_used: u64,
}

/// Group AUC (GAUC).
///
/// Inputs: `scores`, `labels` and `groups` of the same length `n`; `labels[i]` is 0 or 1,
/// `groups[i]` is the user (any `u32` id, rows of one user need not be adjacent).
///
/// Formula: let `U` be the users having both a positive and a negative row, `n_u` the number
/// of rows of user `u` and `AUC_u` the [`auc`](crate::auc()) of that user's rows alone. Then
///
/// ```text
/// GAUC = Σ_{u ∈ U} n_u · AUC_u / Σ_{u ∈ U} n_u
/// ```
///
/// Users whose rows are all one class have no AUC; they are left out and counted in
/// [`Gauc::users_skipped`]. `value` is `None` when `U` is empty (including empty input).
///
/// Cost: one sort of all rows by `(group, score)`, then one linear pass; `O(n log n)` time,
/// `16·n` bytes of scratch.
///
/// # Errors
/// [`MetricError::LengthMismatch`], [`MetricError::InvalidLabel`], [`MetricError::NanScore`].
pub fn gauc(scores: &[f32], labels: &[u8], groups: &[u32]) -> Result<Gauc, MetricError> {
    check_len("labels", scores.len(), labels.len())?;
    check_len("groups", scores.len(), groups.len())?;
    check_labels(labels)?;
    check_scores(scores)?;

    // (group, score) packed in one u64 key so that the sort orders by group, then by score.
    let mut rows: Vec<(u64, u8)> = scores
        .iter()
        .zip(labels)
        .zip(groups)
        .map(|((&s, &y), &g)| ((u64::from(g) << 32) | u64::from(score_key(s)), y))
        .collect();
    rows.sort_unstable();

    let mut out = Gauc {
        value: None,
        users_used: 0,
        users_skipped: 0,
        rows_used: 0,
    };
    let mut weighted = 0.0f64;
    for user in rows.chunk_by(|a, b| a.0 >> 32 == b.0 >> 32) {
        let count = count_sorted(user, |r| r.0, |r| r.1 == 1);
        match count.auc() {
            Some(a) => {
                let n = user.len() as u64;
                out.users_used += 1;
                out.rows_used += n;
                weighted += n as f64 * a;
            }
            None => out.users_skipped += 1,
        }
    }
    if out.rows_used > 0 {
        out.value = Some(weighted / out.rows_used as f64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_users_one_single_class() {
        // User 7: scores [0.1, 0.4, 0.35, 0.8], labels [0, 0, 1, 1] -> AUC 3/4, 4 rows.
        // User 3: scores [0.3, 0.3, 0.9], labels [1, 0, 0] -> (½ + 0) / 2 = 1/4, 3 rows.
        // User 5: all positive -> skipped.
        // GAUC = (4·0.75 + 3·0.25) / 7 = 3.75 / 7.
        // Rows of the users are interleaved on purpose.
        let scores = [0.1, 0.3, 0.5, 0.4, 0.3, 0.6, 0.35, 0.9, 0.8];
        let labels = [0, 1, 1, 0, 0, 1, 1, 0, 1];
        let groups = [7, 3, 5, 7, 3, 5, 7, 3, 7];
        let g = gauc(&scores, &labels, &groups).unwrap();
        assert_eq!(g.users_used, 2);
        assert_eq!(g.users_skipped, 1);
        assert_eq!(g.rows_used, 7);
        let v = g.value.unwrap();
        assert!((v - 3.75 / 7.0).abs() < 1e-12, "{v}");
    }

    #[test]
    fn same_score_in_different_users_is_not_a_tie() {
        // User 1: pos 0.5 > neg 0.2. User 2: neg 0.5 > pos 0.2 would be a tie across users
        // if groups leaked into each other; each user alone is 1.0 and 0.0.
        let g = gauc(&[0.5, 0.2, 0.5, 0.2], &[1, 0, 0, 1], &[1, 1, 2, 2]).unwrap();
        assert_eq!(g.value, Some(0.5));
        assert_eq!(g.users_used, 2);
    }

    #[test]
    fn large_ids_do_not_collide() {
        let g = gauc(
            &[0.9, 0.1, 0.1, 0.9],
            &[1, 0, 1, 0],
            &[u32::MAX, u32::MAX, 0, 0],
        )
        .unwrap();
        assert_eq!(g.value, Some(0.5));
        assert_eq!(g.users_used, 2);
    }

    #[test]
    fn undefined_and_invalid() {
        let empty = gauc(&[], &[], &[]).unwrap();
        assert_eq!(empty.value, None);
        assert_eq!(
            (empty.users_used, empty.users_skipped, empty.rows_used),
            (0, 0, 0)
        );
        let single = gauc(&[0.1, 0.2], &[1, 1], &[4, 4]).unwrap();
        assert_eq!(single.value, None);
        assert_eq!(single.users_skipped, 1);
        assert!(matches!(
            gauc(&[0.1, 0.2], &[1, 0], &[4]),
            Err(MetricError::LengthMismatch { what: "groups", .. })
        ));
        assert!(matches!(
            gauc(&[0.1, f32::NAN], &[1, 0], &[4, 4]),
            Err(MetricError::NanScore { index: 1 })
        ));
    }

    #[test]
    fn million_rows() {
        // 1e6 rows, 1e5 users of 10 interleaved rows each; scores follow labels exactly so every
        // user has AUC 1, except users whose pseudo-random labels are all one class.
        let n = 1_000_000usize;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut scores = Vec::with_capacity(n);
        let mut labels = Vec::with_capacity(n);
        let mut groups = Vec::with_capacity(n);
        for i in 0..n {
            let r = next();
            let y = (r & 1) as u8;
            labels.push(y);
            scores.push(f32::from(y) + ((r >> 8) % 1000) as f32 / 2000.0);
            groups.push((i * 7919 % 100_000) as u32);
        }
        let g = gauc(&scores, &labels, &groups).unwrap();
        assert_eq!(g.value, Some(1.0));
        assert_eq!(g.users_used + g.users_skipped, 100_000);
        assert!(g.users_skipped < 1_000, "{g:?}");
        assert_eq!(g.rows_used, 10 * g.users_used);
    }
}
