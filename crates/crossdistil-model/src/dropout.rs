//! Seeded (inverted) dropout.

use candle_core::{Result, Tensor};
use rand::Rng;

use crate::mode::Mode;

/// In training, zeroes each element with probability `p` and scales the others by `1 / (1 - p)`,
/// with a mask drawn from the mode's generator; the identity in evaluation or when `p == 0`.
pub(crate) fn dropout(x: &Tensor, p: f32, mode: &mut Mode<'_>) -> Result<Tensor> {
    let Mode::Train(rng) = mode else {
        return Ok(x.clone());
    };
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        candle_core::bail!("dropout rate {p} must be < 1");
    }
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
        .collect();
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn masked(seed: u64, p: f32) -> Vec<f32> {
        let x = Tensor::ones((50, 40), DType::F32, &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        dropout(&x, p, &mut Mode::Train(&mut rng))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn seeded_inverted_and_identity_in_eval() {
        let a = masked(7, 0.25);
        assert_eq!(a, masked(7, 0.25));
        assert_ne!(a, masked(8, 0.25));
        let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
        assert!((dropped - 0.25).abs() < 0.05, "{dropped}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        let x = Tensor::ones((3, 4), DType::F32, &Device::Cpu).unwrap();
        let e = dropout(&x, 0.5, &mut Mode::Eval).unwrap();
        assert_eq!(e.to_vec2::<f32>().unwrap(), vec![vec![1.0f32; 4]; 3]);
    }
}
