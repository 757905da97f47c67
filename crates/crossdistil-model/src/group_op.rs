//! The custom op that runs several MLPs of one shape on one input: the experts of MMoE and PLE
//! ([`crate::mlp_group`]), and, as the group of one expert with one layer, every fully connected
//! layer ([`linear`]). It works on tensors and packed parameters only, so [`crate::linear`] and
//! [`crate::mlp_group`] depend on it and never the other way round.
//!
//! `E` experts, each with layers `dims[0] -> dims[1] -> ... -> dims[L]` and ReLU (or the
//! identity) after every layer, all applied to the same `x: [n, dims[0]]`. The output
//! `[n, E h]` (`h = dims[L]`) holds expert `e` in columns `e h .. (e + 1) h`, and so does every
//! hidden activation `A_l: [n, E dims[l + 1]]`. The parameters come packed, layer by layer and
//! within a layer expert by expert: `w = cat_l cat_e flatten(W_{l,e})` with `W_{l,e}:
//! [dims[l + 1], dims[l]]`, and `b = cat_l cat_e b_{l,e}`.
//!
//! Forward: layer 0 is one product of `x` with the experts' stacked `[E dims[1], dims[0]]`
//! weights; a later layer is `E` products on column blocks. Backward, with `G_l = dL/dA_l`:
//!
//! ```text
//! dZ_l = G_l * act'(A_l),  db_l = sum_rows dZ_l
//! dW_{l,e} = dZ_l[:, e]^T A_{l-1}[:, e]        (A_{-1}[:, e] = x)
//! G_{l-1}[:, e] = dZ_l[:, e] W_{l,e}
//! dx = dZ_0 W_0                                  (one product over all experts)
//! ```
//!
//! Composed from candle ops, a layer is a transpose, a matmul and a bias add, and candle's
//! backward accumulates every intermediate gradient into a fresh zero tensor (`zeros_like`, then
//! `add`): the pre-activation, the weight and its transpose, every hidden layer, every expert's
//! share of `dx`. Here the products read the weights in place through strides
//! ([`crate::gemm`]), the hidden gradients stay inside the op, `dx` is one product, and candle
//! sees `dx`, `dw`, `db` only.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use crate::bias_act::{backward_rows, forward_rows};
use crate::cpu_data::{contiguous, view, with_cpu, with_rows};
use crate::gemm::{View, matmul, matmul_column_blocks, matmul_into};

/// The custom op; see the module documentation.
#[derive(Debug)]
pub(crate) struct MlpGroup {
    experts: usize,
    dims: Vec<usize>,
    relu: bool,
    /// The output as `[n, E h]` rather than `[n, E, h]` (a single layer's `[n, h]`).
    flat: bool,
    /// The hidden activations `A_0 .. A_{L-2}` of the forward pass, for the backward pass.
    hidden: Mutex<Option<Vec<Vec<f32>>>>,
}

impl MlpGroup {
    pub(crate) fn new(experts: usize, dims: Vec<usize>, relu: bool, flat: bool) -> Self {
        MlpGroup {
            experts,
            dims,
            relu,
            flat,
            hidden: Mutex::new(None),
        }
    }

    fn layers(&self) -> usize {
        self.dims.len() - 1
    }

    /// Offset in the packed weights of `W_{l,e}`.
    pub(crate) fn w_offset(&self, l: usize, e: usize) -> usize {
        let before: usize = (0..l).map(|i| self.dims[i] * self.dims[i + 1]).sum();
        self.experts * before + e * self.dims[l] * self.dims[l + 1]
    }

    /// Length of the packed weights.
    pub(crate) fn w_total(&self) -> usize {
        let per_expert: usize = self.dims.windows(2).map(|d| d[0] * d[1]).sum();
        self.experts * per_expert
    }

    /// Length of the packed biases.
    pub(crate) fn b_total(&self) -> usize {
        self.experts * self.dims[1..].iter().sum::<usize>()
    }

    /// Offset in the packed biases of `b_{l,e}`.
    pub(crate) fn b_offset(&self, l: usize, e: usize) -> usize {
        let before: usize = self.dims[1..=l].iter().sum();
        self.experts * before + e * self.dims[l + 1]
    }

    /// `W_{l,e}` as a `[dims[l + 1], dims[l]]` view of the packed weights.
    fn weight<'a>(&self, w: &'a [f32], l: usize, e: usize) -> View<'a> {
        let (i, o) = (self.dims[l], self.dims[l + 1]);
        let at = self.w_offset(l, e);
        View::row_major(&w[at..at + o * i], o, i)
    }

    /// Every expert's `W_{l,e}` stacked: a `[E dims[l + 1], dims[l]]` view of the packed weights.
    fn stacked<'a>(&self, w: &'a [f32], l: usize) -> View<'a> {
        let rows = self.experts * self.dims[l + 1];
        let at = self.w_offset(l, 0);
        View::row_major(&w[at..at + rows * self.dims[l]], rows, self.dims[l])
    }

    /// Column block `e` of an `[n, E width]` matrix, as an `[n, width]` view.
    fn block<'a>(&self, a: &'a [f32], n: usize, width: usize, e: usize) -> View<'a> {
        View {
            data: &a[e * width..],
            rows: n,
            cols: width,
            rs: self.experts * width,
            cs: 1,
        }
    }

    /// The activations `A_0 .. A_{L-1}` of every layer.
    fn forward(&self, x: View<'_>, w: &[f32], b: &[f32]) -> Vec<Vec<f32>> {
        let (n, ex) = (x.rows, self.experts);
        let mut acts: Vec<Vec<f32>> = Vec::with_capacity(self.layers());
        for l in 0..self.layers() {
            let (i, o) = (self.dims[l], self.dims[l + 1]);
            let width = ex * o;
            let mut z = if l == 0 {
                matmul(x, self.stacked(w, 0).t())
            } else {
                let prev = &acts[l - 1];
                let blocks: Vec<_> = (0..ex)
                    .map(|e| (self.block(prev, n, i, e), self.weight(w, l, e).t()))
                    .collect();
                matmul_column_blocks(&blocks)
            };
            let at = self.b_offset(l, 0);
            forward_rows(&mut z, &b[at..at + width], self.relu);
            acts.push(z);
        }
        acts
    }

    /// Checks the shapes of `x`, the packed weights and biases against the op.
    fn check(&self, x: &View<'_>, w: usize, b: usize) -> Result<()> {
        let ex = self.experts;
        let (want_w, want_b) = (self.w_total(), self.b_total());
        if x.cols != self.dims[0] || w != want_w || b != want_b {
            candle_core::bail!(
                "mlp group of {ex} experts {:?}: input [{}, {}], {w} weights (want {want_w}), \
                 {b} biases (want {want_b})",
                self.dims,
                x.rows,
                x.cols
            );
        }
        Ok(())
    }
}

impl CustomOp3 for MlpGroup {
    fn name(&self) -> &'static str {
        "mlp-group"
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
        let w = contiguous(s2, l2, "packed weights")?;
        let b = contiguous(s3, l3, "packed biases")?;
        self.check(&x, w.len(), b.len())?;
        let mut acts = self.forward(x, w, b);
        let out = acts.pop().expect("at least one layer");
        *self.hidden.lock().expect("no panics while held") = Some(acts);
        let h = self.dims[self.layers()];
        let shape = if self.flat {
            Shape::from((x.rows, self.experts * h))
        } else {
            Shape::from((x.rows, self.experts, h))
        };
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (ex, layers) = (self.experts, self.layers());
        let n = res.dims()[0];
        let kept = self.hidden.lock().expect("no panics while held").take();
        let (dx, dw, db) = with_cpu(x, |xs, xl| {
            let x = view(xs, xl, "input")?;
            with_rows(w, "packed weights", |w| {
                let hidden = match kept {
                    Some(h) => h,
                    None => with_rows(b, "packed biases", |b| {
                        let mut acts = self.forward(x, w, b);
                        acts.pop();
                        Ok(acts)
                    })?,
                };
                let mut dw = vec![0.0f32; w.len()];
                let mut db = vec![0.0f32; self.b_total()];
                let mut g = with_rows(grad, "gradient", |g| Ok(g.to_vec()))?;
                let mut dx = Vec::new();
                with_rows(res, "output", |out| {
                    for l in (0..layers).rev() {
                        let (i, o) = (self.dims[l], self.dims[l + 1]);
                        let width = ex * o;
                        let a = if l + 1 == layers { out } else { &hidden[l][..] };
                        let (dz, dbl) = backward_rows(std::mem::take(&mut g), a, width, self.relu);
                        let at = self.b_offset(l, 0);
                        db[at..at + width].copy_from_slice(&dbl);
                        let dzv = View::row_major(&dz, n, width);
                        if l == 0 {
                            let at = self.w_offset(0, 0);
                            matmul_into(&mut dw[at..at + width * i], dzv.t(), x, false);
                            dx = matmul(dzv, self.stacked(w, 0));
                        } else {
                            let prev = &hidden[l - 1];
                            for e in 0..ex {
                                let dze = self.block(&dz, n, o, e);
                                let at = self.w_offset(l, e);
                                let ae = self.block(prev, n, i, e);
                                matmul_into(&mut dw[at..at + o * i], dze.t(), ae, false);
                            }
                            let blocks: Vec<_> = (0..ex)
                                .map(|e| (self.block(&dz, n, o, e), self.weight(w, l, e)))
                                .collect();
                            g = matmul_column_blocks(&blocks);
                        }
                    }
                    Ok(())
                })?;
                Ok((dx, dw, db))
            })
        })?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (n, self.dims[0]), dev)?),
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
            Some(Tensor::from_vec(db, b.shape(), dev)?),
        ))
    }
}

/// `act(x W^T + b)`: `x: [n, k]` (any strides), `w: [o, k]`, `b: [o]` -> `[n, o]`; `relu`
/// picks ReLU, otherwise the identity. The group of one expert with one layer: one node of the
/// autograd graph (module documentation).
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    let (o, k) = w.dims2()?;
    x.apply_op3(w, b, MlpGroup::new(1, vec![k, o], relu, true))
}
