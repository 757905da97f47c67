//! The auxiliary ranking loss over graded levels (the "quadruplet" loss of CrossDistil).
//!
//! Inputs: the teacher scores `r`, `[b]` (any float dtype), and one graded level per row, `[b]`
//! (see [`crate::levels`]). A higher level should score higher.
//!
//! Our interpretation (the paper's exact loss was not available): take the levels **present** in
//! the batch in decreasing order, `L_1 > L_2 > ... > L_m`, and form level pairs `(h, l)`:
//!
//! - [`LevelPairs::Adjacent`] (default): `(L_1, L_2), (L_2, L_3), ..., (L_{m-1}, L_m)`. An empty
//!   level is skipped, not a break in the chain: nested tasks (purchase implies click) leave one
//!   class empty for ever, and the present classes are still all ordered (levels `{3, 2, 0}` give
//!   the pairs `(3, 2)` and `(2, 0)`).
//! - [`LevelPairs::All`]: every pair `h > l` of present levels.
//!
//! For each level pair the loss is the mean of a pair loss over the pairs `i` in level `h`, `j` in
//! level `l`, with `d = r_i - r_j`:
//!
//! ```text
//! bpr:   -log sigmoid(d) = softplus(-d)
//! hinge: max(0, margin - d)
//! L_aux = sum over level pairs (h, l) of mean_{i in h, j in l} pair_loss(r_i - r_j)
//! ```
//!
//! Every pair: one fused pass over `n_h x n_l` differences ([`crate::pairwise`]). With `max_pairs > 0` and
//! `n_h * n_l > max_pairs`, `max_pairs` pairs `(i, j)` are drawn uniformly with replacement from
//! the `rng` and the mean is over those. The loss sees score differences only: adding a constant
//! to every score leaves it unchanged (the calibrator's offset `Q` supplies the scale).

use candle_core::{Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::pairwise::{PairKind, pair_mean};
use crate::stable::softplus;
use crossdistil_core::ConfigError;

/// Which level pairs the loss orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LevelPairs {
    /// Each present level with the next lower present level.
    #[default]
    Adjacent,
    /// Every pair of present levels.
    All,
}

/// The loss of one ordered pair with score difference `d = r_high - r_low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankingKind {
    /// Bayesian personalised ranking: `-log sigmoid(d)`.
    #[default]
    Bpr,
    /// `max(0, margin - d)`.
    Hinge,
}

/// The auxiliary ranking loss. TOML, every key optional:
/// `{ pairs = "adjacent" | "all", kind = "bpr" | "hinge", margin = 1.0, max_pairs = 0 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankingConfig {
    /// Which level pairs are ordered (`adjacent`).
    pub pairs: LevelPairs,
    /// The loss of one pair (`bpr`).
    pub kind: RankingKind,
    /// The hinge's margin (unused by BPR).
    pub margin: f32,
    /// At most this many sampled pairs per level pair; 0 = every pair.
    pub max_pairs: usize,
}

impl Default for RankingConfig {
    fn default() -> Self {
        RankingConfig {
            pairs: LevelPairs::Adjacent,
            kind: RankingKind::Bpr,
            margin: 1.0,
            max_pairs: 0,
        }
    }
}

impl RankingConfig {
    /// Checks that the margin is finite and `>= 0` (key `margin`).
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(ConfigError::new(
                "margin",
                format!("must be finite and >= 0, got {}", self.margin),
            ));
        }
        Ok(())
    }
}

/// The levels present in `levels`, in decreasing order.
pub(crate) fn present_levels(levels: &[u32]) -> Vec<u32> {
    let mut present = levels.to_vec();
    present.sort_unstable_by(|a, b| b.cmp(a));
    present.dedup();
    present
}

/// The ordered level pairs `(high, low)` the loss sums over, given the present levels.
pub(crate) fn level_pairs(levels: &[u32], pairs: LevelPairs) -> Vec<(u32, u32)> {
    let present = present_levels(levels);
    match pairs {
        LevelPairs::Adjacent => present.windows(2).map(|w| (w[0], w[1])).collect(),
        LevelPairs::All => present
            .iter()
            .enumerate()
            .flat_map(|(a, &h)| present[a + 1..].iter().map(move |&l| (h, l)))
            .collect(),
    }
}

/// The auxiliary ranking loss (a scalar), or `None` when fewer than two levels are present:
///
/// ```text
/// L_rank = sum over level pairs (h, l) of mean_{i in h, j in l} f(r_i - r_j)
/// f(d) = softplus(-d) (bpr) or max(0, margin - d) (hinge)
/// ```
///
/// over the adjacent or all pairs `h > l` of the levels present in the batch ([`LevelPairs`]).
/// `scores`: `[b]` teacher scores `r` (f32 or f64); `levels`: `b` graded levels (see
/// [`graded_levels`](crate::graded_levels)). With `max_pairs > 0`, a level pair with more pairs
/// than that is estimated from `max_pairs` pairs drawn with replacement from `rng` (used only
/// then).
pub fn ranking_loss(
    scores: &Tensor,
    levels: &[u32],
    cfg: &RankingConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Option<Tensor>> {
    let b = scores.dims1()?;
    if b != levels.len() {
        candle_core::bail!("ranking_loss: {b} scores but {} levels", levels.len());
    }
    // index_select needs a contiguous input; a column of a [b, T] matrix is not.
    let scores = &scores.contiguous()?;
    let mut total: Option<Tensor> = None;
    for (h, l) in level_pairs(levels, cfg.pairs) {
        let term = level_pair_loss(scores, &rows_of(levels, h), &rows_of(levels, l), cfg, rng)?;
        total = Some(match total {
            None => term,
            Some(t) => t.add(&term)?,
        });
    }
    Ok(total)
}

/// The rows of `levels` at `level`, as `u32` indices.
fn rows_of(levels: &[u32], level: u32) -> Vec<u32> {
    (0u32..)
        .zip(levels)
        .filter(|&(_, &x)| x == level)
        .map(|(r, _)| r)
        .collect()
}

/// Mean pair loss between the rows `high` and the rows `low` (both non-empty).
fn level_pair_loss(
    scores: &Tensor,
    high: &[u32],
    low: &[u32],
    cfg: &RankingConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let dev = scores.device();
    let (n_h, n_l) = (high.len(), low.len());
    let diff = if cfg.max_pairs > 0 && n_h.saturating_mul(n_l) > cfg.max_pairs {
        // Uniform pairs with replacement: independent uniform i and j.
        let (mut is, mut js) = (
            Vec::with_capacity(cfg.max_pairs),
            Vec::with_capacity(cfg.max_pairs),
        );
        for _ in 0..cfg.max_pairs {
            is.push(high[rng.random_range(0..n_h)]);
            js.push(low[rng.random_range(0..n_l)]);
        }
        let s_i = scores.index_select(&Tensor::new(is.as_slice(), dev)?, 0)?;
        let s_j = scores.index_select(&Tensor::new(js.as_slice(), dev)?, 0)?;
        s_i.sub(&s_j)?
    } else {
        let s_h = scores.index_select(&Tensor::new(high, dev)?, 0)?;
        let s_l = scores.index_select(&Tensor::new(low, dev)?, 0)?;
        let kind = match cfg.kind {
            RankingKind::Bpr => PairKind::Bpr,
            RankingKind::Hinge => PairKind::Hinge {
                margin: cfg.margin as f64,
            },
        };
        return pair_mean(&s_h, &s_l, kind);
    };
    pair_loss(&diff, cfg)?.mean_all()
}

/// Elementwise pair loss of score differences `d = r_high - r_low`.
fn pair_loss(diff: &Tensor, cfg: &RankingConfig) -> Result<Tensor> {
    match cfg.kind {
        RankingKind::Bpr => softplus(&diff.neg()?),
        RankingKind::Hinge => diff.affine(-1.0, cfg.margin as f64)?.relu(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use rand::SeedableRng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    fn cfg(pairs: LevelPairs, kind: RankingKind, max_pairs: usize) -> RankingConfig {
        RankingConfig {
            pairs,
            kind,
            margin: 1.0,
            max_pairs,
        }
    }

    fn all_configs() -> Vec<RankingConfig> {
        let mut out = Vec::new();
        for pairs in [LevelPairs::Adjacent, LevelPairs::All] {
            for kind in [RankingKind::Bpr, RankingKind::Hinge] {
                for max_pairs in [0, 3] {
                    out.push(cfg(pairs, kind, max_pairs));
                }
            }
        }
        out
    }

    fn loss_f64(scores: &[f64], levels: &[u32], c: &RankingConfig) -> f64 {
        let t = Tensor::new(scores, &Device::Cpu).unwrap();
        ranking_loss(&t, levels, c, &mut rng())
            .unwrap()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    fn sp(x: f64) -> f64 {
        (1.0 + x.exp()).ln()
    }

    // No pair of a higher and a lower level is within 0.05 of the hinge's kink (d = margin = 1).
    const SCORES: [f64; 10] = [0.9, -0.3, 1.7, 0.2, -1.1, 0.55, 2.3, -0.75, 0.05, 1.15];
    const LEVELS: [u32; 10] = [3, 0, 2, 1, 0, 2, 3, 1, 0, 2];

    #[test]
    fn a_hand_computed_value_on_four_rows() {
        let scores = [1.0, 0.5, -0.2, 0.3];
        let levels = [3, 3, 1, 0];
        // Adjacent: (3, 1) mean of sp(-1.2), sp(-0.7); (1, 0): sp(-(-0.5)).
        let bpr = loss_f64(
            &scores,
            &levels,
            &cfg(LevelPairs::Adjacent, RankingKind::Bpr, 0),
        );
        let want = (sp(-1.2) + sp(-0.7)) / 2.0 + sp(0.5);
        assert!((bpr - want).abs() < 1e-12, "{bpr} vs {want}");
        // All adds (3, 0): mean of sp(-0.7), sp(-0.2).
        let all = loss_f64(&scores, &levels, &cfg(LevelPairs::All, RankingKind::Bpr, 0));
        let want_all = want + (sp(-0.7) + sp(-0.2)) / 2.0;
        assert!((all - want_all).abs() < 1e-12, "{all} vs {want_all}");
        // Hinge, margin 1: (3, 1): max(0, 1-1.2)=0, max(0, 1-0.7)=0.3 -> 0.15; (1, 0): 1.5.
        let hinge = loss_f64(
            &scores,
            &levels,
            &cfg(LevelPairs::Adjacent, RankingKind::Hinge, 0),
        );
        assert!((hinge - 1.65).abs() < 1e-12, "{hinge}");
    }

    #[test]
    fn none_with_fewer_than_two_levels() {
        let d = Device::Cpu;
        let c = RankingConfig::default();
        let t = Tensor::new(&[0.1f32, 0.4, -2.0], &d).unwrap();
        assert!(
            ranking_loss(&t, &[2, 2, 2], &c, &mut rng())
                .unwrap()
                .is_none()
        );
        let empty = Tensor::zeros(0, DType::F32, &d).unwrap();
        assert!(ranking_loss(&empty, &[], &c, &mut rng()).unwrap().is_none());
    }

    #[test]
    fn a_length_mismatch_is_an_error() {
        let t = Tensor::new(&[0.1f32, 0.4], &Device::Cpu).unwrap();
        assert!(ranking_loss(&t, &[1], &RankingConfig::default(), &mut rng()).is_err());
    }

    #[test]
    fn nested_tasks_with_an_empty_level_still_order_every_present_level() {
        // Purchase implies click: for the click task (click first, then purchase) the class
        // "-+" (a purchase without a click, level 1) never occurs.
        let levels = [3, 0, 3, 2, 0, 2];
        assert_eq!(
            level_pairs(&levels, LevelPairs::Adjacent),
            vec![(3, 2), (2, 0)]
        );
        assert_eq!(
            level_pairs(&levels, LevelPairs::All),
            vec![(3, 2), (3, 0), (2, 0)]
        );
        let scores = [2.0, -1.0, 1.5, 0.5, -0.5, 0.0];
        let got = loss_f64(
            &scores,
            &levels,
            &cfg(LevelPairs::Adjacent, RankingKind::Bpr, 0),
        );
        let mean = |h: &[usize], l: &[usize]| {
            let mut s = 0.0;
            for &i in h {
                for &j in l {
                    s += sp(scores[j] - scores[i]);
                }
            }
            s / (h.len() * l.len()) as f64
        };
        let want = mean(&[0, 2], &[3, 5]) + mean(&[3, 5], &[1, 4]);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn unchanged_when_a_constant_is_added_to_every_score() {
        for c in all_configs() {
            let base = loss_f64(&SCORES, &LEVELS, &c);
            let shifted: Vec<f64> = SCORES.iter().map(|s| s + 3.25).collect();
            let moved = loss_f64(&shifted, &LEVELS, &c);
            assert!((base - moved).abs() < 1e-9, "{c:?}: {base} vs {moved}");
        }
    }

    #[test]
    fn drops_when_the_scores_of_a_higher_level_rise() {
        for c in all_configs() {
            let base = loss_f64(&SCORES, &LEVELS, &c);
            // Raise the top level alone, then every level from 2 up (so that no pair has its
            // lower side raised): each pair across the cut gains, the others are unchanged.
            for level in [3, 2] {
                let raised: Vec<f64> = SCORES
                    .iter()
                    .zip(LEVELS)
                    .map(|(&s, l)| if l >= level { s + 2.0 } else { s })
                    .collect();
                let after = loss_f64(&raised, &LEVELS, &c);
                // A hinge on sampled pairs may have drawn only pairs already past the margin:
                // it cannot rise, but need not drop.
                if c.kind == RankingKind::Hinge && c.max_pairs > 0 {
                    assert!(after <= base, "{c:?} level {level}: {after} vs {base}");
                } else {
                    assert!(
                        after < base - 1e-6,
                        "{c:?} level {level}: {after} vs {base}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_gradient_matches_central_finite_differences() {
        let d = Device::Cpu;
        for c in all_configs() {
            let v = Var::new(&SCORES, &d).unwrap();
            let loss = ranking_loss(v.as_tensor(), &LEVELS, &c, &mut rng())
                .unwrap()
                .unwrap();
            let g: Vec<f64> = loss.backward().unwrap().get(&v).unwrap().to_vec1().unwrap();
            let mut nonzero = 0;
            for k in 0..SCORES.len() {
                let (mut a, mut b) = (SCORES, SCORES);
                a[k] += 1e-6;
                b[k] -= 1e-6;
                let fd = (loss_f64(&a, &LEVELS, &c) - loss_f64(&b, &LEVELS, &c)) / 2e-6;
                assert!(
                    (fd - g[k]).abs() < 1e-6,
                    "{c:?} row {k}: fd {fd} vs {}",
                    g[k]
                );
                nonzero += usize::from(g[k] != 0.0);
            }
            assert!(nonzero > 0, "{c:?}: zero gradient");
        }
    }

    #[test]
    fn sampling_caps_the_pairs_and_is_reproducible() {
        let c = cfg(LevelPairs::Adjacent, RankingKind::Bpr, 2);
        let t = Tensor::new(&SCORES, &Device::Cpu).unwrap();
        let a = ranking_loss(&t, &LEVELS, &c, &mut rng()).unwrap().unwrap();
        let b = ranking_loss(&t, &LEVELS, &c, &mut rng()).unwrap().unwrap();
        assert_eq!(a.to_scalar::<f64>().unwrap(), b.to_scalar::<f64>().unwrap());
        // With max_pairs >= n_h * n_l everywhere, sampling is off and the loss is the exact one.
        let big = cfg(LevelPairs::Adjacent, RankingKind::Bpr, 1000);
        let exact = cfg(LevelPairs::Adjacent, RankingKind::Bpr, 0);
        assert_eq!(
            loss_f64(&SCORES, &LEVELS, &big),
            loss_f64(&SCORES, &LEVELS, &exact)
        );
    }

    #[test]
    fn finite_at_extreme_scores_in_f32() {
        let d = Device::Cpu;
        let v = Var::new(&[-500.0f32, 500.0, 0.0], &d).unwrap();
        let loss = ranking_loss(
            v.as_tensor(),
            &[2, 0, 1],
            &RankingConfig::default(),
            &mut rng(),
        )
        .unwrap()
        .unwrap();
        assert!(loss.to_scalar::<f32>().unwrap().is_finite());
        let g: Vec<f32> = loss.backward().unwrap().get(&v).unwrap().to_vec1().unwrap();
        assert!(g.iter().all(|x| x.is_finite()), "{g:?}");
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = RankingConfig::default();
        assert_eq!(
            (c.pairs, c.kind, c.margin, c.max_pairs),
            (LevelPairs::Adjacent, RankingKind::Bpr, 1.0, 0)
        );
        assert!(c.validate().is_ok());
        let bad = RankingConfig { margin: -1.0, ..c };
        assert_eq!(bad.validate().unwrap_err().key, "margin");
    }
}
