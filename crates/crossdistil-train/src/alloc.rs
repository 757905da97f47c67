//! Process-wide allocator settings for training.
//!
//! Every candle op allocates its output. With glibc's defaults, buffers above 128 KiB are
//! mmapped and unmapped on every step, and the page faults cost a large share of a step.
//! [`tune_allocator`] raises the thresholds so that freed buffers are reused instead
//! (docs/performance.md has the measurement, against mimalloc as the global allocator).

/// Keeps glibc from mapping and unmapping buffers below 32 MiB, from trimming the heap below
/// 1 GiB free, and gives every thread the one (main) arena: the data-parallel workers are
/// threads started for each step, and with an arena per thread their freed buffers went back
/// to the kernel and were faulted in again (page clearing and TLB shootdowns in the profile of
/// two workers; docs/performance.md). Call once at start-up, before the heavy work. No-op
/// elsewhere.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The peak resident set size of this process in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
