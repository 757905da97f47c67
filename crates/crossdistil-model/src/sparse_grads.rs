//! The gradient of the embedding tables for one batch, per field: the distinct ids the batch
//! touched and one gradient row per id. Data-parallel workers each produce one; [`SparseGrads::sum`]
//! merges them into the gradient of the whole batch.

/// One field's gradient: `ids` sorted and distinct, `grad` `[ids.len(), dim]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldGrad {
    /// The table rows the batch touched, sorted and distinct.
    pub ids: Vec<u32>,
    /// The table's embedding size.
    pub dim: usize,
    /// One gradient row per id, `[ids.len(), dim]` row-major.
    pub grad: Vec<f32>,
}

/// Every table's gradient, in the input's table order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseGrads {
    /// One gradient per table, in the input's table order.
    pub fields: Vec<FieldGrad>,
}

fn row(g: &FieldGrad, k: usize) -> &[f32] {
    &g.grad[k * g.dim..(k + 1) * g.dim]
}

impl FieldGrad {
    /// `a + b` over the union of their ids (sorted merge; a shared id's rows are added `a + b`).
    pub fn add(a: &FieldGrad, b: &FieldGrad) -> FieldGrad {
        let d = a.dim;
        let mut ids = Vec::with_capacity(a.ids.len() + b.ids.len());
        let mut grad = Vec::with_capacity((a.ids.len() + b.ids.len()) * d);
        let (mut i, mut j) = (0, 0);
        while i < a.ids.len() || j < b.ids.len() {
            let (x, y) = (a.ids.get(i), b.ids.get(j));
            match (x, y) {
                (Some(&x), Some(&y)) if x == y => {
                    ids.push(x);
                    grad.extend(row(a, i).iter().zip(row(b, j)).map(|(p, q)| p + q));
                    i += 1;
                    j += 1;
                }
                (Some(&x), Some(&y)) if x < y => {
                    ids.push(x);
                    grad.extend_from_slice(row(a, i));
                    i += 1;
                }
                (Some(&x), None) => {
                    ids.push(x);
                    grad.extend_from_slice(row(a, i));
                    i += 1;
                }
                (_, Some(&y)) => {
                    ids.push(y);
                    grad.extend_from_slice(row(b, j));
                    j += 1;
                }
                (None, None) => unreachable!("the loop condition"),
            }
        }
        FieldGrad { ids, dim: d, grad }
    }
}

impl SparseGrads {
    /// The field-wise sum of `parts` (all with the same fields), added left to right so that the
    /// result does not depend on anything but the order of `parts`.
    pub fn sum(parts: Vec<SparseGrads>) -> SparseGrads {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return SparseGrads::default();
        };
        parts.fold(first, |acc, p| SparseGrads {
            fields: acc
                .fields
                .iter()
                .zip(&p.fields)
                .map(|(a, b)| FieldGrad::add(a, b))
                .collect(),
        })
    }

    /// The squared L2 norm over every field.
    pub fn sq_norm(&self) -> f64 {
        self.fields
            .iter()
            .flat_map(|f| &f.grad)
            .map(|&g| g as f64 * g as f64)
            .sum()
    }

    /// Multiplies every gradient by `s`.
    pub fn scale(&mut self, s: f32) {
        self.fields
            .iter_mut()
            .flat_map(|f| f.grad.iter_mut())
            .for_each(|g| *g *= s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(ids: &[u32], grad: &[f32]) -> FieldGrad {
        FieldGrad {
            ids: ids.to_vec(),
            dim: 2,
            grad: grad.to_vec(),
        }
    }

    #[test]
    fn sum_unites_ids_and_adds_shared_rows() {
        let a = SparseGrads {
            fields: vec![field(&[1, 4, 7], &[1., 1., 2., 2., 3., 3.])],
        };
        let b = SparseGrads {
            fields: vec![field(&[0, 4, 9], &[10., 10., 20., 20., 30., 30.])],
        };
        let s = SparseGrads::sum(vec![a.clone(), b]);
        assert_eq!(
            s.fields[0],
            field(
                &[0, 1, 4, 7, 9],
                &[10., 10., 1., 1., 22., 22., 3., 3., 30., 30.]
            )
        );
        assert_eq!(SparseGrads::sum(vec![a.clone()]), a);
        assert_eq!(s.sq_norm(), 2.0 * (100. + 1. + 484. + 9. + 900.));
    }
}
