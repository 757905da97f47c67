//! Reading candle CPU tensors as plain `f32` slices and strided views, for the custom ops
//! ([`crate::mlp_group`], the gates' mixing).

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

use crate::gemm::View;

/// The `f32` matrix of a CPU storage under a 2-D `layout`, as a strided view.
pub(crate) fn view<'a>(s: &'a CpuStorage, layout: &Layout, what: &str) -> Result<View<'a>> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("the {what} must be f32");
    };
    let (&[rows, cols], &[rs, cs]) = (layout.dims(), layout.stride()) else {
        candle_core::bail!("the {what} must be a matrix, not {:?}", layout.dims());
    };
    Ok(View {
        data: &v[layout.start_offset()..],
        rows,
        cols,
        rs,
        cs,
    })
}

/// The contiguous `f32` data of a CPU storage under `layout`.
pub(crate) fn contiguous<'a>(s: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match (s, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("the {what} must be contiguous f32 data"),
    }
}

/// Runs `f` on the CPU storage and layout of `t`.
pub(crate) fn with_cpu<R>(
    t: &Tensor,
    f: impl FnOnce(&CpuStorage, &Layout) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => f(s, layout),
        _ => candle_core::bail!("the fused ops run on the CPU"),
    }
}

/// Runs `f` on the row-major `f32` data of `t`, a tensor on the CPU, made contiguous first if
/// needed (a copy then). `what` names `t` in the error for a tensor of another dtype or device.
pub fn with_rows<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    with_cpu(&t, |s, l| f(contiguous(s, l, what)?))
}
