//! Memory hints for large embedding tables: huge pages and cache prefetches.
//!
//! A batch touches about a thousand random rows of each table, forward (the gather) and after
//! the backward pass (the row-wise update of the weights and both Adam moments). In a table of
//! millions of rows each such row is a cache miss and, with 4 KiB pages, a TLB miss; the
//! moments, allocated zeroed and left to the kernel, also cost a page fault (and the clearing of
//! a page) per new row touched. Two cures (docs/performance.md, the table-size sweep):
//!
//! - [`large_buffer`] asks the kernel for transparent huge pages: 2 MiB pages, so a few hundred
//!   faults per table instead of a hundred thousand, and a TLB that covers the whole table;
//! - [`prefetch_row`] asks for the row a few iterations ahead, overlapping its miss with the
//!   work on the current row.

/// Buffers from this size up are advised to use huge pages.
const HUGE_FROM_BYTES: usize = 32 << 20;

/// An empty vector with room for `len` floats; a buffer of at least 32 MiB is advised to use
/// transparent huge pages (Linux, where the kernel allows them on request). The pages become
/// resident as they are first written, as for any allocation.
pub(crate) fn large_buffer(len: usize) -> Vec<f32> {
    let v: Vec<f32> = Vec::with_capacity(len);
    advise_huge_pages(v.as_ptr().cast(), v.capacity() * size_of::<f32>());
    v
}

/// `len` zeros, resident: every page is written once here.
///
/// Left to the kernel, a zeroed buffer is a mapping of the shared zero page. The optimiser's
/// first access to a row of its moments is a read (then the write of the update), so each page
/// faulted twice: once to map the zero page, then a copy-on-write fault that also flushed the
/// other cores' TLBs with an interrupt (`do_wp_page`, `flush_tlb_mm_range` in the profile, 4%
/// of an MMoE step with two workers while the moments filled in). One write per page at
/// allocation is a single fault per page, as for a buffer filled with `memset`. A buffer of at
/// least 32 MiB is advised to use huge pages first, so its faults are 2 MiB ones.
pub(crate) fn large_zeros(len: usize) -> Vec<f32> {
    // `vec![0.0; len]` comes from calloc, whose large blocks are fresh zero mappings: advising
    // them before the first write is what makes the faults huge.
    let mut v = vec![0.0f32; len];
    advise_huge_pages(v.as_ptr().cast(), len * size_of::<f32>());
    const PER_PAGE: usize = 4096 / size_of::<f32>();
    for at in (0..len).step_by(PER_PAGE) {
        // SAFETY: `at < len`, inside the vector. A volatile write, because a plain store of the
        // zero that calloc already guarantees may be removed by the optimiser.
        unsafe { std::ptr::write_volatile(v.as_mut_ptr().add(at), 0.0) };
    }
    v
}

/// `madvise(MADV_HUGEPAGE)` on the whole pages inside `[ptr, ptr + bytes)`, for a region of at
/// least [`HUGE_FROM_BYTES`]. A hint: errors are ignored, and it changes no data.
fn advise_huge_pages(ptr: *const u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    if bytes >= HUGE_FROM_BYTES {
        const PAGE: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize + bytes) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies inside one live allocation of the caller; MADV_HUGEPAGE
            // only changes how the kernel backs it, never its contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, bytes);
}

/// How many rows ahead of the current one the loops ask for.
pub(crate) const AHEAD: usize = 8;

/// Hints that `data[start..start + len]` will be read soon. Does nothing for an out-of-range
/// `start` or on targets without a prefetch instruction.
#[inline(always)]
pub(crate) fn prefetch_row(data: &[f32], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // A row of 16 floats is one cache line, or two when it straddles a boundary.
        for at in [start, start + len.saturating_sub(1)] {
            if let Some(p) = data.get(at) {
                // SAFETY: a prefetch is a hint without effect on memory or on the program's
                // state, and `p` points into `data`.
                unsafe { _mm_prefetch(std::ptr::from_ref(p).cast::<i8>(), _MM_HINT_T0) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, start, len);
}
