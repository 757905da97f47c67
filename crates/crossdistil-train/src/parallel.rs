//! Work split over a few threads by size: the sums of the workers' dense gradients and the
//! dense optimiser update, which ran on one thread after every data-parallel step.

use std::ops::Range;

/// Cuts `0..weights.len()` into at most `threads` contiguous, non-empty ranges of about equal
/// total weight (a range closes once it holds its share of the total). Deterministic: the same
/// weights and `threads` give the same ranges.
pub fn balanced_ranges(weights: &[usize], threads: usize) -> Vec<Range<usize>> {
    let threads = threads.max(1);
    let total: usize = weights.iter().sum();
    let mut ranges = Vec::with_capacity(threads);
    let (mut start, mut acc) = (0, 0usize);
    for (i, &w) in weights.iter().enumerate() {
        acc += w;
        // Close the current range once it reaches its cumulative share of the total.
        let share = total * (ranges.len() + 1) / threads;
        if acc >= share && ranges.len() + 1 < threads {
            ranges.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < weights.len() {
        ranges.push(start..weights.len());
    }
    ranges
}

/// Runs `f` on every item, the items cut by [`balanced_ranges`] of `weight` over `threads`
/// threads, the first range on the calling thread and the others on helper threads
/// ([`crossdistil_core::on_helpers`]). Returns the first error in item-range order; a panic in
/// a thread is re-raised here.
pub fn for_each_balanced<T: Send, E: Send>(
    items: &mut [T],
    weight: impl Fn(&T) -> usize,
    threads: usize,
    f: impl Fn(&mut T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let weights: Vec<usize> = items.iter().map(&weight).collect();
    let ranges = balanced_ranges(&weights, threads);
    let run = |chunk: &mut [T]| chunk.iter_mut().try_for_each(&f);
    if ranges.len() <= 1 {
        return run(items);
    }
    let mut chunks = Vec::with_capacity(ranges.len());
    let mut rest = items;
    for r in &ranges {
        let (head, tail) = rest.split_at_mut(r.len());
        chunks.push(head);
        rest = tail;
    }
    let results = crossdistil_core::on_helpers(chunks, run);
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_in_order_and_balance() {
        for threads in 1..5 {
            for weights in [
                vec![],
                vec![5],
                vec![1, 1, 1, 1, 1, 1, 1],
                vec![100, 1, 1, 1, 100, 1],
                vec![0, 0, 3, 0],
            ] {
                let r = balanced_ranges(&weights, threads);
                assert!(r.len() <= threads.max(1));
                let flat: Vec<usize> = r.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(flat, (0..weights.len()).collect::<Vec<_>>(), "{weights:?}");
                assert!(r.iter().all(|r| !r.is_empty()));
            }
        }
        // Equal weights split evenly; one heavy item stands alone.
        assert_eq!(balanced_ranges(&[1; 8], 2), vec![0..4, 4..8]);
        assert_eq!(balanced_ranges(&[10, 1, 1, 1], 2), vec![0..1, 1..4]);
    }

    #[test]
    fn every_item_runs_once_and_the_first_error_wins() {
        for threads in 1..4 {
            let mut items: Vec<u32> = (0..10).collect();
            for_each_balanced(
                &mut items,
                |_| 1,
                threads,
                |x| {
                    *x *= 2;
                    Ok::<(), String>(())
                },
            )
            .unwrap();
            assert_eq!(items, (0..10).map(|x| 2 * x).collect::<Vec<_>>());
            let err = for_each_balanced(
                &mut items,
                |_| 1,
                threads,
                |x| {
                    if *x >= 8 {
                        Err(format!("item {x}"))
                    } else {
                        Ok(())
                    }
                },
            );
            assert_eq!(err, Err("item 8".to_string()), "{threads} threads");
        }
    }
}
