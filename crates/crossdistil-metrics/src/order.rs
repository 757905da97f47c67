//! Shared machinery for the rank metrics: an order-preserving integer key for `f32` scores,
//! and the tie-aware pair count over a run of rows sorted by that key.

/// Maps a non-NaN score to a `u32` whose unsigned order is the numeric order of the scores.
///
/// `-0.0` and `+0.0` map to the same key (they are equal scores, hence a tie); infinities are
/// ordered as numbers. The caller must have rejected NaN.
#[inline]
pub(crate) fn score_key(score: f32) -> u32 {
    // `-0.0 + 0.0 == +0.0` under round-to-nearest, so both zeros share one bit pattern.
    let bits = (score + 0.0).to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// Pair counts of one two-class comparison: `wins2` is twice the number of (positive,
/// negative) pairs where the positive scores higher, plus the number of tied pairs (so ties
/// count one half, and everything stays an exact integer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PairCount {
    pub wins2: u128,
    pub pos: u64,
    pub neg: u64,
}

impl PairCount {
    /// `wins2 / (2 · pos · neg)`, or `None` when either side is empty.
    #[inline]
    pub fn auc(&self) -> Option<f64> {
        ratio(self.wins2, self.pos, self.neg)
    }
}

/// `wins2 / (2 · a · b)` as `f64`, or `None` when `a` or `b` is zero. Shared by [`PairCount`]
/// and the multi-class metric so both give bit-identical values on identical counts.
#[inline]
pub(crate) fn ratio(wins2: u128, a: u64, b: u64) -> Option<f64> {
    if a == 0 || b == 0 {
        None
    } else {
        Some(wins2 as f64 / (2 * u128::from(a) * u128::from(b)) as f64)
    }
}

/// Counts pairs over `rows`, which must be sorted ascending by `key` (equal keys = tied
/// scores). `positive` tells the class of a row.
///
/// Walks the tie groups from the lowest score up; a group with `p` positives and `q`
/// negatives, above `below` negatives, adds `p · (2·below + q)` to `wins2`.
pub(crate) fn count_sorted<T>(
    rows: &[T],
    key: impl Fn(&T) -> u64,
    positive: impl Fn(&T) -> bool,
) -> PairCount {
    let mut count = PairCount::default();
    let mut i = 0;
    while i < rows.len() {
        let k = key(&rows[i]);
        let (mut p, mut q) = (0u64, 0u64);
        while i < rows.len() && key(&rows[i]) == k {
            if positive(&rows[i]) {
                p += 1;
            } else {
                q += 1;
            }
            i += 1;
        }
        count.wins2 += u128::from(p) * (2 * u128::from(count.neg) + u128::from(q));
        count.pos += p;
        count.neg += q;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_preserves_order_and_merges_zeros() {
        let xs = [
            f32::NEG_INFINITY,
            -1e30,
            -1.0,
            -f32::MIN_POSITIVE,
            -0.0,
            0.0,
            f32::MIN_POSITIVE,
            0.5,
            1.0,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            if w[0] == w[1] {
                assert_eq!(score_key(w[0]), score_key(w[1]));
            } else {
                assert!(score_key(w[0]) < score_key(w[1]), "{} vs {}", w[0], w[1]);
            }
        }
        assert_eq!(score_key(-0.0), score_key(0.0));
    }

    #[test]
    fn ratio_none_on_empty_side() {
        assert_eq!(ratio(0, 0, 3), None);
        assert_eq!(ratio(0, 3, 0), None);
        assert_eq!(ratio(3, 1, 2), Some(0.75));
    }
}
