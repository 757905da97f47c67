//! The divergence guard: stops a run whose loss or parameters have left the finite, sane range,
//! instead of letting it finish with exit 0 and a model that predicts nothing.
//!
//! A run has diverged when
//!
//! - a step's loss is not finite (also checked in [`crate::step`]);
//! - the mean loss of the last [`WINDOW`] steps of the epoch (once the window holds
//!   [`MIN_FILL`] steps, or every step of an epoch that short) exceeds `factor * early`, where
//!   `early` is the loss of the run's first step, taken at the initial parameters (so the
//!   same for any learning rate: about `ln 2` per task and per auxiliary loss), and `factor` is
//!   `train.divergence_factor` (0: off);
//! - a parameter (dense, calibrator or embedding row) is not finite, checked before every
//!   validation, so no checkpoint and no score is ever computed from such a model.
//!
//! The recent window restarts at every epoch and `early` is part of the saved
//! [`crate::run::TrainState`], so a resumed run stops exactly where an uninterrupted one does.

use std::collections::VecDeque;

use crossdistil_model::MultiTaskModel;

use crate::error::{Result, TrainError};

/// Steps in the recent window.
pub const WINDOW: usize = 32;
/// Steps the recent window holds before it is compared (fewer in an epoch that short).
pub const MIN_FILL: usize = 8;

/// Watches the loss of every step; see the module documentation.
#[derive(Debug, Clone)]
pub struct DivergenceGuard {
    factor: f64,
    early: Option<f64>,
    recent: VecDeque<f64>,
    recent_sum: f64,
    min_fill: usize,
}

impl DivergenceGuard {
    /// A guard with `factor` (0 turns the growth check off) and the first loss of an earlier
    /// call, if it had one.
    pub fn new(factor: f64, early: Option<f64>) -> Self {
        DivergenceGuard {
            factor,
            early,
            recent: VecDeque::with_capacity(WINDOW),
            recent_sum: 0.0,
            min_fill: MIN_FILL,
        }
    }

    /// The loss of the run's first step, once seen.
    pub fn early(&self) -> Option<f64> {
        self.early
    }

    /// The window of recent losses and their running sum, to be saved inside an epoch.
    pub fn recent(&self) -> (Vec<f64>, f64) {
        (self.recent.iter().copied().collect(), self.recent_sum)
    }

    /// Restores a window saved by [`DivergenceGuard::recent`] (after `start_epoch`).
    pub fn restore_recent(&mut self, losses: Vec<f64>, sum: f64) {
        self.recent = losses.into_iter().collect();
        self.recent_sum = sum;
    }

    /// Starts an epoch of `steps` steps: the recent window is emptied.
    pub fn start_epoch(&mut self, steps: usize) {
        self.recent.clear();
        self.recent_sum = 0.0;
        self.min_fill = MIN_FILL.min(steps.max(1));
    }

    /// Records the loss of step `step`; an error when the run has diverged.
    pub fn observe(&mut self, loss: f64, step: u64) -> Result<()> {
        if !loss.is_finite() {
            return Err(TrainError::Diverged(format!(
                "the loss is {loss} at step {step}; {ADVICE}"
            )));
        }
        let Some(early) = self.early else {
            self.early = Some(loss);
            return Ok(());
        };
        if self.recent.len() == WINDOW {
            self.recent_sum -= self.recent.pop_front().unwrap_or(0.0);
        }
        self.recent.push_back(loss);
        self.recent_sum += loss;
        let recent = self.recent_sum / self.recent.len() as f64;
        if self.factor > 0.0 && self.recent.len() >= self.min_fill && recent > self.factor * early {
            return Err(TrainError::Diverged(format!(
                "the mean loss of the last {} steps is {recent:.4e} at step {step}, more than \
                 train.divergence_factor = {} times the loss of the first step ({early:.4e}); \
                 {ADVICE}",
                self.recent.len(),
                self.factor
            )));
        }
        Ok(())
    }
}

const ADVICE: &str = "lower train.lr, set train.grad_clip, or raise train.divergence_factor \
                      (0 turns the growth check off), then start the run again";

/// An error naming the first parameter of `model` (dense, calibrator or embedding table) that
/// holds a value that is not finite, at step `step`.
pub fn check_parameters(model: &MultiTaskModel, step: u64) -> Result<()> {
    for (name, var) in model.params().vars() {
        let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(non_finite(&name, i, values[i], step));
        }
    }
    for table in model.input().tables() {
        if let Some(i) = table.weight.iter().position(|v| !v.is_finite()) {
            return Err(non_finite(&table.key, i, table.weight[i], step));
        }
    }
    Ok(())
}

fn non_finite(name: &str, index: usize, value: f32, step: u64) -> TrainError {
    TrainError::Diverged(format!(
        "parameter `{name}` holds {value} (element {index}) after step {step}; {ADVICE}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(guard: &mut DivergenceGuard, first_step: u64, losses: &[f64]) -> Result<()> {
        for (i, &l) in losses.iter().enumerate() {
            guard.observe(l, first_step + i as u64)?;
        }
        Ok(())
    }

    #[test]
    fn a_steady_loss_passes_and_early_is_the_first_loss() {
        let mut g = DivergenceGuard::new(10.0, None);
        g.start_epoch(500);
        let losses: Vec<f64> = (0..500).map(|i| 0.7 - 0.001 * i as f64).collect();
        run(&mut g, 1, &losses).unwrap();
        assert_eq!(g.early(), Some(0.7));
    }

    #[test]
    fn growth_past_the_factor_stops_the_run_at_the_first_step_past_it() {
        let mut g = DivergenceGuard::new(10.0, None);
        g.start_epoch(1000);
        let mut losses = vec![1.0; 1 + WINDOW];
        // Steps 2..=33 fill the window with 1; with k values of 100 the mean is
        // (100 k + 32 - k) / 32 > 10 from k = 3: steps 34, 35, 36.
        losses.extend([100.0; 10]);
        let err = run(&mut g, 1, &losses).unwrap_err().to_string();
        assert!(err.contains("diverged"), "{err}");
        assert!(err.contains("at step 36"), "{err}");
        assert!(err.contains("train.divergence_factor"), "{err}");
    }

    #[test]
    fn an_explosion_right_after_the_first_step_is_caught_once_the_window_fills() {
        let mut g = DivergenceGuard::new(10.0, None);
        g.start_epoch(100);
        let mut losses = vec![1.4];
        losses.extend((0..20).map(|i| 1e3 * 10f64.powi(i)));
        let err = run(&mut g, 1, &losses).unwrap_err().to_string();
        assert!(err.contains(&format!("at step {}", 1 + MIN_FILL)), "{err}");
    }

    #[test]
    fn factor_zero_turns_growth_off_but_not_the_finite_check() {
        let mut g = DivergenceGuard::new(0.0, None);
        g.start_epoch(1000);
        let mut losses = vec![1.0];
        losses.extend([1e30; 100]);
        run(&mut g, 1, &losses).unwrap();
        let err = g.observe(f64::NAN, 999).unwrap_err().to_string();
        assert!(err.contains("NaN at step 999"), "{err}");
    }

    #[test]
    fn a_short_epoch_is_compared_over_all_its_steps() {
        let mut g = DivergenceGuard::new(10.0, Some(1.0));
        g.start_epoch(2);
        g.observe(5.0, 1).unwrap();
        assert!(g.observe(16.0, 2).is_err(), "mean 10.5 > 10");
    }

    #[test]
    fn the_window_restarts_every_epoch_so_a_resumed_guard_agrees() {
        let mut g = DivergenceGuard::new(10.0, None);
        g.start_epoch(3);
        run(&mut g, 1, &[3.0, 4.0, 5.0]).unwrap();
        g.start_epoch(3);
        let mut resumed = DivergenceGuard::new(10.0, g.early());
        resumed.start_epoch(3);
        // The threshold is 30: 20, 25, 40 (mean 28.3) passes, 20, 25, 46 (30.3) does not.
        for (step, l) in [(4, 20.0), (5, 25.0), (6, 40.0)] {
            assert!(g.observe(l, step).is_ok());
            assert!(resumed.observe(l, step).is_ok());
        }
        let mut other = DivergenceGuard::new(10.0, Some(3.0));
        other.start_epoch(3);
        run(&mut other, 4, &[20.0, 25.0]).unwrap();
        assert!(other.observe(46.0, 6).is_err());
    }
}
