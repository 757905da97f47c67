//! The `[distill]` section: CrossDistil and the baselines of its ablation, in one configuration.
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

use crossdistil_loss::distill::KdSchedule;
use crossdistil_loss::error_correction::ErrorCorrection;
use crossdistil_loss::quadruplet::RankingConfig;
use crossdistil_model::TeacherConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DistillMode {
    /// The backbone alone.
    #[default]
    Off,
    /// Teacher heads trained by the ranking loss; nothing distilled.
    AuxOnly,
    /// Each task's student learns the other tasks' student predictions (mean over them).
    Direct,
    /// Ranking teachers, calibrated, error-corrected, distilled into each task's student.
    Crossdistil,
}

/// How the calibrator is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CalibratorFit {
    /// By its BCE loss (weight `gamma`) on every training batch, the teacher score detached.
    #[default]
    Online,
    /// Refitted (maximum-likelihood Platt scaling) on the validation split after every epoch.
    RefitValid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    pub mode: DistillMode,
    /// Weight of the distillation loss (after warm-up and ramp).
    pub alpha: f64,
    /// Weight of the auxiliary ranking loss. 0.1 was chosen on Adult's validation split: at 1.0
    /// the ranking loss pulls the shared layers away from the students (docs/results.md).
    pub beta: f64,
    /// Weight of the calibration loss.
    pub gamma: f64,
    /// `false`: distil `sigmoid(r)` instead of the calibrated `sigmoid(P r + Q)`.
    pub calibration: bool,
    pub calibrator: CalibratorFit,
    /// Learning rate of the calibrators' two scalars per task (online fitting): much larger
    /// than the network's, so that `P` and `Q` follow the teacher's scale as it grows.
    pub calibrator_lr: f64,
    pub error_correction: ErrorCorrection,
    /// Distillation weight 0 for this many steps, then a linear ramp to `alpha`.
    pub warmup_steps: u64,
    pub ramp_steps: u64,
    /// Softens teacher and student logits by this temperature (1: none).
    pub temperature: f64,
    pub ranking: RankingConfig,
    pub teacher: TeacherConfig,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            mode: DistillMode::Off,
            alpha: 0.5,
            beta: 0.1,
            gamma: 1.0,
            calibration: true,
            calibrator: CalibratorFit::Online,
            calibrator_lr: 0.05,
            error_correction: ErrorCorrection::default(),
            warmup_steps: 0,
            ramp_steps: 0,
            temperature: 1.0,
            ranking: RankingConfig::default(),
            teacher: TeacherConfig::default(),
        }
    }
}

impl DistillConfig {
    /// Whether the model needs teacher heads and calibrators.
    pub fn needs_teachers(&self) -> bool {
        matches!(self.mode, DistillMode::AuxOnly | DistillMode::Crossdistil)
    }

    pub fn schedule(&self) -> KdSchedule {
        KdSchedule {
            warmup_steps: self.warmup_steps,
            ramp_steps: self.ramp_steps,
        }
    }

    /// Checks every value; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("distill.alpha", self.alpha),
            ("distill.beta", self.beta),
            ("distill.gamma", self.gamma),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{key} must be >= 0 (got {v})"));
            }
        }
        if !(self.calibrator_lr.is_finite() && self.calibrator_lr > 0.0) {
            return Err(format!(
                "distill.calibrator_lr must be > 0 (got {})",
                self.calibrator_lr
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!(
                "distill.temperature must be > 0 (got {})",
                self.temperature
            ));
        }
        self.ranking
            .validate()
            .map_err(|e| format!("distill.ranking.{e}"))?;
        self.error_correction
            .validate()
            .map_err(|e| format!("distill.error_correction: {e}"))?;
        self.teacher
            .validate()
            .map_err(|e| format!("distill.teacher.{e}"))?;
        Ok(())
    }
}
