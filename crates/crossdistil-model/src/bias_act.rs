//! A bias add fused with ReLU (or nothing), with a hand-written backward.
//!
//! `y = act(z + b)` for `z: [n, h]` (contiguous), `b: [h]`, `act` ReLU or the identity.
//! Backward, in one pass over the rows: `dz = g * act'(z + b)` (for ReLU `g * [y > 0]`) and
//! `db = sum_rows dz`. candle composes the same from `broadcast_add` and `relu`: several
//! full passes and allocations, and a strided reduction over the batch for the bias gradient,
//! which the profile in docs/performance.md shows as a large share of a step.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor};

/// The custom op; see the module documentation.
#[derive(Debug, Clone, Copy)]
struct BiasAct {
    relu: bool,
}

/// The contiguous `f32` data of a CPU storage under `layout`.
fn slice<'a>(s: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("bias-act: {what} must be f32");
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("bias-act: {what} must be contiguous"),
    }
}

/// Runs `f` on the contiguous `f32` data of `t` (made contiguous first if needed).
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => f(slice(s, layout, "data")?),
        _ => candle_core::bail!("bias-act runs on the CPU"),
    }
}

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        if self.relu { "bias-relu" } else { "bias-add" }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let z = slice(s1, l1, "input")?;
        let b = slice(s2, l2, "bias")?;
        let h = b.len();
        if l1.dims().last() != Some(&h) {
            candle_core::bail!("bias-act: input {:?} and bias [{h}]", l1.dims());
        }
        let mut y = Vec::with_capacity(z.len());
        for row in z.chunks_exact(h) {
            if self.relu {
                // `v <= 0` is false for NaN: a NaN stays visible instead of becoming 0.
                y.extend(row.iter().zip(b).map(|(z, b)| {
                    let v = z + b;
                    if v <= 0.0 { 0.0 } else { v }
                }));
            } else {
                y.extend(row.iter().zip(b).map(|(z, b)| z + b));
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        z: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let h = b.elem_count();
        let mut db = vec![0.0f32; h];
        let dz = with_data(grad, |g| {
            if !self.relu {
                for row in g.chunks_exact(h) {
                    db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
                }
                return Ok(g.to_vec());
            }
            with_data(res, |y| {
                let mut dz = vec![0.0f32; g.len()];
                for ((dr, gr), yr) in dz
                    .chunks_exact_mut(h)
                    .zip(g.chunks_exact(h))
                    .zip(y.chunks_exact(h))
                {
                    // Equal lengths, no branches: the loop vectorises.
                    let (dr, gr, yr, db) = (&mut dr[..h], &gr[..h], &yr[..h], &mut db[..h]);
                    for j in 0..h {
                        let v = if yr[j] > 0.0 { gr[j] } else { 0.0 };
                        dr[j] = v;
                        db[j] += v;
                    }
                }
                Ok(dz)
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dz, z.shape(), z.device())?),
            Some(Tensor::from_vec(db, b.shape(), b.device())?),
        ))
    }
}

/// `relu(z + b)` (or `z + b` with `relu = false`): `z [n, h]`, `b [h]` -> `[n, h]`.
pub fn bias_act(z: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    z.contiguous()?.apply_op2(b, BiasAct { relu })
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

    /// Values and gradients equal candle's own `relu(z.broadcast_add(b))`.
    #[test]
    fn matches_candles_composition_forward_and_backward() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, h) = (37, 11);
        for relu in [true, false] {
            let z = Var::from_vec(random(&[n, h], &mut rng), (n, h), &dev).unwrap();
            let b = Var::from_vec(random(&[h], &mut rng), h, &dev).unwrap();
            // A weighting that makes every output's gradient different.
            let r = Tensor::from_vec(random(&[n, h], &mut rng), (n, h), &dev).unwrap();
            let fused = bias_act(z.as_tensor(), b.as_tensor(), relu).unwrap();
            let plain = {
                let s = z.as_tensor().broadcast_add(b.as_tensor()).unwrap();
                if relu { s.relu().unwrap() } else { s }
            };
            let close = |a: &Tensor, c: &Tensor| {
                let d = (a - c).unwrap().abs().unwrap().max_all().unwrap();
                d.to_scalar::<f32>().unwrap()
            };
            assert!(close(&fused, &plain) < 1e-6, "relu={relu}: values");
            let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gp = (plain * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("z", &z), ("b", &b)] {
                let (a, c) = (gf.get(v).unwrap(), gp.get(v).unwrap());
                assert!(close(a, c) < 1e-5, "relu={relu}: gradient of {name}");
            }
        }
    }

    #[test]
    fn relu_keeps_nan_visible() {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[f32::NAN, -1.0, 2.0]], &dev).unwrap();
        let b = Tensor::new(&[0.0f32, 0.0, 0.5], &dev).unwrap();
        let y = bias_act(&z, &b, true).unwrap().to_vec2::<f32>().unwrap();
        assert!(y[0][0].is_nan());
        assert_eq!(&y[0][1..], &[0.0, 2.5]);
    }
}
