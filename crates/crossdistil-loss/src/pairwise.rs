//! The mean pair loss over every (high, low) pair of two score vectors, as one custom op.
//!
//! `hi: [n_h]`, `lo: [n_l]` -> the scalar `L = 1/(n_h n_l) sum_{i, j} f(hi_i - lo_j)` with
//! `f(d) = softplus(-d)` (BPR) or `f(d) = max(0, margin - d)` (hinge). Backward, with
//! `f'(d) = -sigmoid(-d)` (BPR) or `-[margin - d > 0]` (hinge) and `g` the upstream gradient:
//!
//! ```text
//! dL/dhi_i =  g/(n_h n_l) sum_j f'(hi_i - lo_j)
//! dL/dlo_j = -g/(n_h n_l) sum_i f'(hi_i - lo_j)
//! ```
//!
//! Composed from candle ops, the same loss materialises the `[n_h, n_l]` difference matrix and
//! about eight element-wise passes over it, each with its backward; with batches of a thousand
//! rows that made the ranking loss the largest cost of CrossDistil (docs/performance.md). Here
//! one pass over the pairs gives the loss and both gradients (kept for the backward pass), in
//! the scores' precision with sums in f64, and no matrix is ever in memory.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor};

use std::ops::{AddAssign, SubAssign};

use num_traits::{AsPrimitive, Float};

use crate::fast_math;

/// The pair loss `f` of [`pair_mean`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PairKind {
    /// `softplus(-d)`.
    Bpr,
    /// `max(0, margin - d)`.
    Hinge { margin: f64 },
}

impl PairKind {
    /// `(f(d), f'(d))`.
    #[inline]
    fn eval<T>(self, d: T) -> (T, T)
    where
        T: Float + 'static,
        f64: AsPrimitive<T>,
    {
        match self {
            PairKind::Bpr => {
                // softplus(-d) = max(-d, 0) + ln(1 + e^{-|d|}); its derivative is -sigmoid(-d).
                let e = (-d.abs()).exp();
                let relu = if -d > T::zero() { -d } else { T::zero() };
                let sig_neg = if d >= T::zero() {
                    e / (T::one() + e)
                } else {
                    T::one() / (T::one() + e)
                };
                (relu + e.ln_1p(), -sig_neg)
            }
            PairKind::Hinge { margin } => {
                let m = AsPrimitive::<T>::as_(margin) - d;
                if m > T::zero() {
                    (m, -T::one())
                } else {
                    (T::zero(), T::zero())
                }
            }
        }
    }
}

/// The mean loss and its gradients with respect to `hi` and `lo`.
type Pass = (f64, Vec<f64>, Vec<f64>);

/// The mean loss over all pairs and its gradients with respect to `hi` and `lo`, computed in
/// `T` with one row sum per `hi` in `T` and the totals in f64. Generic over [`Float`] (f32 or
/// f64), with `as` casts from and to f64 ([`AsPrimitive`]).
fn pass<T>(kind: PairKind, hi: &[f64], lo: &[f64]) -> Pass
where
    T: Float + AddAssign + SubAssign + AsPrimitive<f64>,
    f64: AsPrimitive<T>,
{
    let scale = 1.0 / (hi.len() * lo.len()).max(1) as f64;
    let lo_t: Vec<T> = lo.iter().map(|&x| AsPrimitive::<T>::as_(x)).collect();
    let mut dl = vec![T::zero(); lo.len()];
    let mut dh = Vec::with_capacity(hi.len());
    let mut sum = 0.0f64;
    for &h in hi {
        let h: T = h.as_();
        let (mut row, mut drow) = (T::zero(), T::zero());
        for (&l, dlj) in lo_t.iter().zip(dl.iter_mut()) {
            let (f, d) = kind.eval(h - l);
            row += f;
            drow += d;
            *dlj -= d;
        }
        sum += AsPrimitive::<f64>::as_(row);
        dh.push(AsPrimitive::<f64>::as_(drow) * scale);
    }
    let dl = dl
        .into_iter()
        .map(|x| AsPrimitive::<f64>::as_(x) * scale)
        .collect();
    (sum * scale, dh, dl)
}

/// The op; the forward pass also computes `dL/dhi` and `dL/dlo` for an upstream gradient of 1
/// (the same pass over the pairs) and keeps them for the backward pass, which only scales them.
#[derive(Debug)]
struct PairMean {
    kind: PairKind,
    grads: std::sync::Mutex<Option<(Vec<f64>, Vec<f64>)>>,
}

/// Lanes of the partial row sums of the vectorised BPR pass.
const LANES: usize = 8;

/// The sum of `v`, in `LANES` partial sums (a loop that vectorises), then in f64.
#[inline(always)]
fn lane_sum(v: &[f32]) -> f64 {
    let mut acc = [0.0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] += c[k];
        }
    }
    acc.iter().chain(rest).map(|&x| x as f64).sum()
}

/// [`pass`] for BPR in f32, with the branch-free [`fast_math::bpr`]: per row of `hi`, one
/// element-wise loop over `lo` (no reduction inside, so it vectorises) writes the pair losses
/// and sigmoids to two buffers and adds the sigmoids to `dL/dlo`; the buffers are then summed.
#[inline(always)]
fn bpr_f32_body(hi: &[f32], lo: &[f32]) -> Pass {
    let scale = 1.0 / (hi.len() * lo.len()).max(1) as f64;
    let n = lo.len();
    // dL/dlo_j accumulates sigmoid(-d) over the rows.
    let mut dl = vec![0.0f32; n];
    let (mut fb, mut sb) = (vec![0.0f32; n], vec![0.0f32; n]);
    let mut dh = Vec::with_capacity(hi.len());
    let mut sum = 0.0f64;
    for &h in hi {
        let (lo, dl, fb, sb) = (&lo[..n], &mut dl[..n], &mut fb[..n], &mut sb[..n]);
        for j in 0..n {
            let (f, s) = fast_math::bpr(h - lo[j]);
            fb[j] = f;
            sb[j] = s;
            dl[j] += s;
        }
        sum += lane_sum(fb);
        dh.push(-lane_sum(sb) * scale);
    }
    let dl = dl.into_iter().map(|x| x as f64 * scale).collect();
    (sum * scale, dh, dl)
}

/// [`bpr_f32_body`] compiled for AVX2 and FMA (eight lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn bpr_f32_avx2(hi: &[f32], lo: &[f32]) -> Pass {
    bpr_f32_body(hi, lo)
}

/// BPR in f32: the AVX2 build of the pass where the CPU has it, the portable one otherwise.
fn bpr_f32(hi: &[f32], lo: &[f32]) -> Pass {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { bpr_f32_avx2(hi, lo) };
    }
    bpr_f32_body(hi, lo)
}

impl PairMean {
    /// The mean loss and the gradients of the mean with respect to `hi` and `lo`, from the
    /// scores' storages: BPR on f32 scores reads them as they are, the other cases in f64.
    fn run(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<Pass> {
        if let (CpuStorage::F32(h), CpuStorage::F32(l), PairKind::Bpr) = (s1, s2, self.kind) {
            return Ok(bpr_f32(f32_data(h, l1)?, f32_data(l, l2)?));
        }
        let (hi, lo) = (values(s1, l1)?, values(s2, l2)?);
        Ok(if matches!(s1, CpuStorage::F32(_)) {
            pass::<f32>(self.kind, &hi, &lo)
        } else {
            pass::<f64>(self.kind, &hi, &lo)
        })
    }
}

/// The contiguous range of `v` under `l`.
fn f32_data<'a>(v: &'a [f32], l: &Layout) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("pair-mean: the scores must be contiguous"),
    }
}

/// A storage's contiguous data as f64.
fn values(s: &CpuStorage, l: &Layout) -> Result<Vec<f64>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("pair-mean: the scores must be contiguous");
    };
    Ok(match s {
        CpuStorage::F32(v) => v[a..b].iter().map(|&x| x as f64).collect(),
        CpuStorage::F64(v) => v[a..b].to_vec(),
        _ => candle_core::bail!("pair-mean: the scores must be f32 or f64"),
    })
}

/// Runs `f` on the CPU storage and layout of `t`, made contiguous first.
fn with_storage<R>(t: &Tensor, f: impl FnOnce(&CpuStorage, &Layout) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(c, l),
        _ => candle_core::bail!("pair-mean runs on the CPU"),
    }
}

impl CustomOp2 for PairMean {
    fn name(&self) -> &'static str {
        "pair-mean"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let f32_math = matches!(s1, CpuStorage::F32(_));
        let (mean, dh, dl) = self.run(s1, l1, s2, l2)?;
        *self.grads.lock().expect("no panics while held") = Some((dh, dl));
        let out = if f32_math {
            CpuStorage::F32(vec![mean as f32])
        } else {
            CpuStorage::F64(vec![mean])
        };
        Ok((out, Shape::from(())))
    }

    fn bwd(
        &self,
        hi: &Tensor,
        lo: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let kept = self.grads.lock().expect("no panics while held").take();
        let (dh, dl) = match kept {
            Some(g) => g,
            None => {
                let (_, dh, dl) = with_storage(hi, |s1, l1| {
                    with_storage(lo, |s2, l2| self.run(s1, l1, s2, l2))
                })?;
                (dh, dl)
            }
        };
        let g = with_storage(grad, values)?[0];
        let out = |v: Vec<f64>, like: &Tensor| -> Result<Tensor> {
            let n = v.len();
            Tensor::from_vec(
                v.into_iter().map(|x| x * g).collect::<Vec<_>>(),
                n,
                like.device(),
            )?
            .to_dtype(like.dtype())
        };
        Ok((Some(out(dh, hi)?), Some(out(dl, lo)?)))
    }
}

/// The mean of `kind` over every pair `(hi_i, lo_j)`: `hi: [n_h]`, `lo: [n_l]` (f32 or f64) ->
/// a scalar of their dtype. See the module documentation for the formula and its gradient.
pub(crate) fn pair_mean(hi: &Tensor, lo: &Tensor, kind: PairKind) -> Result<Tensor> {
    if hi.dtype() != lo.dtype() || !matches!(hi.dtype(), DType::F32 | DType::F64) {
        candle_core::bail!("pair-mean: both score vectors must be f32, or both f64");
    }
    let op = PairMean {
        kind,
        grads: std::sync::Mutex::new(None),
    };
    hi.contiguous()?.apply_op2(&lo.contiguous()?, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stable::softplus;
    use candle_core::{Device, Var};

    /// The same loss composed from candle ops: `mean f(hi[:, None] - lo[None, :])`.
    fn composed(hi: &Tensor, lo: &Tensor, kind: PairKind) -> Tensor {
        let d = hi
            .unsqueeze(1)
            .unwrap()
            .broadcast_sub(&lo.unsqueeze(0).unwrap())
            .unwrap();
        let f = match kind {
            PairKind::Bpr => softplus(&d.neg().unwrap()).unwrap(),
            PairKind::Hinge { margin } => d.affine(-1.0, margin).unwrap().relu().unwrap(),
        };
        f.mean_all().unwrap()
    }

    #[test]
    fn equals_the_composed_loss_and_its_gradients() {
        let dev = Device::Cpu;
        let hi: Vec<f32> = (0..23).map(|i| ((i as f32) * 0.77).sin() * 3.0).collect();
        let lo: Vec<f32> = (0..17)
            .map(|i| ((i as f32) * 1.31).cos() * 3.0 - 0.4)
            .collect();
        for kind in [PairKind::Bpr, PairKind::Hinge { margin: 0.5 }] {
            let (h, l) = (
                Var::from_slice(&hi, 23, &dev).unwrap(),
                Var::from_slice(&lo, 17, &dev).unwrap(),
            );
            let fused = pair_mean(h.as_tensor(), l.as_tensor(), kind).unwrap();
            let plain = composed(h.as_tensor(), l.as_tensor(), kind);
            let (a, b) = (
                fused.to_scalar::<f32>().unwrap(),
                plain.to_scalar::<f32>().unwrap(),
            );
            assert!((a - b).abs() < 1e-5, "{kind:?}: {a} vs {b}");
            let (gf, gp) = (fused.backward().unwrap(), plain.backward().unwrap());
            for v in [&h, &l] {
                let x: Vec<f32> = gf.get(v).unwrap().to_vec1().unwrap();
                let y: Vec<f32> = gp.get(v).unwrap().to_vec1().unwrap();
                for (x, y) in x.iter().zip(&y) {
                    assert!((x - y).abs() < 1e-6, "{kind:?}: gradient {x} vs {y}");
                }
            }
        }
    }

    /// The vectorised f32 pass against the scalar f64 pass, on a batch-sized problem whose
    /// differences run from tiny to far beyond `exp`'s range.
    #[test]
    fn the_f32_bpr_pass_agrees_with_f64() {
        let hi32: Vec<f32> = (0..301).map(|i| ((i as f32) * 0.37).sin() * 60.0).collect();
        let lo32: Vec<f32> = (0..253)
            .map(|i| ((i as f32) * 0.91).cos() * 0.01 - 0.2)
            .collect();
        let hi: Vec<f64> = hi32.iter().map(|&x| x as f64).collect();
        let lo: Vec<f64> = lo32.iter().map(|&x| x as f64).collect();
        let (a, dha, dla) = bpr_f32(&hi32, &lo32);
        let (b, dhb, dlb) = pass::<f64>(PairKind::Bpr, &hi, &lo);
        assert!((a - b).abs() < 1e-6 * b, "{a} vs {b}");
        let scale = 1.0 / (hi.len() * lo.len()) as f64;
        for (x, y) in dha.iter().zip(&dhb).chain(dla.iter().zip(&dlb)) {
            assert!(
                (x - y).abs() < 1e-6 * lo.len().max(hi.len()) as f64 * scale,
                "{x} vs {y}"
            );
        }
    }

    #[test]
    fn huge_differences_stay_finite() {
        let dev = Device::Cpu;
        let h = Var::new(&[500.0f32, -500.0], &dev).unwrap();
        let l = Tensor::new(&[-500.0f32, 500.0], &dev).unwrap();
        let loss = pair_mean(h.as_tensor(), &l, PairKind::Bpr).unwrap();
        // Pairs d = 1000, 0, 0, -1000: (0 + ln 2 + ln 2 + 1000) / 4.
        let v = loss.to_scalar::<f32>().unwrap();
        let want = (2.0 * 2f32.ln() + 1000.0) / 4.0;
        assert!((v - want).abs() < 1e-3, "{v} vs {want}");
        let g: Vec<f32> = loss.backward().unwrap().get(&h).unwrap().to_vec1().unwrap();
        assert!(g.iter().all(|x| x.is_finite()));
    }
}
