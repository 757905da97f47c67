//! Batch assembly overlapped with training: the next batch is gathered on a second thread while
//! the current one trains.
//!
//! That thread runs at the lowest priority (`SCHED_IDLE` on Linux): when the workers keep every
//! core busy it takes only the time a core would otherwise idle (between the parallel sections
//! of a step, or while the step waits for its batch), instead of delaying a worker, which the
//! other workers would then wait for at the end of their section.

use crossdistil_data::Batch;

use crate::error::Result;

/// Runs `body` on every batch of `batches` in order, assembling up to two batches ahead on a
/// second thread. Stops at the first error (of the source or of `body`) or when `body` returns
/// `false`.
pub fn for_each_prefetched(
    batches: impl Iterator<Item = Result<Batch>> + Send,
    mut body: impl FnMut(Batch) -> Result<bool>,
) -> Result<()> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Batch>>(2);
        s.spawn(move || {
            lowest_priority();
            for b in batches {
                let failed = b.is_err();
                if tx.send(b).is_err() || failed {
                    break;
                }
            }
        });
        for batch in rx {
            if !body(batch?)? {
                break;
            }
        }
        Ok(())
    })
}

/// Moves the calling thread to the idle scheduling class: it runs only on a core that has
/// nothing else to run. A hint: where it fails (or off Linux) the thread keeps its priority.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param`, and pid 0 is the calling thread.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every batch arrives, in order; the assembling thread is not the caller's and, on Linux,
    /// runs in the idle scheduling class.
    #[test]
    fn batches_arrive_in_order_from_an_idle_priority_thread() {
        let caller = std::thread::current().id();
        let made = (0..5u32).map(move |i| {
            assert_ne!(std::thread::current().id(), caller);
            #[cfg(target_os = "linux")]
            // SAFETY: queries the calling thread's policy; no memory is passed.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
            Ok(Batch {
                rows: vec![i],
                ..Batch::default()
            })
        });
        let mut seen = Vec::new();
        for_each_prefetched(made, |b| {
            seen.push(b.rows[0]);
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        // The caller's own priority is untouched.
        #[cfg(target_os = "linux")]
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }
}
