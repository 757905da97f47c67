//! Several MLPs of one shape on one input, as one custom op: the experts of MMoE and PLE, and,
//! as the group of one expert with one layer, every fully connected layer ([`linear`]).
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

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use crate::activation::Activation;
use crate::bias_act::{backward_rows, forward_rows};
use crate::cpu_data::{contiguous, view, with_cpu, with_rows};
use crate::gemm::{View, matmul, matmul_column_blocks, matmul_into};
use crate::init::Init;
use crate::linear::Linear;
use crate::mlp::{Mlp, MlpConfig};
use crate::mode::Mode;
use crate::params::ParamStore;

/// The custom op; see the module documentation.
#[derive(Debug)]
struct MlpGroup {
    experts: usize,
    dims: Vec<usize>,
    relu: bool,
    /// The output as `[n, E h]` rather than `[n, E, h]` (a single layer's `[n, h]`).
    flat: bool,
    /// The hidden activations `A_0 .. A_{L-2}` of the forward pass, for the backward pass.
    hidden: Mutex<Option<Vec<Vec<f32>>>>,
}

impl MlpGroup {
    fn new(experts: usize, dims: Vec<usize>, relu: bool, flat: bool) -> Self {
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
    fn w_offset(&self, l: usize, e: usize) -> usize {
        let before: usize = (0..l).map(|i| self.dims[i] * self.dims[i + 1]).sum();
        self.experts * before + e * self.dims[l] * self.dims[l + 1]
    }

    /// Length of the packed weights.
    fn w_total(&self) -> usize {
        let per_expert: usize = self.dims.windows(2).map(|d| d[0] * d[1]).sum();
        self.experts * per_expert
    }

    /// Length of the packed biases.
    fn b_total(&self) -> usize {
        self.experts * self.dims[1..].iter().sum::<usize>()
    }

    /// Offset in the packed biases of `b_{l,e}`.
    fn b_offset(&self, l: usize, e: usize) -> usize {
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

/// Whether `mlps` can run as one op: the same layer sizes, ReLU or the identity, at least one
/// layer, and no dropout to draw (dropout off, or evaluation).
fn fusable(mlps: &[&Mlp], mode: &Mode<'_>) -> bool {
    let Some(first) = mlps.first() else {
        return false;
    };
    let shape = |m: &Mlp| -> Vec<(usize, usize)> {
        m.layers
            .iter()
            .map(|l| (l.weight.dims()[0], l.weight.dims()[1]))
            .collect()
    };
    let s = shape(first);
    !s.is_empty()
        && matches!(first.activation, Activation::Relu | Activation::Identity)
        && (first.dropout <= 0.0 || matches!(mode, Mode::Eval))
        && mlps.iter().all(|m| {
            shape(m) == s && m.activation == first.activation && m.dropout == first.dropout
        })
}

/// `[n, E, h]`: the `E` MLPs `mlps` applied to `x: [n, in]`, expert `e` at `[:, e]`. One op
/// when the MLPs allow it (module documentation); otherwise each MLP runs on its own (drawing
/// its dropout masks in order) and the outputs are stacked.
pub fn group_forward(x: &Tensor, mlps: &[&Mlp], mode: &mut Mode<'_>) -> Result<Tensor> {
    if !fusable(mlps, mode) {
        let outs = mlps
            .iter()
            .map(|m| m.forward(x, mode))
            .collect::<Result<Vec<_>>>()?;
        return Tensor::stack(&outs, 1);
    }
    let layers = mlps[0].layers.len();
    let mut ws = Vec::with_capacity(layers * mlps.len());
    let mut bs = Vec::with_capacity(layers * mlps.len());
    for l in 0..layers {
        for m in mlps {
            ws.push(m.layers[l].weight.flatten_all()?);
            bs.push(m.layers[l].bias.clone());
        }
    }
    let mut dims = vec![mlps[0].layers[0].weight.dims()[1]];
    dims.extend(mlps[0].layers.iter().map(|l| l.weight.dims()[0]));
    let op = MlpGroup::new(
        mlps.len(),
        dims,
        mlps[0].activation == Activation::Relu,
        false,
    );
    x.apply_op3(&Tensor::cat(&ws, 0)?, &Tensor::cat(&bs, 0)?, op)
}

/// `E` MLPs of one shape on one input whose parameters are two packed parameters,
/// `<name>.weight` and `<name>.bias`, in the layout of the module documentation, which the
/// fused op reads as they are. [`group_forward`] packs separate parameters with a `cat` in every
/// step, and candle's backward then takes their gradients through three accumulations (the
/// op's input, the `cat`, the `flatten`), each a zero fill and an add; here there is one.
///
/// Each expert is also an [`Mlp`] over views of the packed parameters (for dropout in training,
/// which runs the experts one by one), and the views are registered in the [`ParamStore`] as
/// `<expert name>.layer<i>.{weight,bias}` ([`ParamStore::unpacked_tensors`]). The initial
/// values are those of `E` MLPs created one after the other from the same generator.
#[derive(Debug, Clone)]
pub struct PackedGroup {
    weight: Var,
    bias: Var,
    experts: Vec<Mlp>,
    dims: Vec<usize>,
}

impl PackedGroup {
    /// Registers `<name>.weight` and `<name>.bias` for `experts` MLPs of configuration `cfg` on
    /// inputs of `in_dim`, and the views `<expert_name(e)>.layer<i>.*`.
    pub fn new(
        cfg: &MlpConfig,
        name: &str,
        expert_name: impl Fn(usize) -> String,
        experts: usize,
        in_dim: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        if experts == 0 {
            candle_core::bail!("{name}: a group needs at least one expert");
        }
        let mut dims = vec![in_dim];
        dims.extend(&cfg.hidden);
        let layers = dims.len() - 1;
        let layout = MlpGroup::new(experts, dims.clone(), false, false);
        let (wname, bname) = (format!("{name}.weight"), format!("{name}.bias"));
        let device = params.device().clone();
        let weight = params.get_or_init_with(
            &wname,
            &[layout.w_total()],
            |rng| {
                // Separate MLPs from the same generator (which also checks `cfg`), packed: the
                // same initial values. Their biases start at zero, as the packed ones do.
                let mut separate = ParamStore::new(device);
                let mut w = vec![0.0f32; layout.w_total()];
                for e in 0..experts {
                    let mlp = Mlp::new(cfg, &format!("{name}.{e}"), in_dim, &mut separate, rng)?;
                    for (l, layer) in mlp.layers.iter().enumerate() {
                        let at = layout.w_offset(l, e);
                        let values = layer.weight.flatten_all()?.to_vec1::<f32>()?;
                        w[at..at + values.len()].copy_from_slice(&values);
                    }
                }
                Ok(w)
            },
            rng,
        )?;
        let bias = params.get_or_init(&bname, &[layout.b_total()], Init::Zeros, rng)?;
        let mut mlps = Vec::with_capacity(experts);
        for e in 0..experts {
            let mut linears = Vec::with_capacity(layers);
            for l in 0..layers {
                let (i, o) = (dims[l], dims[l + 1]);
                let w = weight
                    .as_tensor()
                    .narrow(0, layout.w_offset(l, e), o * i)?
                    .reshape((o, i))?;
                let b = bias.as_tensor().narrow(0, layout.b_offset(l, e), o)?;
                let prefix = format!("{}.layer{l}", expert_name(e));
                params.add_view(&format!("{prefix}.weight"), &wname, w.clone());
                params.add_view(&format!("{prefix}.bias"), &bname, b.clone());
                linears.push(Linear { weight: w, bias: b });
            }
            mlps.push(Mlp {
                layers: linears,
                activation: cfg.activation,
                dropout: cfg.dropout,
            });
        }
        Ok(PackedGroup {
            weight,
            bias,
            experts: mlps,
            dims,
        })
    }

    /// The experts, over views of the packed parameters.
    pub fn experts(&self) -> &[Mlp] {
        &self.experts
    }

    pub fn out_dim(&self) -> usize {
        *self.dims.last().expect("at least the input size")
    }

    /// `[n, E, h]` for `x: [n, in]`: one op on the packed parameters when the experts allow
    /// it (as in [`group_forward`]), otherwise the experts one by one.
    pub fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let refs: Vec<&Mlp> = self.experts.iter().collect();
        if !fusable(&refs, mode) {
            return group_forward(x, &refs, mode);
        }
        let relu = self.experts[0].activation == Activation::Relu;
        let op = MlpGroup::new(self.experts.len(), self.dims.clone(), relu, false);
        x.apply_op3(self.weight.as_tensor(), self.bias.as_tensor(), op)
    }
}

/// `act(x W^T + b)`: `x: [n, k]` (any strides), `w: [o, k]`, `b: [o]` -> `[n, o]`; `relu`
/// picks ReLU, otherwise the identity. The group of one expert with one layer: one node of the
/// autograd graph (module documentation).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    let (o, k) = w.dims2()?;
    x.apply_op3(w, b, MlpGroup::new(1, vec![k, o], relu, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::MlpConfig;
    use crate::params::ParamStore;
    use candle_core::{DType, Device, Var};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn max_diff(a: &Tensor, c: &Tensor) -> f32 {
        let d = (a - c).unwrap().abs().unwrap().max_all().unwrap();
        d.to_scalar::<f32>().unwrap()
    }

    /// The fused group equals the experts run one by one and concatenated, values and the
    /// gradients of the input, of every weight and of every bias; for one, two and three layers,
    /// ReLU and the identity.
    #[test]
    fn equals_the_experts_one_by_one() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (n, k, experts) = (29, 7, 3);
        for hidden in [vec![5], vec![6, 4], vec![8, 3, 5]] {
            for activation in [Activation::Relu, Activation::Identity] {
                let mut params = ParamStore::new(dev.clone());
                let cfg = MlpConfig {
                    hidden: hidden.clone(),
                    activation,
                    dropout: 0.0,
                };
                let mlps: Vec<Mlp> = (0..experts)
                    .map(|e| Mlp::new(&cfg, &format!("e{e}"), k, &mut params, &mut rng).unwrap())
                    .collect();
                // Non-zero biases, so that their gradients and placement matter.
                for (_, v) in params.vars() {
                    let r: Vec<f32> = (0..v.elem_count())
                        .map(|_| rng.random_range(-0.5..0.5))
                        .collect();
                    v.set(&Tensor::from_vec(r, v.shape(), &dev).unwrap())
                        .unwrap();
                }
                let xs: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
                let x = Var::from_vec(xs, (n, k), &dev).unwrap();
                let h = *hidden.last().unwrap();
                let r: Vec<f32> = (0..n * experts * h)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                let r = Tensor::from_vec(r, (n, experts, h), &dev).unwrap();
                let refs: Vec<&Mlp> = mlps.iter().collect();
                let fused = group_forward(x.as_tensor(), &refs, &mut Mode::Eval).unwrap();
                let outs: Vec<Tensor> = mlps
                    .iter()
                    .map(|m| m.forward(x.as_tensor(), &mut Mode::Eval).unwrap())
                    .collect();
                let plain = Tensor::stack(&outs, 1).unwrap();
                let what = format!("{hidden:?} {activation:?}");
                assert!(max_diff(&fused, &plain) < 1e-5, "{what}: values");
                let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let gp = (plain * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let dx = max_diff(gf.get(&x).unwrap(), gp.get(&x).unwrap());
                assert!(dx < 1e-5, "{what}: gradient of x off by {dx}");
                for (name, v) in params.vars() {
                    let d = max_diff(gf.get(&v).unwrap(), gp.get(&v).unwrap());
                    assert!(d < 1e-5, "{what}: gradient of {name} off by {d}");
                }
            }
        }
    }

    /// A packed group starts where separate MLPs from the same generator start, and its one op
    /// gives the values and the gradients (of the input and of the packed parameters) of its
    /// experts run one by one over their views; with dropout in training it runs them so.
    #[test]
    fn a_packed_group_equals_its_experts_over_views() {
        let dev = Device::Cpu;
        let (n, k, experts) = (13, 7, 3);
        for (hidden, activation) in [
            (vec![6, 4], Activation::Relu),
            (vec![5], Activation::Identity),
        ] {
            let cfg = MlpConfig {
                hidden: hidden.clone(),
                activation,
                dropout: 0.0,
            };
            let mut params = ParamStore::new(dev.clone());
            let group = PackedGroup::new(
                &cfg,
                "g",
                |e| format!("e{e}"),
                experts,
                k,
                &mut params,
                &mut ChaCha8Rng::seed_from_u64(5),
            )
            .unwrap();
            let mut separate = ParamStore::new(dev.clone());
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            for e in 0..experts {
                Mlp::new(&cfg, &format!("e{e}"), k, &mut separate, &mut rng).unwrap();
            }
            let unpacked = params.unpacked_tensors().unwrap();
            assert_eq!(unpacked.len(), separate.len());
            for (name, v) in separate.vars() {
                assert_eq!(max_diff(&unpacked[&name], v.as_tensor()), 0.0, "{name}");
            }
            // Non-zero biases, so that their gradients and placement matter.
            let b = &params.get("g.bias").unwrap().clone();
            let r: Vec<f32> = (0..b.elem_count())
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            b.set(&Tensor::from_vec(r, b.shape(), &dev).unwrap())
                .unwrap();
            let xs: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
            let x = Var::from_vec(xs, (n, k), &dev).unwrap();
            let h = *hidden.last().unwrap();
            let r: Vec<f32> = (0..n * experts * h)
                .map(|i| (i as f32 * 0.7).sin())
                .collect();
            let r = Tensor::from_vec(r, (n, experts, h), &dev).unwrap();
            let fused = group.forward(x.as_tensor(), &mut Mode::Eval).unwrap();
            let outs: Vec<Tensor> = group
                .experts()
                .iter()
                .map(|m| m.forward(x.as_tensor(), &mut Mode::Eval).unwrap())
                .collect();
            let plain = Tensor::stack(&outs, 1).unwrap();
            assert!(max_diff(&fused, &plain) < 1e-5, "{hidden:?}: values");
            let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gp = (plain * &r).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(max_diff(gf.get(&x).unwrap(), gp.get(&x).unwrap()) < 1e-5);
            for (name, v) in params.vars() {
                let d = max_diff(gf.get(&v).unwrap(), gp.get(&v).unwrap());
                assert!(d < 1e-5, "{hidden:?}: gradient of {name} off by {d}");
            }
        }
        // Dropout in training: the experts one by one, the gradient still reaching the packing.
        let cfg = MlpConfig {
            hidden: vec![6],
            activation: Activation::Relu,
            dropout: 0.5,
        };
        let mut params = ParamStore::new(dev.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let group =
            PackedGroup::new(&cfg, "g", |e| format!("e{e}"), 2, 3, &mut params, &mut rng).unwrap();
        let x = Tensor::ones((4, 3), DType::F32, &dev).unwrap();
        let out = group.forward(&x, &mut Mode::Train(&mut rng)).unwrap();
        assert_eq!(out.dims(), [4, 2, 6]);
        let g = out.sum_all().unwrap().backward().unwrap();
        assert!(g.get(params.get("g.weight").unwrap()).is_some());
    }

    /// With dropout in training the experts run one by one (same masks as before), and the
    /// output keeps the group layout.
    #[test]
    fn dropout_in_training_runs_the_experts_one_by_one() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut params = ParamStore::new(dev.clone());
        let cfg = MlpConfig {
            hidden: vec![6],
            activation: Activation::Relu,
            dropout: 0.5,
        };
        let mlps: Vec<Mlp> = (0..2)
            .map(|e| Mlp::new(&cfg, &format!("e{e}"), 3, &mut params, &mut rng).unwrap())
            .collect();
        let refs: Vec<&Mlp> = mlps.iter().collect();
        assert!(!fusable(&refs, &Mode::Train(&mut rng.clone())));
        assert!(fusable(&refs, &Mode::Eval));
        let x = Tensor::ones((4, 3), candle_core::DType::F32, &dev).unwrap();
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
        let grouped = group_forward(&x, &refs, &mut Mode::Train(&mut a)).unwrap();
        let one = mlps[0].forward(&x, &mut Mode::Train(&mut b)).unwrap();
        let two = mlps[1].forward(&x, &mut Mode::Train(&mut b)).unwrap();
        let want = Tensor::stack(&[one, two], 1).unwrap();
        assert_eq!(max_diff(&grouped, &want), 0.0);
    }

    fn random(shape: &[usize], rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..shape.iter().product::<usize>())
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect()
    }

    /// Values and gradients equal candle's own `relu(x.matmul(w.t()).broadcast_add(b))`, for a
    /// contiguous input and for a transposed (strided) one.
    #[test]
    fn a_single_layer_matches_candles_composition_forward_and_backward() {
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
    fn a_single_layer_refuses_shapes_that_do_not_fit() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((4, 3), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((2, 5), candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
        let e = linear(&x, &w, &b, true).unwrap_err().to_string();
        assert!(e.contains("input [4, 3]"), "{e}");
    }
}
