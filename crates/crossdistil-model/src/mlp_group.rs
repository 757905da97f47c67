//! Several MLPs of one shape on one input: [`group_forward`] runs them as the one custom op of
//! [`crate::group_op`] where they allow it, and [`PackedGroup`] holds the experts of MMoE with
//! their parameters packed in the op's layout. The dependencies go one way: the op knows
//! nothing of [`Linear`] or [`Mlp`], which use it through [`crate::group_op::linear`].

use candle_core::{Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use crate::activation::Activation;
use crate::group_op::MlpGroup;
use crate::init::Init;
use crate::linear::Linear;
use crate::mlp::{Mlp, MlpConfig};
use crate::mode::Mode;
use crate::params::ParamStore;

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
pub(crate) fn group_forward(x: &Tensor, mlps: &[&Mlp], mode: &mut Mode<'_>) -> Result<Tensor> {
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
pub(crate) struct PackedGroup {
    weight: Var,
    bias: Var,
    experts: Vec<Mlp>,
    dims: Vec<usize>,
}

impl PackedGroup {
    /// Registers `<name>.weight` and `<name>.bias` for `experts` MLPs of configuration `cfg` on
    /// inputs of `in_dim`, and the views `<expert_name(e)>.layer<i>.*`.
    pub(crate) fn new(
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
                let mut separate = ParamStore::new(device)?;
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
    pub(crate) fn experts(&self) -> &[Mlp] {
        &self.experts
    }

    pub(crate) fn out_dim(&self) -> usize {
        *self.dims.last().expect("at least the input size")
    }

    /// `[n, E, h]` for `x: [n, in]`: one op on the packed parameters when the experts allow
    /// it (as in [`group_forward`]), otherwise the experts one by one.
    pub(crate) fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let refs: Vec<&Mlp> = self.experts.iter().collect();
        if !fusable(&refs, mode) {
            return group_forward(x, &refs, mode);
        }
        let relu = self.experts[0].activation == Activation::Relu;
        let op = MlpGroup::new(self.experts.len(), self.dims.clone(), relu, false);
        x.apply_op3(self.weight.as_tensor(), self.bias.as_tensor(), op)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_op::linear;
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
                let mut params = ParamStore::new(dev.clone()).unwrap();
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
            let mut params = ParamStore::new(dev.clone()).unwrap();
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
            let mut separate = ParamStore::new(dev.clone()).unwrap();
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
        let mut params = ParamStore::new(dev.clone()).unwrap();
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
        let mut params = ParamStore::new(dev.clone()).unwrap();
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
        let x = Tensor::ones((4, 3), DType::F32, &dev).unwrap();
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
        let x = Tensor::zeros((4, 3), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((2, 5), DType::F32, &dev).unwrap();
        let b = Tensor::zeros(2, DType::F32, &dev).unwrap();
        let e = linear(&x, &w, &b, true).unwrap_err().to_string();
        assert!(e.contains("input [4, 3]"), "{e}");
    }
}
