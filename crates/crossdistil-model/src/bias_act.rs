//! The bias add and activation of a fully connected layer, forward and backward, on rows of
//! plain `f32` data; the kernels of [`crate::mlp_group`].
//!
//! Forward, in place: `y = act(z + b)` for `z: [n, h]` row-major and `b: [h]`, `act` ReLU or the
//! identity. Backward, in one pass over the rows: `dz = g * act'(z + b)` (for ReLU `g * [y > 0]`)
//! and `db = sum_rows dz`. candle composes the same from `broadcast_add` and `relu`: several full
//! passes and allocations, and a strided reduction over the batch for the bias gradient, which
//! the profile in docs/performance.md showed as a large share of a step.

/// `z <- act(z + b)` row by row; `z: [n, h]` row-major, `b: [h]`.
///
/// ReLU keeps NaN visible (`v <= 0` is false for NaN) instead of turning it into 0.
pub(crate) fn forward_rows(z: &mut [f32], b: &[f32], relu: bool) {
    let h = b.len();
    for row in z.chunks_exact_mut(h) {
        let row = &mut row[..h];
        if relu {
            for (v, b) in row.iter_mut().zip(b) {
                let s = *v + b;
                *v = if s <= 0.0 { 0.0 } else { s };
            }
        } else {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
    }
}

/// `(dz, db)` for the upstream gradient `g: [n, h]` and the forward output `y: [n, h]`
/// (only read with `relu`): `dz = g * [y > 0]` (ReLU) or `g`, `db = sum_rows dz`. `dz` is
/// `g`'s buffer, changed in place.
pub(crate) fn backward_rows(g: Vec<f32>, y: &[f32], h: usize, relu: bool) -> (Vec<f32>, Vec<f32>) {
    let mut db = vec![0.0f32; h];
    let mut dz = g;
    if !relu {
        for row in dz.chunks_exact(h) {
            db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
        }
        return (dz, db);
    }
    for (dr, yr) in dz.chunks_exact_mut(h).zip(y.chunks_exact(h)) {
        // Equal lengths and a bit mask instead of a branch (`y > 0` is random across a layer,
        // so a branch mispredicts): the loop vectorises.
        let (dr, yr, db) = (&mut dr[..h], &yr[..h], &mut db[..h]);
        for j in 0..h {
            let keep = ((yr[j] > 0.0) as u32).wrapping_neg();
            let v = f32::from_bits(dr[j].to_bits() & keep);
            dr[j] = v;
            db[j] += v;
        }
    }
    (dz, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_keeps_nan_visible() {
        let mut z = vec![f32::NAN, -1.0, 2.0];
        forward_rows(&mut z, &[0.0, 0.0, 0.5], true);
        assert!(z[0].is_nan());
        assert_eq!(&z[1..], &[0.0, 2.5]);
    }

    /// A hand count: two rows of three units.
    #[test]
    fn backward_masks_by_the_output_and_sums_the_rows() {
        let g = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = [0.5, 0.0, 1.0, 0.0, 2.0, 0.0];
        let (dz, db) = backward_rows(g.to_vec(), &y, 3, true);
        assert_eq!(dz, vec![1.0, 0.0, 3.0, 0.0, 5.0, 0.0]);
        assert_eq!(db, vec![1.0, 5.0, 3.0]);
        let (dz, db) = backward_rows(g.to_vec(), &y, 3, false);
        assert_eq!(dz, g.to_vec());
        assert_eq!(db, vec![5.0, 7.0, 9.0]);
    }
}
