//! Cross-Stitch networks (Misra et al., CVPR 2016).

use candle_core::{Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use crate::activation::Activation;
use crate::init::Init;
use crate::linear::Linear;
use crate::mlp::{MlpConfig, layer_forward};
use crate::mode::Mode;
use crate::params::ParamStore;

/// One column of layers per task; after each layer `i` the columns are mixed by a learned
/// `[T, T]` matrix `alpha_i`: `h~_t = sum_s alpha_i[t, s] h_s`.
#[derive(Debug, Clone)]
pub struct CrossStitch {
    /// `columns[t][i]`: layer `i` of task `t`'s column.
    columns: Vec<Vec<Linear>>,
    /// `alphas[i]`: the unit after layer `i`, `[T, T]`.
    alphas: Vec<Var>,
    activation: Activation,
    dropout: f32,
}

impl CrossStitch {
    /// Registers `backbone.task<t>.layer<i>.*` and `backbone.stitch<i>.alpha`, initialised 0.9 on
    /// the diagonal and `0.1 / (T - 1)` off it (1 when `T = 1`).
    pub fn new(
        cfg: &MlpConfig,
        in_dim: usize,
        n_tasks: usize,
        params: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(format!("backbone: {e}")))?;
        let init = cfg.activation.weight_init();
        let mut columns = Vec::with_capacity(n_tasks);
        for t in 0..n_tasks {
            let mut d = in_dim;
            let mut layers = Vec::with_capacity(cfg.hidden.len());
            for (i, &h) in cfg.hidden.iter().enumerate() {
                let name = format!("backbone.task{t}.layer{i}");
                layers.push(Linear::new(&name, d, h, init, params, rng)?);
                d = h;
            }
            columns.push(layers);
        }
        let stitch = if n_tasks == 1 {
            Init::Diagonal {
                diag: 1.0,
                off: 0.0,
            }
        } else {
            Init::Diagonal {
                diag: 0.9,
                off: 0.1 / (n_tasks - 1) as f32,
            }
        };
        let alphas = (0..cfg.hidden.len())
            .map(|i| {
                params.get_or_init(
                    &format!("backbone.stitch{i}.alpha"),
                    &[n_tasks, n_tasks],
                    stitch,
                    rng,
                )
            })
            .collect::<Result<_>>()?;
        Ok(CrossStitch {
            columns,
            alphas,
            activation: cfg.activation,
            dropout: cfg.dropout,
        })
    }

    /// The size of every task representation.
    pub fn out_dim(&self) -> usize {
        self.columns[0][self.columns[0].len() - 1].out_dim()
    }

    /// `x: [b, in_dim]` -> one `[b, out_dim]` representation per task.
    pub fn forward(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Vec<Tensor>> {
        let mut hs = vec![x.clone(); self.columns.len()];
        for (i, alpha) in self.alphas.iter().enumerate() {
            let outs = self
                .columns
                .iter()
                .zip(&hs)
                .map(|(col, h)| layer_forward(&col[i], self.activation, self.dropout, h, mode))
                .collect::<Result<Vec<_>>>()?;
            hs = stitch(alpha, &outs)?;
        }
        Ok(hs)
    }
}

/// The cross-stitch unit: `out_t = sum_s alpha[t, s] * columns[s]`, `alpha: [T, T]`,
/// `columns: T x [b, h]` -> `T x [b, h]`, computed as one `[T, T] x [T, b*h]` product.
pub(crate) fn stitch(alpha: &Tensor, columns: &[Tensor]) -> Result<Vec<Tensor>> {
    let Some(first) = columns.first() else {
        candle_core::bail!("cross-stitch unit over no columns");
    };
    let t = columns.len();
    let (b, h) = first.dims2()?;
    let stacked = Tensor::stack(columns, 0)?.reshape((t, b * h))?;
    let mixed = alpha.matmul(&stacked)?.reshape((t, b, h))?;
    (0..t).map(|s| mixed.get(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_difference::{check, gradient, random};
    use candle_core::Device;
    use rand::SeedableRng;

    #[test]
    fn stitch_matches_central_differences() {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (t, b, h) = (3, 4, 5);
        let alpha = random(t * t, &mut rng);
        let cols = random(t * b * h, &mut rng);
        let ws: Vec<Tensor> = (0..t)
            .map(|_| Tensor::from_vec(random(b * h, &mut rng), (b, h), &dev).unwrap())
            .collect();
        let f = |a: &Tensor, c: &Tensor| -> Tensor {
            let columns: Vec<Tensor> = (0..t).map(|s| c.get(s).unwrap()).collect();
            let out = stitch(a, &columns).unwrap();
            let terms: Vec<Tensor> = out
                .iter()
                .zip(&ws)
                .map(|(o, w)| (o.sqr().unwrap() * w).unwrap().sum_all().unwrap())
                .collect();
            Tensor::stack(&terms, 0).unwrap().sum_all().unwrap()
        };
        let av = Var::from_vec(alpha.clone(), (t, t), &dev).unwrap();
        let cv = Var::from_vec(cols.clone(), (t, b, h), &dev).unwrap();
        let grads = f(av.as_tensor(), cv.as_tensor()).backward().unwrap();
        let g = |v: &Var| gradient(&grads, v);
        let c = Tensor::from_vec(cols.clone(), (t, b, h), &dev).unwrap();
        check(
            "alpha",
            &alpha,
            &g(&av),
            |v| {
                f(&Tensor::from_slice(v, (t, t), &dev).unwrap(), &c)
                    .to_scalar()
                    .unwrap()
            },
            1e-6,
            1e-7,
        );
        let a = Tensor::from_vec(alpha.clone(), (t, t), &dev).unwrap();
        check(
            "columns",
            &cols,
            &g(&cv),
            |v| {
                f(&a, &Tensor::from_slice(v, (t, b, h), &dev).unwrap())
                    .to_scalar()
                    .unwrap()
            },
            1e-6,
            1e-7,
        );
    }
}
