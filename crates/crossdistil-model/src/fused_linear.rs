//! A whole fully connected layer as one custom op: `y = act(x W^T + b)`, forward and backward.
//!
//! `x: [n, k]` (any strides), `W: [o, k]`, `b: [o]` -> `y: [n, o]`, `act` ReLU or the identity.
//! Backward, with `g = dL/dy`:
//!
//! ```text
//! dz = g * act'(x W^T + b)     (ReLU: g * [y > 0])
//! db = sum_rows dz             [o]
//! dx = dz W                    [n, k]
//! dW = dz^T x                  [o, k]
//! ```
//!
//! Composed from candle ops the layer is a transpose, a matmul and the bias add, and candle's
//! backward accumulates every intermediate gradient into a fresh zero tensor (`zeros_like` then
//! `add`, for the pre-activation `[n, o]` and for the weight and its transpose). As one op the
//! layer is one node of the graph: its products read the weight in place through strides
//! ([`crate::gemm`]), and only `dx`, `dW` and `db` go back to candle.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use crate::bias_act::{backward_rows, forward_rows};
use crate::cpu_data::{contiguous, view, with_cpu, with_rows};
use crate::gemm::{View, matmul};

/// The custom op; see the module documentation.
#[derive(Debug, Clone, Copy)]
struct FusedLinear {
    relu: bool,
}

impl CustomOp3 for FusedLinear {
    fn name(&self) -> &'static str {
        if self.relu { "linear-relu" } else { "linear" }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = view(s1, l1, "input")?;
        let w = view(s2, l2, "weight")?;
        let b = contiguous(s3, l3, "bias")?;
        if x.cols != w.cols || w.rows != b.len() {
            candle_core::bail!(
                "linear: input [{}, {}], weight [{}, {}] and bias [{}] do not fit",
                x.rows,
                x.cols,
                w.rows,
                w.cols,
                b.len()
            );
        }
        let mut y = matmul(x, w.t());
        forward_rows(&mut y, b, self.relu);
        Ok((CpuStorage::F32(y), Shape::from((x.rows, w.rows))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, o) = y.dims2()?;
        let (dz, db) = with_rows(grad, "gradient", |g| {
            with_rows(y, "output", |y| {
                Ok(backward_rows(g.to_vec(), y, o, self.relu))
            })
        })?;
        let dzv = View::row_major(&dz, n, o);
        let dx = with_cpu(w, |s, l| {
            let w = view(s, l, "weight")?;
            let dx = matmul(dzv, w);
            Tensor::from_vec(dx, (n, w.cols), x.device())
        })?;
        let dw = with_cpu(x, |s, l| {
            let x = view(s, l, "input")?;
            let dw = matmul(dzv.t(), x);
            Tensor::from_vec(dw, (o, x.cols), w.device())
        })?;
        let db = Tensor::from_vec(db, o, w.device())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `act(x W^T + b)`: `x: [n, k]`, `w: [o, k]`, `b: [o]` -> `[n, o]`; `relu` picks ReLU,
/// otherwise the identity. One node of the autograd graph (module documentation).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    x.apply_op3(w, b, FusedLinear { relu })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(shape: &[usize], rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..shape.iter().product::<usize>())
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect()
    }

    fn max_diff(a: &Tensor, c: &Tensor) -> f32 {
        let d = (a - c).unwrap().abs().unwrap().max_all().unwrap();
        d.to_scalar::<f32>().unwrap()
    }

    /// Values and gradients equal candle's own `relu(x.matmul(w.t()).broadcast_add(b))`, for a
    /// contiguous input and for a transposed (strided) one.
    #[test]
    fn matches_candles_composition_forward_and_backward() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, k, o) = (37, 13, 11);
        for relu in [true, false] {
            for strided in [false, true] {
                let x = if strided {
                    Var::from_vec(random(&[k, n], &mut rng), (k, n), &dev).unwrap()
                } else {
                    Var::from_vec(random(&[n, k], &mut rng), (n, k), &dev).unwrap()
                };
                let xin = if strided {
                    x.as_tensor().t().unwrap()
                } else {
                    x.as_tensor().clone()
                };
                let w = Var::from_vec(random(&[o, k], &mut rng), (o, k), &dev).unwrap();
                let b = Var::from_vec(random(&[o], &mut rng), o, &dev).unwrap();
                // A weighting that makes every output's gradient different.
                let r = Tensor::from_vec(random(&[n, o], &mut rng), (n, o), &dev).unwrap();
                let fused = linear(&xin, w.as_tensor(), b.as_tensor(), relu).unwrap();
                let plain = {
                    let z = xin.matmul(&w.as_tensor().t().unwrap()).unwrap();
                    let s = z.broadcast_add(b.as_tensor()).unwrap();
                    if relu { s.relu().unwrap() } else { s }
                };
                let what = format!("relu={relu} strided={strided}");
                assert!(max_diff(&fused, &plain) < 1e-5, "{what}: values");
                let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let gp = (plain * &r).unwrap().sum_all().unwrap().backward().unwrap();
                for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
                    let (a, c) = (gf.get(v).unwrap(), gp.get(v).unwrap());
                    assert!(max_diff(a, c) < 1e-5, "{what}: gradient of {name}");
                }
            }
        }
    }

    #[test]
    fn refuses_shapes_that_do_not_fit() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((4, 3), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((2, 5), candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
        let e = linear(&x, &w, &b, true).unwrap_err().to_string();
        assert!(e.contains("do not fit"), "{e}");
    }
}
