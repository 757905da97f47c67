//! Timed windows of training steps.

use std::time::Instant;

use crossdistil_data::Batch;
use crossdistil_train::LossParts;
use crossdistil_train::{Control, Hooks, Trainer};

/// Training hooks that time `windows` windows of `window` steps after `warmup` untimed steps,
/// and stop training after the last window. Each window's rate is its rows over its wall time.
pub struct Windows {
    warmup: usize,
    window: usize,
    total: usize,
    start: Instant,
    rows: usize,
    rates: Vec<f64>,
}

impl Windows {
    /// `windows` windows of `window` steps after `warmup` steps.
    pub fn new(warmup: usize, window: usize, windows: usize) -> Self {
        Windows {
            warmup,
            window,
            total: warmup + window * windows,
            start: Instant::now(),
            rows: 0,
            rates: Vec::with_capacity(windows),
        }
    }

    /// Training rows per second of each finished window, in order.
    pub fn into_rates(self) -> Vec<f64> {
        self.rates
    }
}

impl Hooks for Windows {
    fn after_step(
        &mut self,
        trainer: &mut Trainer,
        batch: &Batch,
        _: &LossParts,
    ) -> crossdistil_train::Result<Control> {
        let step = trainer.step_count() as usize;
        if step == self.warmup {
            self.start = Instant::now();
            self.rows = 0;
        } else if step > self.warmup {
            self.rows += batch.size();
            if (step - self.warmup).is_multiple_of(self.window) {
                self.rates
                    .push(self.rows as f64 / self.start.elapsed().as_secs_f64());
                self.start = Instant::now();
                self.rows = 0;
            }
        }
        Ok(if step < self.total {
            Control::Continue
        } else {
            Control::Stop
        })
    }
}
