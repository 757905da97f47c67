//! Seeded parameter initialisation.
//!
//! candle's CPU random generator cannot be seeded, so every initial value is drawn here from a
//! `ChaCha8Rng` and the tensor is built with `Tensor::from_vec`: the same seed gives bit-identical
//! parameters.

use candle_core::{Error, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// How a parameter is initialised. Fans are those of a weight `[out, in]`: `fan_in = in`,
/// `fan_out = out`; a 1-D shape `[n]` has `fan_in = fan_out = n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// `U(-a, a)` with `a = sqrt(6 / (fan_in + fan_out))` (Glorot and Bengio, 2010).
    XavierUniform,
    /// `U(-a, a)` with `a = sqrt(6 / fan_in)` (He et al., 2015; for ReLU layers).
    KaimingUniform,
    /// `N(0, std^2)`.
    Normal {
        /// The standard deviation.
        std: f32,
    },
    /// All zeros.
    Zeros,
    /// Every value the same.
    Const(f32),
    /// A square matrix `[n, n]` with `diag` on the diagonal and `off` elsewhere.
    Diagonal {
        /// The value on the diagonal.
        diag: f32,
        /// The value off the diagonal.
        off: f32,
    },
}

impl Init {
    /// Draws `shape.iter().product()` values, row-major.
    pub fn sample(&self, shape: &[usize], rng: &mut ChaCha8Rng) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.sample_into(shape, rng, &mut out)?;
        Ok(out)
    }

    /// [`Init::sample`] appended to `out` (whose allocation the caller may have prepared, e.g.
    /// in huge pages); the same values for the same generator state.
    pub fn sample_into(
        &self,
        shape: &[usize],
        rng: &mut ChaCha8Rng,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let n: usize = shape.iter().product();
        let (fan_in, fan_out) = fans(shape);
        out.reserve(n);
        match *self {
            Init::XavierUniform => {
                uniform(n, (6.0 / (fan_in + fan_out).max(1) as f64).sqrt(), rng, out)
            }
            Init::KaimingUniform => uniform(n, (6.0 / fan_in.max(1) as f64).sqrt(), rng, out),
            Init::Normal { std } => {
                let dist = Normal::new(0.0f32, std).map_err(Error::msg)?;
                out.extend((0..n).map(|_| dist.sample(rng)));
            }
            Init::Zeros => out.resize(out.len() + n, 0.0),
            Init::Const(c) => out.resize(out.len() + n, c),
            Init::Diagonal { diag, off } => {
                let [rows, cols] = shape else {
                    candle_core::bail!("Init::Diagonal needs a square 2-D shape, got {shape:?}")
                };
                if rows != cols {
                    candle_core::bail!("Init::Diagonal needs a square 2-D shape, got {shape:?}")
                }
                out.extend((0..n).map(|i| if i / cols == i % cols { diag } else { off }));
            }
        }
        Ok(())
    }
}

/// `(fan_in, fan_out)` of a shape: `[out, in]` for matrices, `[n]` for vectors.
fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, inp, rest @ ..] => {
            let field: usize = rest.iter().product();
            (inp * field, out * field)
        }
    }
}

/// `n` draws of `U(-bound, bound)`, appended to `out`.
fn uniform(n: usize, bound: f64, rng: &mut ChaCha8Rng, out: &mut Vec<f32>) {
    let bound = bound as f32;
    out.extend((0..n).map(|_| rng.random_range(-bound..=bound)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn bounds_and_determinism() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = Init::XavierUniform.sample(&[30, 20], &mut rng).unwrap();
        let bound = (6.0f32 / 50.0).sqrt();
        assert!(a.iter().all(|v| v.abs() <= bound));
        assert!(a.iter().any(|v| v.abs() > bound / 2.0));
        let b = Init::XavierUniform
            .sample(&[30, 20], &mut ChaCha8Rng::seed_from_u64(1))
            .unwrap();
        assert_eq!(a, b);
        let k = Init::KaimingUniform.sample(&[4, 6], &mut rng).unwrap();
        assert!(k.iter().all(|v| v.abs() <= 1.0));
    }

    #[test]
    fn normal_std_and_diagonal() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let v = Init::Normal { std: 0.01 }
            .sample(&[100, 100], &mut rng)
            .unwrap();
        let var = v.iter().map(|x| (x * x) as f64).sum::<f64>() / v.len() as f64;
        assert!((var.sqrt() - 0.01).abs() < 0.0005, "std {}", var.sqrt());
        let d = Init::Diagonal {
            diag: 0.9,
            off: 0.05,
        }
        .sample(&[3, 3], &mut rng)
        .unwrap();
        assert_eq!(d, vec![0.9, 0.05, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05, 0.9]);
        assert!(
            Init::Diagonal {
                diag: 1.0,
                off: 0.0
            }
            .sample(&[2, 3], &mut rng)
            .is_err()
        );
        assert_eq!(
            Init::Const(0.5).sample(&[2], &mut rng).unwrap(),
            vec![0.5; 2]
        );
        assert_eq!(Init::Zeros.sample(&[2, 2], &mut rng).unwrap(), vec![0.0; 4]);
    }
}
