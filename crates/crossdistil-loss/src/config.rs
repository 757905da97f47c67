//! The configuration of the objective: CrossDistil and the baselines of its ablation, in one
//! table (a run's `[distill]` section).
//!
//! | `mode` | teacher heads | ranking loss | calibrator | distillation |
//! |---|---|---|---|---|
//! | `off` (the backbone alone) | no | no | no | no |
//! | `aux-only` (auxiliary ranking tasks, no distillation) | yes | `beta` | no | no |
//! | `direct` (task B's student prediction as task A's soft label) | no | no | no | `alpha` |
//! | `crossdistil` | yes | `beta` | `gamma` (or refit) unless `calibration = false` | `alpha`, corrected |
//!
//! The two remaining rows of the ablation are `crossdistil` with `calibration = false` (the
//! target is `sigmoid(r)`) and with `error_correction = "none"`.
//!
//! [`DistillConfig::validate`] names its keys relative to the table (`alpha`, `ranking.margin`);
//! the configuration that holds it prefixes them with [`ConfigError::within`].

use crossdistil_core::ConfigError;
use serde::{Deserialize, Serialize};

use crate::error_correction::ErrorCorrection;
use crate::kd::KdSchedule;
use crate::ranking::RankingConfig;

/// Which terms of the objective are on. TOML: `"off"`, `"aux-only"`, `"direct"`,
/// `"crossdistil"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DistillMode {
    /// The backbone alone: BCE only.
    #[default]
    Off,
    /// Teacher heads trained by the ranking loss; nothing distilled.
    AuxOnly,
    /// Each task's student learns the other tasks' student predictions (mean over them).
    Direct,
    /// Ranking teachers, calibrated, error-corrected, distilled into each task's student.
    Crossdistil,
}

/// How the calibrator is fitted. TOML: `"online"`, `"refit-valid"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CalibratorFit {
    /// By its BCE loss (weight `gamma`) on every training batch, the teacher score detached.
    #[default]
    Online,
    /// Refitted (maximum-likelihood Platt scaling, [`crate::fit_platt`]) on held-out data by the
    /// trainer; the objective then has no calibration term.
    RefitValid,
}

/// The weights and variants of the objective's terms. TOML, every key optional (defaults in
/// brackets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    /// Which terms are on (`off`).
    pub mode: DistillMode,
    /// Weight of the distillation loss after warm-up and ramp (0.5).
    pub alpha: f64,
    /// Weight of the auxiliary ranking loss (0.1). 0.1 was chosen on Adult's validation split: at
    /// 1.0 the ranking loss pulls the shared layers away from the students (docs/results.md).
    pub beta: f64,
    /// Weight of the calibration loss (1.0).
    pub gamma: f64,
    /// Weight of the teacher's own BCE, `BCE(r_k, y_k)` on its raw score, beside the ranking
    /// loss (0: the teacher learns from the ranking loss alone, as in the paper). An option for
    /// studying what makes the teacher rank better than its student.
    pub teacher_bce: f64,
    /// `false`: distil `sigmoid(r)` instead of the calibrated `sigmoid(P r + Q)` (`true`).
    pub calibration: bool,
    /// How the calibrator is fitted (`online`).
    pub calibrator: CalibratorFit,
    /// Learning rate of the calibrators' two scalars per task (online fitting; 0.05): much larger
    /// than the network's, so that `P` and `Q` follow the teacher's scale as it grows. Read by
    /// the trainer, not by the objective.
    pub calibrator_lr: f64,
    /// Correction of the teacher's target where it contradicts the label (`clamp-student`).
    pub error_correction: ErrorCorrection,
    /// Distillation weight 0 for this many steps (0) ...
    pub warmup_steps: u64,
    /// ... then a linear ramp to `alpha` over this many (0: at once).
    pub ramp_steps: u64,
    /// Softens teacher and student logits by this temperature (1: none).
    pub temperature: f64,
    /// One factor per task, in the run's task order, on the distillation weight: task `k`'s
    /// term is `task_alpha[k] alpha(step) KD_k`. Empty (the default): 1 for every task.
    pub task_alpha: Vec<f64>,
    /// Distil a row only where the calibrated teacher is this confident, `max(q, 1 - q) >=
    /// min_confidence` for its probability `q` (before error correction); the other rows'
    /// terms are 0. 0 (the default): every row. In `[0, 1)`.
    pub min_confidence: f64,
    /// One count per task, in the run's task order: every training batch gets this many extra
    /// rows drawn (with replacement) from the positives of that task in the train split, which
    /// only the ranking loss sees (their weight is 0 in every other term, and the batch's own
    /// rows are re-weighted so that those terms keep their values). Keeps a rare task's levels
    /// present in every batch. Read by the trainer's batch source, not by the objective. Empty
    /// (the default): none.
    pub extra_positives: Vec<usize>,
    /// The auxiliary ranking loss.
    pub ranking: RankingConfig,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            mode: DistillMode::Off,
            alpha: 0.5,
            beta: 0.1,
            gamma: 1.0,
            teacher_bce: 0.0,
            calibration: true,
            calibrator: CalibratorFit::Online,
            calibrator_lr: 0.05,
            error_correction: ErrorCorrection::default(),
            warmup_steps: 0,
            ramp_steps: 0,
            temperature: 1.0,
            task_alpha: Vec::new(),
            min_confidence: 0.0,
            extra_positives: Vec::new(),
            ranking: RankingConfig::default(),
        }
    }
}

impl DistillConfig {
    /// Whether the model needs teacher heads and calibrators (`aux-only`, `crossdistil`).
    pub fn needs_teachers(&self) -> bool {
        matches!(self.mode, DistillMode::AuxOnly | DistillMode::Crossdistil)
    }

    /// Whether the objective has the calibration term: `crossdistil` with `calibration` and
    /// online fitting.
    pub fn trains_calibrators(&self) -> bool {
        self.mode == DistillMode::Crossdistil
            && self.calibration
            && self.calibrator == CalibratorFit::Online
    }

    /// The schedule of the distillation weight.
    pub fn schedule(&self) -> KdSchedule {
        KdSchedule {
            warmup_steps: self.warmup_steps,
            ramp_steps: self.ramp_steps,
        }
    }

    /// Checks every value; the error names the key relative to this table (`alpha`,
    /// `ranking.margin`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("gamma", self.gamma),
            ("teacher_bce", self.teacher_bce),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError::new(key, format!("must be >= 0 (got {v})")));
            }
        }
        for (key, v) in [
            ("calibrator_lr", self.calibrator_lr),
            ("temperature", self.temperature),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::new(key, format!("must be > 0 (got {v})")));
            }
        }
        if let Some((i, v)) = self
            .task_alpha
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(ConfigError::new(
                format!("task_alpha[{i}]"),
                format!("must be >= 0 (got {v})"),
            ));
        }
        if !(0.0..1.0).contains(&self.min_confidence) {
            return Err(ConfigError::new(
                "min_confidence",
                format!(
                    "must lie in [0, 1) (got {}); 0 distils every row",
                    self.min_confidence
                ),
            ));
        }
        if self.extra_positives.iter().any(|&n| n > 0) && !self.needs_teachers() {
            return Err(ConfigError::new(
                "extra_positives",
                "only the ranking loss reads the extra rows, and this mode has none: set mode = \"crossdistil\" or \"aux-only\", or remove extra_positives",
            ));
        }
        self.ranking.validate().map_err(|e| e.within("ranking"))?;
        self.error_correction
            .validate()
            .map_err(|e| e.within("error_correction"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_off() {
        let c = DistillConfig::default();
        assert!(c.validate().is_ok());
        assert!(!c.needs_teachers());
        assert!(!c.trains_calibrators());
        let c = DistillConfig {
            mode: DistillMode::Crossdistil,
            ..DistillConfig::default()
        };
        assert!(c.needs_teachers() && c.trains_calibrators());
    }

    #[test]
    fn errors_name_the_key_relative_to_the_table() {
        let bad = |f: fn(&mut DistillConfig)| {
            let mut c = DistillConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.alpha = -1.0).key, "alpha");
        assert_eq!(bad(|c| c.gamma = f64::NAN).key, "gamma");
        assert_eq!(bad(|c| c.temperature = 0.0).key, "temperature");
        assert_eq!(
            bad(|c| c.calibrator_lr = f64::INFINITY).key,
            "calibrator_lr"
        );
        assert_eq!(bad(|c| c.ranking.margin = -1.0).key, "ranking.margin");
        assert_eq!(bad(|c| c.task_alpha = vec![1.0, -0.5]).key, "task_alpha[1]");
        assert_eq!(bad(|c| c.min_confidence = 1.0).key, "min_confidence");
        assert_eq!(bad(|c| c.min_confidence = f64::NAN).key, "min_confidence");
        assert_eq!(
            bad(|c| c.extra_positives = vec![8, 0]).key,
            "extra_positives"
        );
        let e = bad(|c| c.error_correction = ErrorCorrection::Blend(7.0)).within("distill");
        assert_eq!(e.key, "distill.error_correction.blend");
    }
}
