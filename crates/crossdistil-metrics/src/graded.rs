//! Graded classes: ranks of label combinations across several binary tasks, for
//! [`multi_auc`](crate::multi_auc()).

use crate::error::{MetricError, check_labels, check_len};

/// The class of every row for task `task`, from `K = labels.len()` binary label columns.
///
/// Inputs: `labels[k]` is the label column (0/1, length `n`, all columns the same length) of
/// task `k`; the columns are in *priority order*. Output: `n` classes in `0 .. 2^K`, to pass
/// to [`multi_auc`](crate::multi_auc()) with `n_classes = 1 << K`.
///
/// The class is the `K`-bit number whose most significant bit is the label of `task`, and
/// whose remaining bits, from the next most significant down, are the labels of the other
/// tasks in their priority order:
///
/// ```text
/// class_i = y_task,i · 2^(K-1) + Σ_{j=1}^{K-1} y_{o_j},i · 2^(K-1-j)
/// ```
///
/// where `o_1, o_2, …` are the tasks other than `task`, in priority order.
///
/// Example with two tasks A (first) and B, signs written with A's first:
///
/// | labels (A, B) | class for task A | class for task B |
/// |---------------|------------------|------------------|
/// | `++`          | 3                | 3                |
/// | `+-`          | 2                | 1                |
/// | `-+`          | 1                | 2                |
/// | `--`          | 0                | 0                |
///
/// So for task A the order is `++ > +- > -+ > --`, and for task B it is
/// `++ > -+ > +- > --`: the task's own label decides first, the others break ties.
///
/// ```
/// use crossdistil_metrics::graded_classes;
/// let a: &[u8] = &[1, 1, 0, 0];
/// let b: &[u8] = &[1, 0, 1, 0];
/// assert_eq!(graded_classes(&[a, b], 0).unwrap(), vec![3, 2, 1, 0]);
/// assert_eq!(graded_classes(&[a, b], 1).unwrap(), vec![3, 1, 2, 0]);
/// ```
///
/// # Errors
/// [`MetricError::InvalidArgument`] when `task >= K` (so also when `K = 0`) or `K > 31`
/// (the class count `2^K` must fit in a `u32`); [`MetricError::LengthMismatch`] when the
/// columns differ in length; [`MetricError::InvalidLabel`] for labels other than 0/1.
pub fn graded_classes(labels: &[&[u8]], task: usize) -> Result<Vec<u32>, MetricError> {
    let k = labels.len();
    if task >= k {
        return Err(MetricError::InvalidArgument(
            "task is not below the number of label columns",
        ));
    }
    if k > 31 {
        return Err(MetricError::InvalidArgument("more than 31 label columns"));
    }
    let n = labels[0].len();
    for column in labels {
        check_len("label column", n, column.len())?;
        check_labels(column)?;
    }
    // Columns from most to least significant bit: the task, then the others in order.
    let order = std::iter::once(task).chain((0..k).filter(|&j| j != task));
    let mut classes = vec![0u32; n];
    for j in order {
        for (c, &y) in classes.iter_mut().zip(labels[j]) {
            *c = (*c << 1) | u32::from(y);
        }
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tasks() {
        // Rows: ++, +-, -+, -- (A's sign first).
        let a: &[u8] = &[1, 1, 0, 0];
        let b: &[u8] = &[1, 0, 1, 0];
        assert_eq!(graded_classes(&[a, b], 0).unwrap(), vec![3, 2, 1, 0]);
        assert_eq!(graded_classes(&[a, b], 1).unwrap(), vec![3, 1, 2, 0]);
    }

    #[test]
    fn three_tasks() {
        // All 8 sign patterns, A's sign first: row r has A = bit 2, B = bit 1, C = bit 0.
        let a: &[u8] = &[0, 0, 0, 0, 1, 1, 1, 1];
        let b: &[u8] = &[0, 0, 1, 1, 0, 0, 1, 1];
        let c: &[u8] = &[0, 1, 0, 1, 0, 1, 0, 1];
        let cols = [a, b, c];
        // Task A: bits A B C -> the row index itself.
        assert_eq!(
            graded_classes(&cols, 0).unwrap(),
            vec![0, 1, 2, 3, 4, 5, 6, 7]
        );
        // Task B: bits B A C. E.g. row +-+ (A=1, B=0, C=1) -> 0·4 + 1·2 + 1 = 3.
        assert_eq!(
            graded_classes(&cols, 1).unwrap(),
            vec![0, 1, 4, 5, 2, 3, 6, 7]
        );
        // Task C: bits C A B. E.g. row +-+ -> 1·4 + 1·2 + 0 = 6.
        assert_eq!(
            graded_classes(&cols, 2).unwrap(),
            vec![0, 4, 1, 5, 2, 6, 3, 7]
        );
    }

    #[test]
    fn single_task_is_the_label() {
        let a: &[u8] = &[1, 0, 1];
        assert_eq!(graded_classes(&[a], 0).unwrap(), vec![1, 0, 1]);
    }

    #[test]
    fn invalid() {
        let a: &[u8] = &[1, 0];
        let short: &[u8] = &[1];
        let bad: &[u8] = &[1, 2];
        assert!(matches!(
            graded_classes(&[], 0),
            Err(MetricError::InvalidArgument(_))
        ));
        assert!(matches!(
            graded_classes(&[a], 1),
            Err(MetricError::InvalidArgument(_))
        ));
        assert!(matches!(
            graded_classes(&[a, short], 0),
            Err(MetricError::LengthMismatch { .. })
        ));
        assert_eq!(
            graded_classes(&[a, bad], 1),
            Err(MetricError::InvalidLabel { index: 1, value: 2 })
        );
        let many = vec![a; 32];
        assert!(matches!(
            graded_classes(&many, 0),
            Err(MetricError::InvalidArgument(_))
        ));
    }
}
