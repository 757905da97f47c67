//! Normalisation of dense features, fitted on the train split.

use serde::{Deserialize, Serialize};

use crate::spec::Norm;

/// The fitted statistics of one dense feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    /// The normalisation these statistics serve.
    pub norm: Norm,
    /// Mean and standard deviation (of the log-transformed value for `log-standard`).
    pub mean: f64,
    /// See `mean`; 1 for a constant feature.
    pub std: f64,
    /// The smallest train value (for `min-max`).
    pub min: f64,
    /// The largest train value (for `min-max`).
    pub max: f64,
}

/// `sign(x) ln(1 + |x|)`.
#[inline]
pub(crate) fn signed_log1p(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

impl NormStats {
    /// Fits on `values` (the train rows). A constant feature gets `std = 1` so it maps to 0.
    pub fn fit(norm: Norm, values: impl Iterator<Item = f32>) -> Self {
        let mut acc = NormFit::new(norm);
        for v in values {
            acc.add(v);
        }
        acc.finish()
    }

    /// The normalised value.
    #[inline]
    pub fn apply(&self, v: f32) -> f32 {
        let x = v as f64;
        let y = match self.norm {
            Norm::Standard => (x - self.mean) / self.std,
            Norm::LogStandard => (signed_log1p(x) - self.mean) / self.std,
            Norm::MinMax => {
                let range = self.max - self.min;
                if range > 0.0 {
                    ((x - self.min) / range).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }
            Norm::None => x,
        };
        y as f32
    }
}

/// The sums of a fit of [`NormStats`], fed one train value at a time (over the chunks of a
/// streamed data set): the same values in the same order give the same bits as
/// [`NormStats::fit`], which runs on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormFit {
    norm: Norm,
    n: usize,
    sum: f64,
    sq: f64,
    min: f64,
    max: f64,
}

impl NormFit {
    pub(crate) fn new(norm: Norm) -> Self {
        NormFit {
            norm,
            n: 0,
            sum: 0.0,
            sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Counts one train value.
    #[inline]
    pub(crate) fn add(&mut self, v: f32) {
        let x = v as f64;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        let t = if self.norm == Norm::LogStandard {
            signed_log1p(x)
        } else {
            x
        };
        self.n += 1;
        self.sum += t;
        self.sq += t * t;
    }

    /// The statistics; a constant feature gets `std = 1`, and no value at all the identity.
    pub(crate) fn finish(self) -> NormStats {
        let NormFit {
            norm,
            n,
            sum,
            sq,
            min,
            max,
        } = self;
        if n == 0 {
            return NormStats {
                norm,
                mean: 0.0,
                std: 1.0,
                min: 0.0,
                max: 1.0,
            };
        }
        let mean = sum / n as f64;
        let var = (sq / n as f64 - mean * mean).max(0.0);
        let std = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
        NormStats {
            norm,
            mean,
            std,
            min,
            max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_minmax_by_hand() {
        let s = NormStats::fit(Norm::Standard, [1.0f32, 2.0, 3.0].into_iter());
        assert!((s.mean - 2.0).abs() < 1e-12);
        assert!((s.std - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.apply(3.0) - (1.0 / (2.0f64 / 3.0).sqrt()) as f32).abs() < 1e-6);
        let m = NormStats::fit(Norm::MinMax, [2.0f32, 4.0].into_iter());
        assert_eq!(m.apply(3.0), 0.5);
        assert_eq!(m.apply(10.0), 1.0);
        let c = NormStats::fit(Norm::Standard, [5.0f32; 4].into_iter());
        assert_eq!(c.apply(5.0), 0.0);
        let l = NormStats::fit(
            Norm::LogStandard,
            [0.0f32, (std::f32::consts::E - 1.0)].into_iter(),
        );
        assert!((l.mean - 0.5).abs() < 1e-6 && (l.std - 0.5).abs() < 1e-6);
    }
}
