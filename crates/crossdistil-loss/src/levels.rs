//! Graded labels: the ordered levels of the auxiliary ranking task of one task.
//!
//! With `K` binary tasks, the graded level of a sample for task `k` is the `K`-bit number whose
//! most significant bit is `y_k` and whose remaining bits are the other tasks' labels, in a
//! priority order (by default the tasks' own order, skipping `k`):
//!
//! ```text
//! level_k = y_k 2^(K-1) + sum_{m=1}^{K-1} y_{o_m} 2^(K-1-m),   o = the other tasks in order
//! ```
//!
//! A higher level ranks higher. For two tasks A and B (classes written with A's sign first):
//!
//! | task | 3    | 2    | 1    | 0    |
//! |------|------|------|------|------|
//! | A    | `++` | `+-` | `-+` | `--` |
//! | B    | `++` | `-+` | `+-` | `--` |
//!
//! so task k's own label decides first and the other labels only break ties within it.
//!
//! Shapes: `labels` is row-major `[b, K]` with 0/1 values (a value `> 0.5` counts as 1); the
//! result has one level per row, `[b]`.

/// The graded level of each row for `task` (its label first, then the other tasks in order):
/// `level = y_task 2^(k-1) + sum_m y_(o_m) 2^(k-1-m)`, `o` the other tasks in order. `labels`:
/// row-major `[b, k]`, a value `> 0.5` counts as 1; the result: `[b]`.
///
/// # Panics
///
/// On a misuse that is a programming error: `k == 0`, `k > 32`, `task >= k`, or
/// `labels.len()` not a multiple of `k`.
pub fn graded_levels(labels: &[f32], k: usize, task: usize) -> Vec<u32> {
    assert!(
        task < k,
        "graded_levels: task {task} out of range for {k} tasks"
    );
    let order: Vec<usize> = std::iter::once(task)
        .chain((0..k).filter(|&t| t != task))
        .collect();
    graded_levels_in_order(labels, k, &order)
}

/// The graded level of each row with the bits in a given priority order: `order[0]` is the most
/// significant bit (the task whose auxiliary ranking this is), `order[K-1]` the least.
///
/// # Panics
///
/// On a misuse that is a programming error: `k == 0`, `k > 32`, `order` not a permutation of
/// `0..k`, or `labels.len()` not a multiple of `k`.
pub fn graded_levels_in_order(labels: &[f32], k: usize, order: &[usize]) -> Vec<u32> {
    assert!(
        (1..=32).contains(&k),
        "graded_levels: the number of tasks must be in 1..=32, got {k}"
    );
    assert!(
        labels.len().is_multiple_of(k),
        "graded_levels: {} labels do not make rows of {k} tasks",
        labels.len()
    );
    let mut seen = vec![false; k];
    assert!(
        order.len() == k
            && order
                .iter()
                .all(|&t| t < k && !std::mem::replace(&mut seen[t], true)),
        "graded_levels: the order {order:?} is not a permutation of 0..{k}"
    );
    labels
        .chunks_exact(k)
        .map(|row| {
            order
                .iter()
                .fold(0u32, |level, &t| (level << 1) | u32::from(row[t] > 0.5))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Rows in class order ++, +-, -+, -- (A's sign first).
    const TWO: [f32; 8] = [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

    #[test]
    fn two_tasks_follow_the_documented_orders() {
        // A: ++ > +- > -+ > --
        assert_eq!(graded_levels(&TWO, 2, 0), vec![3, 2, 1, 0]);
        // B: ++ > -+ > +- > --
        assert_eq!(graded_levels(&TWO, 2, 1), vec![3, 1, 2, 0]);
    }

    #[test]
    fn three_tasks_put_the_own_label_first_and_the_others_in_order() {
        // Rows: every combination of (y0, y1, y2), y0 the most significant of the row index.
        let labels: Vec<f32> = (0..8u32)
            .flat_map(|i| [(i >> 2) & 1, (i >> 1) & 1, i & 1].map(|b| b as f32))
            .collect();
        assert_eq!(graded_levels(&labels, 3, 0), (0..8).collect::<Vec<u32>>());
        // Task 1: y1 first, then y0, then y2.
        let want1: Vec<u32> = (0..8u32)
            .map(|i| {
                let (y0, y1, y2) = ((i >> 2) & 1, (i >> 1) & 1, i & 1);
                (y1 << 2) | (y0 << 1) | y2
            })
            .collect();
        assert_eq!(graded_levels(&labels, 3, 1), want1);
        // Task 2: y2 first, then y0, then y1.
        let want2: Vec<u32> = (0..8u32)
            .map(|i| {
                let (y0, y1, y2) = ((i >> 2) & 1, (i >> 1) & 1, i & 1);
                (y2 << 2) | (y0 << 1) | y1
            })
            .collect();
        assert_eq!(graded_levels(&labels, 3, 2), want2);
        // Every positive of the task outranks every negative of it.
        for task in 0..3 {
            let levels = graded_levels(&labels, 3, task);
            for (r, &l) in levels.iter().enumerate() {
                assert_eq!(l >= 4, labels[r * 3 + task] > 0.5, "task {task} row {r}");
            }
        }
    }

    #[test]
    fn a_custom_order_sets_the_tie_breaks() {
        let labels = [1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0];
        // Task 0 first, then task 2, then task 1: (y0, y2, y1) = (1, 1, 0) and (0, 0, 1).
        assert_eq!(graded_levels_in_order(&labels, 3, &[0, 2, 1]), vec![6, 1]);
    }

    #[test]
    fn an_empty_batch_has_no_levels() {
        assert!(graded_levels(&[], 2, 1).is_empty());
    }
}
