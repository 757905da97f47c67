//! Predictions of a model over rows of a data set.

use crossdistil_data::{Batches, Dataset, Order};
use crossdistil_model::{Mode, MultiTaskModel};

use crate::error::{Result, TrainError};
use crate::parallel::for_each_balanced;

/// Per task, in `rows` order: the student's probabilities and, for a model with teachers, the
/// teachers' raw ranking scores and their calibrated probabilities `sigmoid(P r + Q)`.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// The student's probabilities `sigmoid(logit)`, `[T][rows]`.
    pub student: Vec<Vec<f32>>,
    /// The teachers' raw ranking scores `r`, `[T][rows]`; `None` for a model without teachers.
    pub teacher: Option<Vec<Vec<f32>>>,
    /// The calibrated teacher probabilities `sigmoid(P r + Q)`, `[T][rows]`; `None` without
    /// teachers.
    pub calibrated: Option<Vec<Vec<f32>>>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `(P, Q)` of every calibrator.
pub fn calibrator_values(model: &MultiTaskModel) -> Result<Vec<(f64, f64)>> {
    model
        .calibrators()
        .iter()
        .map(|c| {
            let rho = c.rho.as_tensor().flatten_all()?.to_vec1::<f32>()?[0] as f64;
            let q = c.q.as_tensor().flatten_all()?.to_vec1::<f32>()?[0] as f64;
            Ok((rho.max(0.0) + (-rho.abs()).exp().ln_1p(), q))
        })
        .collect()
}

/// Runs the model in evaluation mode over `rows`.
pub fn predict_all(
    model: &MultiTaskModel,
    ds: &Dataset,
    rows: &[u32],
    batch_size: usize,
) -> Result<Predictions> {
    predict_all_on(model, ds, rows, batch_size, 1)
}

/// [`predict_all`] on `threads` threads, each over a contiguous run of whole batches of `rows`
/// (the model is shared, read-only). The batches are `rows` cut every `batch_size` rows,
/// whatever the number of threads. The predictions come back in `rows` order.
pub fn predict_all_on(
    model: &MultiTaskModel,
    ds: &Dataset,
    rows: &[u32],
    batch_size: usize,
    threads: usize,
) -> Result<Predictions> {
    let batch_size = batch_size.max(1);
    let batches = rows.len().div_ceil(batch_size);
    let threads = threads.clamp(1, batches.max(1));
    let (student, teacher) = if threads == 1 {
        raw_scores(model, ds, rows, batch_size)?
    } else {
        // Each thread takes a run of whole batches: the batches are those of one thread, so
        // the scores do not depend on the number of threads, nor on how the rows were cut
        // before (a streamed data set scores the same rows in the same batches).
        let per = batches.div_ceil(threads) * batch_size;
        let mut parts: Vec<(&[u32], Option<RawScores>)> =
            rows.chunks(per).map(|part| (part, None)).collect();
        for_each_balanced(
            &mut parts,
            |(part, _)| part.len(),
            threads,
            |(part, out)| {
                *out = Some(raw_scores(model, ds, part, batch_size)?);
                Ok::<(), TrainError>(())
            },
        )?;
        let t = model.n_tasks();
        let mut student = vec![Vec::with_capacity(rows.len()); t];
        let mut teacher = model
            .has_teachers()
            .then(|| vec![Vec::with_capacity(rows.len()); t]);
        for (s, te) in parts.into_iter().filter_map(|(_, p)| p) {
            student.iter_mut().zip(s).for_each(|(a, b)| a.extend(b));
            if let (Some(all), Some(te)) = (teacher.as_mut(), te) {
                all.iter_mut().zip(te).for_each(|(a, b)| a.extend(b));
            }
        }
        (student, teacher)
    };
    let calibrated = match &teacher {
        Some(scores) => {
            let pq = calibrator_values(model)?;
            Some(
                scores
                    .iter()
                    .zip(pq)
                    .map(|(s, (p, q))| {
                        s.iter()
                            .map(|&r| sigmoid(p * r as f64 + q) as f32)
                            .collect()
                    })
                    .collect(),
            )
        }
        None => None,
    };
    Ok(Predictions {
        student,
        teacher,
        calibrated,
    })
}

/// Per task, in `rows` order: the student's probabilities and the teachers' raw scores.
type RawScores = (Vec<Vec<f32>>, Option<Vec<Vec<f32>>>);

/// The student's probabilities and the teachers' raw scores over `rows`, batch by batch.
fn raw_scores(
    model: &MultiTaskModel,
    ds: &Dataset,
    rows: &[u32],
    batch_size: usize,
) -> Result<RawScores> {
    let t = model.n_tasks();
    let mut student = vec![Vec::with_capacity(rows.len()); t];
    let mut teacher = model
        .has_teachers()
        .then(|| vec![Vec::with_capacity(rows.len()); t]);
    for batch in Batches::new(ds, rows, batch_size, Order::Sequential) {
        let fwd = model.forward(&batch, Mode::Eval)?;
        let probs: Vec<f32> = candle_nn::ops::sigmoid(&fwd.logits)?
            .flatten_all()?
            .to_vec1()?;
        for (i, p) in probs.iter().enumerate() {
            student[i % t].push(*p);
        }
        if let (Some(out), Some(scores)) = (teacher.as_mut(), &fwd.teacher_scores) {
            for (i, s) in scores.flatten_all()?.to_vec1::<f32>()?.iter().enumerate() {
                out[i % t].push(*s);
            }
        }
    }
    Ok((student, teacher))
}

/// The student's probabilities for `rows`, one vector per task; an error when any of them is not
/// finite (a model with non-finite parameters), so that no scores file ever holds one.
pub fn predict(
    model: &MultiTaskModel,
    ds: &Dataset,
    rows: &[u32],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let probs = predict_all(model, ds, rows, batch_size)?.student;
    for (task, p) in probs.iter().enumerate() {
        if let Some(i) = p.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Diverged(format!(
                "the model scores row_id {} as {} for task {task}: its parameters are not \
                 finite; train the run again with a lower train.lr or train.grad_clip",
                ds.row_ids[rows[i] as usize], p[i]
            )));
        }
    }
    Ok(probs)
}
