//! Matrix products of strided `f32` views into a caller's buffer, through the `gemm` crate (the
//! kernels behind candle's CPU matmul). [`crate::mlp_group`] uses it to compute a layer's
//! products without candle's transposes, copies and zero-filled outputs.

use gemm::Parallelism;

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a> View<'a> {
    /// A row-major contiguous `[rows, cols]` matrix.
    pub(crate) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose: the same data, rows and columns swapped.
    pub(crate) fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `out = a b` for `a: [m, k]`, `b: [k, n]` and `out: [m, n]` row-major; with `accumulate`,
/// `out += a b`.
///
/// # Panics
/// When the shapes do not agree or a view reaches outside its data: both are bugs of the
/// caller, which checks its inputs' shapes first.
pub(crate) fn matmul_into(out: &mut [f32], a: View<'_>, b: View<'_>, accumulate: bool) {
    assert_eq!(
        out.len(),
        a.rows * b.cols,
        "gemm: output of {} for [{}, {}]",
        out.len(),
        a.rows,
        b.cols
    );
    matmul_rows_into(out, b.cols, a, b, accumulate);
}

/// `a b` as a new row-major `[m, n]` buffer, which the product writes without a zero fill
/// first (a pass over the whole output saved; a tenth of the `memset`s of an MMoE step).
pub(crate) fn matmul(a: View<'_>, b: View<'_>) -> Vec<f32> {
    let len = a.rows * b.cols;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    product(out.as_mut_ptr(), len, b.cols, a, b, false);
    // SAFETY: `product` with `accumulate = false` runs the kernels with `read_dst = false`, under
    // which they assign every element of the `[m, n]` destination (`dst := lhs rhs`, zeros for
    // `k = 0`) and never read it, on every path (microkernels, gemv, gevv); the test
    // `products_never_read_the_destination` checks this on NaN-filled destinations for every
    // kind of shape the ops use. So all `len` elements are initialised.
    unsafe { out.set_len(len) };
    out
}

/// `[m, w_1 + ... + w_E]` row-major whose column block `e` is `a_e b_e` (`a_e: [m, k_e]`,
/// `b_e: [k_e, w_e]`): the outputs of several products side by side, as the experts of a group
/// write them, each product into its block of a new buffer without a zero fill first.
///
/// # Panics
/// When the `a_e` differ in rows, or as [`matmul_into`].
pub(crate) fn matmul_column_blocks(blocks: &[(View<'_>, View<'_>)]) -> Vec<f32> {
    let m = blocks.first().map_or(0, |(a, _)| a.rows);
    assert!(
        blocks.iter().all(|(a, _)| a.rows == m),
        "gemm: column blocks of different row counts"
    );
    let width: usize = blocks.iter().map(|(_, b)| b.cols).sum();
    let len = m * width;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    let mut col = 0;
    for (a, b) in blocks {
        // Block `e` starts at column `col < width` of row 0; `product` checks that its rows,
        // `width` apart, end inside the `len - col` floats from there.
        product(
            out.as_mut_ptr().wrapping_add(col),
            len - col,
            width,
            *a,
            *b,
            false,
        );
        col += b.cols;
    }
    // SAFETY: the blocks' column ranges `col_e..col_e + w_e` partition `0..width`, and each
    // product (with `accumulate = false`, as in `matmul`) assigns every element of its `[m,
    // w_e]` block without reading it; so all `len` elements are initialised.
    unsafe { out.set_len(len) };
    out
}

/// [`matmul_into`] for an output whose rows lie `out_rs` apart (`out_rs >= n`): row `i` of the
/// product goes to `out[i * out_rs..i * out_rs + n]`, the rest of `out` is left alone. Writes a
/// column block of a wider matrix.
pub(crate) fn matmul_rows_into(
    out: &mut [f32],
    out_rs: usize,
    a: View<'_>,
    b: View<'_>,
    accumulate: bool,
) {
    product(out.as_mut_ptr(), out.len(), out_rs, a, b, accumulate);
}

thread_local! {
    /// Whether this thread's products stay on this thread ([`on_one_thread`]).
    static ONE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every matrix product of the model on the calling thread alone, whatever
/// `RAYON_NUM_THREADS` says. A data-parallel worker has a core of its own: products that asked
/// for every core too would compete with the other workers for them (two workers then trained
/// at about half the speed of one, docs/performance.md).
///
/// ```
/// let x = crossdistil_model::on_one_thread(|| 2 + 2);
/// assert_eq!(x, 4);
/// ```
pub fn on_one_thread<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ONE_THREAD.set(self.0);
        }
    }
    let _restore = Restore(ONE_THREAD.replace(true));
    f()
}

/// The product into `len` floats at `out` (rows `out_rs` apart), after checking every index
/// the kernel forms against `len` and the views.
fn product(out: *mut f32, len: usize, out_rs: usize, a: View<'_>, b: View<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions {k} and {}", b.rows);
    assert!(
        out_rs >= n && (m == 0 || n == 0 || (m - 1) * out_rs + n <= len),
        "gemm: output of {len} with row stride {out_rs} for [{m}, {n}]"
    );
    assert!(
        a.in_bounds() && b.in_bounds(),
        "gemm: a view reaches outside its data"
    );
    if m == 0 || n == 0 {
        return;
    }
    let threads = match ONE_THREAD.get() {
        true => 1,
        false => candle_core::utils::get_num_threads(),
    };
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every index the kernel forms inside its buffer: `i * rs +
    // j * cs` for `i < rows` and `j < cols` of each view, and `i * out_rs + j` for `i < m`,
    // `j < n` of the `len` floats at `out`, which the callers hold mutably (a `&mut` slice or a
    // vector's own allocation), so it overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            out_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The switch holds inside its closure only, also when the closure panics, and the
    /// products are the same bits on one thread as on the pool.
    #[test]
    fn one_thread_holds_for_its_closure_and_gives_the_same_products() {
        assert!(!ONE_THREAD.get());
        on_one_thread(|| assert!(ONE_THREAD.get()));
        assert!(!ONE_THREAD.get());
        assert!(std::panic::catch_unwind(|| on_one_thread(|| panic!("inside"))).is_err());
        assert!(!ONE_THREAD.get());
        let (m, k, n) = (300, 170, 260);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 9.0)
            .collect();
        let product = || {
            let mut out = vec![0.0; m * n];
            matmul_into(
                &mut out,
                View::row_major(&a, m, k),
                View::row_major(&b, k, n),
                false,
            );
            out
        };
        let pooled = product();
        let alone = on_one_thread(product);
        assert!(
            pooled
                .iter()
                .zip(&alone)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }

    /// A hand count, and the transposed views of the same data.
    #[test]
    fn products_of_plain_and_transposed_views() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [[1, 2, 3], [4, 5, 6]]
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // [[1, 0], [0, 1], [1, 1]]
        let mut out = vec![0.0; 4];
        matmul_into(
            &mut out,
            View::row_major(&a, 2, 3),
            View::row_major(&b, 3, 2),
            false,
        );
        assert_eq!(out, vec![4.0, 5.0, 10.0, 11.0]);
        // a^T a: [3, 3].
        let mut ata = vec![0.0; 9];
        let av = View::row_major(&a, 2, 3);
        matmul_into(&mut ata, av.t(), av, false);
        assert_eq!(
            ata,
            vec![17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]
        );
        // Accumulating adds to what is there.
        matmul_into(
            &mut out,
            View::row_major(&a, 2, 3),
            View::row_major(&b, 3, 2),
            true,
        );
        assert_eq!(out, vec![8.0, 10.0, 20.0, 22.0]);
    }

    /// Column blocks equal each product written into its block of a zeroed matrix.
    #[test]
    fn column_blocks_sit_side_by_side() {
        let m = 37;
        let shapes = [(5, 3), (168, 16), (1, 7), (40, 1)];
        let data: Vec<(Vec<f32>, Vec<f32>)> = shapes
            .iter()
            .map(|&(k, w)| {
                let a = (0..m * k)
                    .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                    .collect();
                let b = (0..k * w)
                    .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
                    .collect();
                (a, b)
            })
            .collect();
        let views: Vec<(View<'_>, View<'_>)> = data
            .iter()
            .zip(&shapes)
            .map(|((a, b), &(k, w))| (View::row_major(a, m, k), View::row_major(b, k, w)))
            .collect();
        let got = matmul_column_blocks(&views);
        let width: usize = shapes.iter().map(|s| s.1).sum();
        let mut want = vec![0.0f32; m * width];
        let mut col = 0;
        for (a, b) in &views {
            matmul_rows_into(&mut want[col..], width, *a, *b, false);
            col += b.cols;
        }
        assert_eq!(got, want);
        assert!(matmul_column_blocks(&[]).is_empty());
    }

    /// With `accumulate = false` the kernels never read the destination: a NaN already there
    /// would survive `0 * NaN`. Shapes for every kernel path (gevv for `k <= 2`, gemv for one
    /// row or column, the small-output kernels, the blocked ones) and transposed views.
    #[test]
    fn products_never_read_the_destination() {
        let shapes = [
            (1, 1, 1),
            (7, 5, 2),
            (1, 9, 33),
            (33, 1, 17),
            (9, 13, 11),
            (64, 300, 96),
            (257, 129, 40),
        ];
        for (m, k, n) in shapes {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
                .collect();
            let at: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect();
            let want: Vec<f32> = (0..m * n)
                .map(|ij| (0..k).map(|l| a[ij / n * k + l] * b[l * n + ij % n]).sum())
                .collect();
            for av in [View::row_major(&a, m, k), View::row_major(&at, k, m).t()] {
                let mut out = vec![f32::NAN; m * n];
                matmul_into(&mut out, av, View::row_major(&b, k, n), false);
                let fresh = matmul(av, View::row_major(&b, k, n));
                for (got, w) in out.iter().zip(&want).chain(fresh.iter().zip(&want)) {
                    assert!(
                        (got - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "[{m}, {k}, {n}]: {got} vs {w}"
                    );
                }
            }
        }
    }

    /// A product written into the second column block of a wider matrix leaves the first alone.
    #[test]
    fn writes_a_column_block() {
        let a = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
        let id = [1.0, 0.0, 0.0, 1.0];
        let mut out = vec![9.0; 8]; // [2, 4]
        matmul_rows_into(
            &mut out[2..],
            4,
            View::row_major(&a, 2, 2),
            View::row_major(&id, 2, 2),
            false,
        );
        assert_eq!(out, vec![9.0, 9.0, 1.0, 2.0, 9.0, 9.0, 3.0, 4.0]);
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn refuses_mismatched_shapes() {
        let a = [0.0; 6];
        let mut out = vec![0.0; 6];
        matmul_into(
            &mut out,
            View::row_major(&a, 2, 3),
            View::row_major(&a, 2, 3),
            false,
        );
    }
}
