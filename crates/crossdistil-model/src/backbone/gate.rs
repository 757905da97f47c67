//! Softmax gates that mix experts (MMoE, PLE).

use std::ops::AddAssign;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use num_traits::Float;
use rand_chacha::ChaCha8Rng;

use crate::cpu_data::with_cpu;
use crate::init::Init;
use crate::linear::Linear;
use crate::params::ParamStore;

/// `g = softmax(input W^T + b)` over `n_experts`, then `sum_e g[:, e] * expert_e`.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    pub(crate) linear: Linear,
}

impl Gate {
    /// Registers `<name>.{weight,bias}`: `[n_experts, in_dim]`, `[n_experts]`.
    pub(crate) fn new(
        name: &str,
        in_dim: usize,
        n_experts: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let linear = Linear::new(name, in_dim, n_experts, Init::XavierUniform, params, rng)?;
        Ok(Gate { linear })
    }

    /// `input: [b, in_dim]`; `pool: [b, P, h]` holds `P` experts (as
    /// [`crate::mlp_group::group_forward`] writes them), and the gate's `n_experts` experts are
    /// `pool[:, blocks[i]]`, in the order of its logits -> `[b, h]`.
    pub(crate) fn forward(
        &self,
        input: &Tensor,
        pool: &Tensor,
        blocks: &[usize],
    ) -> Result<Tensor> {
        mix(&self.linear.forward(input)?, pool, blocks)
    }
}

/// `p = softmax(l)` of one row, stabilised by the row's maximum.
fn softmax_row<T: Float + AddAssign>(l: &[T], p: &mut [T]) {
    let max = l
        .iter()
        .copied()
        .fold(l[0], |m, v| if v > m { v } else { m });
    let mut sum = T::zero();
    for (p, &v) in p.iter_mut().zip(l) {
        *p = (v - max).exp();
        sum += *p;
    }
    p.iter_mut().for_each(|p| *p = *p / sum);
}

/// `<a, b>` over the common length, with eight partial sums: a single running sum is a chain
/// of dependent additions that the compiler may not reorder, so it cannot be vectorised.
fn dot<T: Float + AddAssign>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut sum = T::zero();
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += x * y;
    }
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    for a in acc {
        sum += a;
    }
    sum
}

/// The mixing op; see [`mix`].
#[derive(Debug, Clone)]
struct Mix {
    blocks: Vec<usize>,
}

impl Mix {
    /// `(rows, h, pool width P h)` from the shapes of the logits `[n, m]` and the pool
    /// `[n, P, h]`.
    fn dims(&self, logits: &[usize], pool: &[usize]) -> Result<(usize, usize, usize)> {
        let (&[n, m], &[np, p, h]) = (logits, pool) else {
            candle_core::bail!(
                "gate: logits {logits:?} must be [n, m] and the pool {pool:?} [n, P, h]"
            );
        };
        if n != np || m != self.blocks.len() || m == 0 || self.blocks.iter().any(|&b| b >= p) {
            candle_core::bail!(
                "gate: logits {logits:?} for the experts {:?} of a pool {pool:?}",
                self.blocks
            );
        }
        Ok((n, h, p * h))
    }

    fn fwd<T: Float + AddAssign>(
        &self,
        l: &[T],
        x: &[T],
        n: usize,
        h: usize,
        width: usize,
    ) -> Vec<T> {
        let m = self.blocks.len();
        let mut out = vec![T::zero(); n * h];
        let mut p = vec![T::zero(); m];
        for r in 0..n {
            softmax_row(&l[r * m..(r + 1) * m], &mut p);
            let o = &mut out[r * h..(r + 1) * h];
            for (&pi, &blk) in p.iter().zip(&self.blocks) {
                let xb = &x[r * width + blk * h..r * width + (blk + 1) * h];
                o.iter_mut().zip(xb).for_each(|(o, &x)| *o += pi * x);
            }
        }
        out
    }

    /// `(dl, dx)`: `dx[:, blk_i] = p_i g` (zero outside the gate's blocks), `dp_i = <g, x[:, blk_i]>`,
    /// `dl_i = p_i (dp_i - sum_j p_j dp_j)`.
    fn bwd<T: Float + AddAssign>(
        &self,
        l: &[T],
        x: &[T],
        g: &[T],
        n: usize,
        h: usize,
        width: usize,
    ) -> (Vec<T>, Vec<T>) {
        let m = self.blocks.len();
        // slot[b]: which of the gate's experts pool block `b` is, if any.
        let mut slot = vec![None; width / h.max(1)];
        for (i, &b) in self.blocks.iter().enumerate() {
            slot[b] = Some(i);
        }
        let mut dl = vec![T::zero(); n * m];
        // Written row by row and block by block (the blocks are distinct): no zero fill first.
        let mut dx = Vec::with_capacity(n * width);
        let (mut p, mut dp) = (vec![T::zero(); m], vec![T::zero(); m]);
        for r in 0..n {
            softmax_row(&l[r * m..(r + 1) * m], &mut p);
            let gr = &g[r * h..(r + 1) * h];
            for (b, s) in slot.iter().enumerate() {
                match *s {
                    Some(i) => {
                        let at = r * width + b * h;
                        let pi = p[i];
                        dx.extend(gr.iter().map(|&g| pi * g));
                        dp[i] = dot(&x[at..at + h], gr);
                    }
                    None => dx.extend(std::iter::repeat_n(T::zero(), h)),
                }
            }
            let mut s = T::zero();
            for i in 0..m {
                s += p[i] * dp[i];
            }
            for i in 0..m {
                dl[r * m + i] = p[i] * (dp[i] - s);
            }
        }
        (dl, dx)
    }
}
impl Mix {
    /// [`Mix::bwd`] on `(logits, pool, grad)` data, as flat tensors `(dl, dx)`.
    fn grads<T: Float + AddAssign + candle_core::WithDType>(
        &self,
        (l, x, g): (&[T], &[T], &[T]),
        (n, h, width): (usize, usize, usize),
        dev: &candle_core::Device,
    ) -> Result<(Tensor, Tensor)> {
        let (dl, dx) = self.bwd(l, x, g, n, h, width);
        let (a, b) = (dl.len(), dx.len());
        Ok((Tensor::from_vec(dl, a, dev)?, Tensor::from_vec(dx, b, dev)?))
    }
}

/// The data of a CPU storage as `T`, with its layout's contiguous range.
fn data<'a, T: candle_core::WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("gate: the inputs of the mixing must be contiguous");
    };
    Ok(&T::cpu_storage_as_slice(s)?[a..b])
}

impl CustomOp2 for Mix {
    fn name(&self) -> &'static str {
        "gate-mix"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, h, width) = self.dims(l1.dims(), l2.dims())?;
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(self.fwd(data(s1, l1)?, data(s2, l2)?, n, h, width))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(self.fwd(data(s1, l1)?, data(s2, l2)?, n, h, width))
            }
            _ => candle_core::bail!("gate: logits and experts must be both f32 or both f64"),
        };
        Ok((out, Shape::from((n, h))))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        pool: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, h, width) = self.dims(logits.dims(), pool.dims())?;
        let grad = grad.contiguous()?;
        let dims = (n, h, width);
        let (dl, dx) = with_cpu(logits, |ls, ll| {
            with_cpu(pool, |xs, xl| {
                with_cpu(&grad, |gs, gl| match ls {
                    CpuStorage::F32(_) => self.grads::<f32>(
                        (data(ls, ll)?, data(xs, xl)?, data(gs, gl)?),
                        dims,
                        logits.device(),
                    ),
                    _ => self.grads::<f64>(
                        (data(ls, ll)?, data(xs, xl)?, data(gs, gl)?),
                        dims,
                        logits.device(),
                    ),
                })
            })
        })?;
        Ok((
            Some(dl.reshape(logits.shape())?),
            Some(dx.reshape(pool.shape())?),
        ))
    }
}

/// `out = sum_i softmax(logits)[:, i] * pool[:, blocks[i]]`: `logits: [b, m]`, `pool: [b, P, h]`
/// (contiguous), `m` distinct indices `blocks` below `P` -> `[b, h]`. One op, forward and
/// backward in a pass over the rows: composed from candle ops (softmax, a product per expert
/// and a sum), every term's backward accumulated into fresh zero tensors
/// (docs/performance.md).
pub(crate) fn mix(logits: &Tensor, pool: &Tensor, blocks: &[usize]) -> Result<Tensor> {
    let mut seen = blocks.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != blocks.len() {
        candle_core::bail!("gate: the experts {blocks:?} repeat");
    }
    let op = Mix {
        blocks: blocks.to_vec(),
    };
    logits.contiguous()?.apply_op2(&pool.contiguous()?, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_difference::{check, gradient, random};
    use candle_core::{D, Device, Var};
    use rand::SeedableRng;

    /// Equals the stacked form `sum_i softmax(l)[:, i, None] * stack(experts[blocks])[:, i]`,
    /// values and gradients, for all experts in order and for a permuted subset.
    /// The eight-way dot product against an f64 sum, for lengths around the chunk size.
    #[test]
    fn dot_matches_a_plain_sum() {
        for len in [0, 1, 7, 8, 9, 16, 23, 128, 131] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
                .collect();
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let got = dot(&a, &b);
            assert!((got as f64 - want).abs() < 1e-5, "{len}: {got} vs {want}");
            assert_eq!(dot(&[1.0f64, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
        }
    }

    #[test]
    fn mix_equals_the_stacked_form() {
        let dev = Device::Cpu;
        let vals = |n: usize, k: f32| (0..n).map(|i| (i as f32 * k).sin()).collect::<Vec<_>>();
        let xs: Vec<Var> = (0..3)
            .map(|e| Var::from_vec(vals(5 * 4, 1.3 + e as f32), (5, 4), &dev).unwrap())
            .collect();
        let r = Tensor::from_vec(vals(20, 2.1), (5, 4), &dev).unwrap();
        let experts: Vec<Tensor> = xs.iter().map(|x| x.as_tensor().clone()).collect();
        let pool = Tensor::stack(&experts, 1).unwrap();
        for blocks in [vec![0, 1, 2], vec![2, 0]] {
            let m = blocks.len();
            let l = Var::from_vec(vals(5 * m, 0.7), (5, m), &dev).unwrap();
            let new = mix(l.as_tensor(), &pool, &blocks).unwrap();
            let chosen: Vec<Tensor> = blocks.iter().map(|&b| experts[b].clone()).collect();
            let old = candle_nn::ops::softmax(l.as_tensor(), D::Minus1)
                .unwrap()
                .unsqueeze(2)
                .unwrap()
                .broadcast_mul(&Tensor::stack(&chosen, 1).unwrap())
                .unwrap()
                .sum(1)
                .unwrap();
            let diff = |a: &Tensor, b: &Tensor| {
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            assert!(diff(&new, &old) < 1e-6, "{blocks:?}: values");
            let gn = (new * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let go = (old * &r).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(
                diff(gn.get(&l).unwrap(), go.get(&l).unwrap()) < 1e-6,
                "{blocks:?}: logits"
            );
            for (e, x) in xs.iter().enumerate() {
                match (gn.get(x), go.get(x)) {
                    (Some(a), Some(b)) => assert!(diff(a, b) < 1e-6, "{blocks:?}: expert {e}"),
                    // An expert outside the gate gets a zero gradient (or none).
                    (Some(a), None) => assert_eq!(diff(a, &a.zeros_like().unwrap()), 0.0),
                    (None, _) => panic!("{blocks:?}: no gradient for expert {e}"),
                }
            }
        }
    }

    #[test]
    fn refuses_repeated_or_missing_experts() {
        let dev = Device::Cpu;
        let l = Tensor::zeros((2, 2), candle_core::DType::F32, &dev).unwrap();
        let pool = Tensor::zeros((2, 3, 4), candle_core::DType::F32, &dev).unwrap();
        assert!(
            mix(&l, &pool, &[1, 1])
                .unwrap_err()
                .to_string()
                .contains("repeat")
        );
        assert!(mix(&l, &pool, &[0, 3]).is_err());
        assert!(mix(&l, &pool, &[0, 1, 2]).is_err());
    }

    #[test]
    fn mix_matches_central_differences() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (b, e, h) = (3, 4, 5);
        let logits = random(b * e, &mut rng);
        let experts = random(b * e * h, &mut rng);
        let w = Tensor::from_vec(random(b * h, &mut rng), (b, h), &dev).unwrap();
        let blocks: Vec<usize> = (0..e).rev().collect();
        let f = |l: &Tensor, x: &Tensor| {
            (mix(l, x, &blocks).unwrap() * &w)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let lv = Var::from_vec(logits.clone(), (b, e), &dev).unwrap();
        let xv = Var::from_vec(experts.clone(), (b, e, h), &dev).unwrap();
        let grads = f(lv.as_tensor(), xv.as_tensor()).backward().unwrap();
        let g = |v: &Var| gradient(&grads, v);
        let x = Tensor::from_vec(experts.clone(), (b, e, h), &dev).unwrap();
        check(
            "logits",
            &logits,
            &g(&lv),
            |v| {
                let l = Tensor::from_slice(v, (b, e), &dev).unwrap();
                f(&l, &x).to_scalar().unwrap()
            },
            1e-6,
            1e-7,
        );
        let l = Tensor::from_vec(logits.clone(), (b, e), &dev).unwrap();
        check(
            "experts",
            &experts,
            &g(&xv),
            |v| {
                let x = Tensor::from_slice(v, (b, e, h), &dev).unwrap();
                f(&l, &x).to_scalar().unwrap()
            },
            1e-6,
            1e-7,
        );
    }
}
