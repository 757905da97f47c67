//! Short parallel sections on helper threads that live as long as the process.
//!
//! A data-parallel step runs a few parallel sections of a millisecond or two each (the workers'
//! forward and backward passes, the sums of their gradients, the optimiser update). A thread
//! spawned for each section starts late: a new thread is queued on a core that is busy, and on
//! two cores it often began only when the calling thread had finished its own part, so the
//! section ran serially (docs/performance.md). Helpers that already exist are woken where they
//! last ran instead.

use std::sync::{Arc, Mutex, OnceLock};

/// The helper threads: a `rayon` pool, replaced by a larger one when a section needs more
/// helpers than it has (the old one ends once no section uses it).
fn pool(helpers: usize) -> Arc<rayon::ThreadPool> {
    static POOL: OnceLock<Mutex<Option<Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut slot = POOL
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match slot.as_ref() {
        Some(p) if p.current_num_threads() >= helpers => Arc::clone(p),
        _ => {
            let p = rayon::ThreadPoolBuilder::new()
                .num_threads(helpers)
                .thread_name(|i| format!("crossdistil-helper-{i}"))
                .build()
                .map(Arc::new)
                .unwrap_or_else(|e| panic!("cannot start {helpers} helper threads: {e}"));
            *slot = Some(Arc::clone(&p));
            p
        }
    }
}

/// Runs `f` on every item, item 0 on the calling thread and the others on helper threads (one
/// helper per item beyond the first), and returns the results in item order. The helpers are
/// created on first use and kept for later calls. A panic in `f` is re-raised here, after
/// every item has finished.
///
/// ```
/// let squares = crossdistil_core::on_helpers(vec![1, 2, 3], |x: i32| x * x);
/// assert_eq!(squares, [1, 4, 9]);
/// ```
pub fn on_helpers<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let mut items = items.into_iter();
    let Some(first) = items.next() else {
        return Vec::new();
    };
    let rest: Vec<T> = items.collect();
    if rest.is_empty() {
        return vec![f(first)];
    }
    let mut out: Vec<Option<R>> = std::iter::repeat_with(|| None)
        .take(rest.len() + 1)
        .collect();
    let (head, tail) = out.split_at_mut(1);
    let f = &f;
    pool(rest.len()).in_place_scope(|s| {
        for (item, slot) in rest.into_iter().zip(tail.iter_mut()) {
            s.spawn(move |_| *slot = Some(f(item)));
        }
        head[0] = Some(f(first));
    });
    out.into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_whatever_the_count() {
        for n in [0, 1, 2, 3, 7] {
            let out = on_helpers((0..n).collect(), |i: usize| {
                // Later items finish first.
                std::thread::sleep(std::time::Duration::from_millis((n - i) as u64));
                i * 10
            });
            assert_eq!(out, (0..n).map(|i| i * 10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_first_item_runs_on_the_calling_thread_and_the_others_do_not() {
        let me = std::thread::current().id();
        let ids = on_helpers(vec![(); 3], |()| std::thread::current().id());
        assert_eq!(ids[0], me);
        assert!(ids[1..].iter().all(|&id| id != me));
    }

    #[test]
    fn a_panic_in_a_helper_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| {
            on_helpers(vec![0, 1], |i: i32| {
                assert_eq!(i, 0, "item {i} fails");
                i
            })
        });
        assert!(r.is_err());
        // The helpers still work afterwards.
        assert_eq!(on_helpers(vec![1, 2], |i: i32| i + 1), [2, 3]);
    }
}
