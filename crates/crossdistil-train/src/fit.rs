//! The training loop: one optimiser step per mini-batch, validation after every epoch (and every
//! `eval_every` steps), early stopping on the mean validation AUC, checkpoints for `--resume`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;
use crossdistil_data::{Batch, Dataset, DatasetSpec, InputSchema, Split};
use crossdistil_loss::{CalibratorFit, fit_platt};
use crossdistil_model::MultiTaskModel;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{RunConfig, TableLayout, TaskWeighting, TrainSettings};
use crate::dist::Comm;
use crate::divergence::{DivergenceGuard, check_parameters};
use crate::error::{Result, TrainError};
use crate::evaluate::SplitMetrics;
use crate::optimizer::model_tensors;
use crate::report::Report;
use crate::tensorboard::EventWriter;

/// The run folder's TensorBoard events (`tensorboard --logdir RUN/tb`).
pub const EVENTS: &str = "tb";
use crate::reshard::{Target, reshard};
use crate::run::{
    EpochLosses, RunDir, RunFolder, TrainState, WithinEpoch, load_tensors, load_verified,
    read_verified_config, read_verified_encoders,
};
use crate::run_data::{RunData, Scored};
use crate::step::LossParts;
use crate::trainer::{Control, Hooks, Trainer};

/// How to run the loop.
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    /// Continue from the run's last commit (`RUN/manifest.json`).
    pub resume: bool,
    /// Replace the run the folder holds (a new run refuses such a folder otherwise).
    pub overwrite: bool,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
    /// Stop (as if interrupted) after this many epochs in this call; used to test `--resume`.
    pub stop_after_epochs: Option<usize>,
    /// Stop (as if interrupted) after the first commit inside an epoch that follows this many
    /// steps of this call (`train.checkpoint_every`); used to test `--resume` inside an epoch.
    pub stop_after_steps: Option<u64>,
}

/// A model built for a data set: the model and the data set's label columns of its tasks.
pub struct BuiltModel {
    /// The model, with fresh weights.
    pub model: MultiTaskModel,
    /// The data set's label indices of the model's tasks, in task order.
    pub tasks: Vec<usize>,
    /// The tasks' names, in task order.
    pub task_names: Vec<String>,
}

/// Builds the model a configuration describes, for a loaded data set.
pub fn build_model(cfg: &RunConfig, ds: &Dataset) -> Result<BuiltModel> {
    build_model_for(cfg, &ds.spec, &ds.input_schema())
}

/// [`build_model`] for the data set of `spec` with the features of `schema` (a streamed data
/// set's, or larger tables than the data set's own, for instance).
pub fn build_model_for(
    cfg: &RunConfig,
    spec: &DatasetSpec,
    schema: &InputSchema,
) -> Result<BuiltModel> {
    let tasks = cfg.task_indices(spec)?;
    let task_names = tasks.iter().map(|&t| spec.labels[t].name.clone()).collect();
    let mut model = MultiTaskModel::new(&cfg.model, schema, tasks.len(), cfg.train.seed)?;
    if cfg.distill.needs_teachers() {
        model = model.with_teachers(&cfg.model.teacher, cfg.train.seed)?;
    }
    match cfg.train.task_weighting {
        TaskWeighting::Fixed => {}
        TaskWeighting::Uncertainty => model = model.with_task_uncertainty()?,
        TaskWeighting::Gradnorm => model = model.with_gradnorm()?,
    }
    Ok(BuiltModel {
        model,
        tasks,
        task_names,
    })
}

/// [`build_model_for`] on rank `rank` of `ranks`: with `[train] tables = "sharded"` and more
/// than one rank, the model holds the rank's shard of every table
/// ([`MultiTaskModel::new_sharded`]).
pub fn build_model_for_rank(
    cfg: &RunConfig,
    spec: &DatasetSpec,
    schema: &InputSchema,
    rank: usize,
    ranks: usize,
) -> Result<BuiltModel> {
    if ranks <= 1 || cfg.train.tables != TableLayout::Sharded {
        return build_model_for(cfg, spec, schema);
    }
    let tasks = cfg.task_indices(spec)?;
    let task_names = tasks.iter().map(|&t| spec.labels[t].name.clone()).collect();
    let mut model =
        MultiTaskModel::new_sharded(&cfg.model, schema, tasks.len(), cfg.train.seed, rank, ranks)?;
    if cfg.distill.needs_teachers() {
        model = model.with_teachers(&cfg.model.teacher, cfg.train.seed)?;
    }
    match cfg.train.task_weighting {
        TaskWeighting::Fixed => {}
        TaskWeighting::Uncertainty => model = model.with_task_uncertainty()?,
        TaskWeighting::Gradnorm => model = model.with_gradnorm()?,
    }
    Ok(BuiltModel {
        model,
        tasks,
        task_names,
    })
}

/// Loads the weights of a checkpoint into a model built from the same configuration.
pub fn load_weights(model: &mut MultiTaskModel, path: &Path) -> Result<()> {
    let t = load_tensors(path)?;
    set_weights(model, &t, path)
}

/// Sets the model's weights from a loaded checkpoint (`path` names it in errors).
pub fn set_weights(
    model: &mut MultiTaskModel,
    t: &std::collections::HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    model
        .load_tensors(&model_tensors(t))
        .map_err(|e| TrainError::run(path, format!("does not fit the model: {e}")))
}

/// Trains on `data_dir` into `out` and returns the final report (best model on valid and test).
pub fn fit(data_dir: &Path, cfg: &RunConfig, out: &Path, opts: &FitOptions) -> Result<Report> {
    fit_on(data_dir, cfg, out, opts, None)
}

/// [`fit`] as one rank of a distributed run: every rank calls it with the same arguments
/// (`out` on a file system they share). Rank 0 owns the run folder: it locks and writes it,
/// logs, validates, commits the checkpoints and the report, which it returns. The other ranks
/// read the run's configuration and encoders from the folder once rank 0 has written them,
/// train their part of every global batch ([`RunData::train_batches_of_rank`]) and return
/// `None`. With sharded tables each rank writes its shard of every last checkpoint, and rank 0
/// commits the manifest once all are on disk; a resumed run reloads them (resharded when the
/// number of ranks changed). A rank that fails returns its error; the others' next collective
/// fails in turn when the group ends it (`MpiComm::abort` in the CLI; a dropped [`ThreadGroup`]
/// member ends its group).
///
/// [`ThreadGroup`]: crate::dist::ThreadGroup
pub fn fit_distributed(
    data_dir: &Path,
    cfg: &RunConfig,
    out: &Path,
    opts: &FitOptions,
    comm: Arc<dyn Comm>,
) -> Result<Option<Report>> {
    if comm.rank() == 0 {
        fit_on(data_dir, cfg, out, opts, Some(comm)).map(Some)
    } else {
        follow(data_dir, out, comm).map(|()| None)
    }
}

/// The training of a rank other than 0 (see [`fit_distributed`]).
fn follow(data_dir: &Path, out: &Path, comm: Arc<dyn Comm>) -> Result<()> {
    let run = RunDir::new(out);
    // Rank 0 has created or resumed the folder when it sends this.
    comm.all_gather(&[])?;
    let m = run.manifest()?;
    let cfg = read_verified_config(&run, &m)?;
    let encoders = read_verified_encoders(&run, &m)?;
    let data = RunData::open(data_dir, &cfg.train, Some(&encoders))?;
    let (rank, ranks) = (comm.rank(), comm.size());
    let sharded = cfg.train.tables == TableLayout::Sharded;
    let BuiltModel { model, tasks, .. } =
        build_model_for_rank(&cfg, data.spec(), &data.input_schema(), rank, ranks)?;
    let n_labels = data.spec().labels.len();
    let mut trainer = Trainer::new(model, &cfg, tasks.clone(), n_labels).with_comm(comm.clone());
    let state = m.state.clone();
    let targets = Target::of(trainer.model().input().tables());
    if let Some(tensors) = load_last_for(&run, &m, (rank, ranks), sharded, &targets)? {
        let last = m.last.as_ref().expect("loaded");
        trainer.restore(&tensors, state.step).map_err(|e| {
            TrainError::run(
                run.dir.join(&last.file),
                format!("does not fit the model: {e}"),
            )
        })?;
    }
    if let Some(w) = &state.within_epoch {
        trainer.resume_within_epoch(w.position.clone());
    }
    let t = &cfg.train;
    let source = data.train_batches_with_extra(
        t,
        &tasks,
        &cfg.distill.extra_positives,
        comm.rank(),
        comm.size(),
    )?;
    if !state.stopped_early {
        let first = state.epochs_done;
        trainer.fit(source.as_ref(), first..t.epochs.max(first), &mut ())?;
    }
    trainer.rank_costs()?;
    Ok(())
}

fn fit_on(
    data_dir: &Path,
    cfg: &RunConfig,
    out: &Path,
    opts: &FitOptions,
    comm: Option<Arc<dyn Comm>>,
) -> Result<Report> {
    let run = RunDir::new(out);
    // A run stopped before its first commit has trained nothing: resuming it starts it again.
    let resume = opts.resume && !run.uncommitted_start();
    if opts.resume && !resume {
        tracing::warn!(
            "{}: the run was stopped before its first commit; starting it again",
            out.display()
        );
    }
    // The folder's lock first: a second process is refused before it loads anything.
    let (mut folder, new_lock) = if resume {
        (Some(RunFolder::resume(out)?), None)
    } else {
        (None, Some(RunFolder::lock_new(out, opts.overwrite)?))
    };
    let events = out.join(EVENTS);
    if !resume && opts.overwrite && events.is_dir() {
        // The replaced run's curves go with it.
        std::fs::remove_dir_all(&events)
            .map_err(|e| TrainError::run(&events, format!("cannot remove: {e}")))?;
    }
    // A resumed run reads its own configuration and encoders (checked against the manifest), so
    // the ids and normalisation of its checkpoint hold whatever the data folder holds now.
    let (cfg, saved_encoders) = match &folder {
        Some(f) => {
            let saved = read_verified_config(&run, f.manifest())?;
            check_resume_config(&run, &saved, cfg)?;
            (saved, Some(read_verified_encoders(&run, f.manifest())?))
        }
        None => (cfg.clone(), None),
    };
    let data = RunData::open(data_dir, &cfg.train, saved_encoders.as_ref())?;
    let ranks = comm.as_ref().map_or(1, |c| c.size());
    let sharded = ranks > 1 && cfg.train.tables == TableLayout::Sharded;
    let BuiltModel {
        model,
        tasks,
        task_names,
    } = build_model_for_rank(&cfg, data.spec(), &data.input_schema(), 0, ranks)?;
    let mut resolved = cfg.clone();
    resolved.tasks = task_names.clone();
    let t = &cfg.train;
    let mut trainer = Trainer::new(model, &cfg, tasks.clone(), data.spec().labels.len());
    let rank = 0;
    if let Some(c) = &comm {
        trainer = trainer.with_comm(c.clone());
    }
    let folder = match (folder.take(), new_lock) {
        (Some(f), _) => f,
        (None, Some(lock)) => RunFolder::create(lock, out, &resolved, data.encoders())?,
        (None, None) => unreachable!("a folder is either resumed or created"),
    };
    let state = folder.manifest().state.clone();
    if resume {
        let targets = Target::of(trainer.model().input().tables());
        let m = folder.manifest();
        if let Some(tensors) = load_last_for(&run, m, (rank, ranks), sharded, &targets)? {
            let path = run
                .dir
                .join(&folder.manifest().last.as_ref().expect("loaded").file);
            trainer
                .restore(&tensors, state.step)
                .map_err(|e| TrainError::run(&path, format!("does not fit the model: {e}")))?;
        }
        if let Some(w) = &state.within_epoch {
            trainer.resume_within_epoch(w.position.clone());
        }
        tracing::info!(
            epochs_done = state.epochs_done,
            batches_into_epoch = state
                .within_epoch
                .as_ref()
                .map_or(0, |w| w.position.batches),
            step = state.step,
            generation = folder.manifest().generation,
            "resuming {}",
            out.display()
        );
    }

    if let Some(c) = &comm {
        // The folder is ready: the other ranks may read it.
        c.all_gather(&[])?;
        tracing::info!(
            ranks,
            workers = t.workers,
            global_batch = t.batch_size,
            "training on {ranks} ranks of {} worker(s) each",
            t.workers
        );
    }
    let header = metrics_header(&task_names, trainer.model().has_teachers());
    let validations = Validations {
        header: &header,
        task_names: &task_names,
        data: &data,
        tasks: &tasks,
        cfg: t,
        started: Instant::now(),
        seconds_before: state.train_seconds,
        events: std::cell::RefCell::new(EventWriter::create(&out.join(EVENTS))?),
    };
    let source =
        data.train_batches_with_extra(t, &tasks, &cfg.distill.extra_positives, rank, ranks)?;
    let mut hooks = RunHooks {
        guard: DivergenceGuard::new(t.divergence_factor, state.early_loss),
        folder,
        state,
        validations: &validations,
        refit_calibrators: cfg.distill.calibrator == CalibratorFit::RefitValid,
        opts,
        out,
        batches: source.batches_per_epoch().unwrap_or(0),
        bar: ProgressBar::hidden(),
        parts: EpochParts::new(tasks.len()),
        epoch_start: Instant::now(),
        epochs_this_call: 0,
        steps_this_call: 0,
        resumed: None,
        epoch_batches: 0,
    };
    hooks.resumed = hooks.state.within_epoch.clone();
    if !hooks.state.stopped_early {
        let first = hooks.state.epochs_done;
        trainer.fit(source.as_ref(), first..t.epochs.max(first), &mut hooks)?;
    }
    let costs = trainer.rank_costs()?;
    let RunHooks {
        mut folder, state, ..
    } = hooks;
    if state != folder.manifest().state {
        // Early stopping within an epoch, or no epoch to train: the final state (and a best
        // checkpoint written since the last commit) is committed without a new last one.
        folder.commit(&state, None)?;
    }

    let best = folder.manifest().best.clone().ok_or_else(|| {
        TrainError::run(
            out,
            "training ended without a validation, so without a best model",
        )
    })?;
    // The trainer's optimiser state is dropped before the best weights are read, one tensor
    // at a time: the reload does not raise the peak memory of training.
    let mut model = if sharded {
        // Rank 0 holds a shard of the tables: the best model is scored with whole ones.
        drop(trainer);
        build_model_for(&cfg, data.spec(), &data.input_schema())?.model
    } else {
        trainer.into_model()
    };
    model.input_mut().clear_optimizer_state();
    let tensors = folder
        .load_best_weights()?
        .expect("the manifest names a best checkpoint");
    set_weights(&mut model, &tensors, &run.dir.join(&best.file))?;
    drop(tensors);
    let valid = validations.metrics(&model, Split::Valid)?;
    let test = validations.metrics(&model, Split::Test)?;
    let mut report = Report::new(data.dir(), &resolved, &task_names, valid, test, &state);
    report.distributed = costs;
    folder.finish(&report)?;
    Ok(report)
}

/// What `fit` runs around the trainer's steps: the divergence guard, the progress bar,
/// validations (every `eval_every` steps and after every epoch) with the best checkpoint and
/// early stopping, the calibrators' refit, and the commit of each epoch.
struct RunHooks<'a> {
    folder: RunFolder,
    state: TrainState,
    guard: DivergenceGuard,
    validations: &'a Validations<'a>,
    refit_calibrators: bool,
    opts: &'a FitOptions,
    out: &'a Path,
    /// Batches per epoch, for the progress bar.
    batches: usize,
    bar: ProgressBar,
    parts: EpochParts,
    epoch_start: Instant,
    epochs_this_call: usize,
    steps_this_call: u64,
    /// The epoch in progress that this call resumes, consumed by its first `before_epoch`.
    resumed: Option<WithinEpoch>,
    /// Batches trained in the current epoch.
    epoch_batches: u64,
}

impl Hooks for RunHooks<'_> {
    fn before_epoch(&mut self, trainer: &Trainer, epoch: usize) -> Result<()> {
        let t = self.validations.cfg;
        self.bar = progress_bar(self.opts.progress, self.batches as u64, epoch + 1, t.epochs);
        self.epoch_start = Instant::now();
        self.parts = EpochParts::new(trainer.model().n_tasks());
        self.guard.start_epoch(self.batches);
        self.epoch_batches = 0;
        if let Some(w) = self.resumed.take() {
            self.parts = w.losses;
            self.guard.restore_recent(w.recent_losses, w.recent_sum);
            self.epoch_batches = w.position.batches;
            self.bar.inc(w.position.batches);
        }
        Ok(())
    }

    fn after_step(
        &mut self,
        trainer: &mut Trainer,
        batch: &Batch,
        loss: &LossParts,
    ) -> Result<Control> {
        let t = self.validations.cfg;
        let state = &mut self.state;
        self.parts.add(loss);
        state.step = trainer.step_count();
        self.guard.observe(loss.total, state.step)?;
        let mut scalars = vec![("train/step_loss".to_string(), loss.total as f32)];
        scalars.extend(weighting_scalars(
            trainer.model(),
            self.validations.task_names,
        )?);
        let scalars: Vec<(&str, f32)> = scalars.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        self.validations
            .events
            .borrow_mut()
            .scalars(state.step as i64, &scalars)?;
        state.early_loss = self.guard.early();
        // The global batch's rows (this rank's part of it is `batch`).
        let _ = batch;
        state.rows_seen += loss.rows as u64;
        self.epoch_batches += 1;
        self.steps_this_call += 1;
        self.bar.inc(1);
        self.bar.set_message(format!(
            "loss {:.4}  {:.0} rows/s",
            self.parts.mean(self.parts.total),
            (self.parts.n * t.batch_size) as f64
                / self.epoch_start.elapsed().as_secs_f64().max(1e-9)
        ));
        if t.eval_every > 0 && state.step.is_multiple_of(t.eval_every as u64) {
            let epoch = state.epochs_done;
            let (v, folder, parts) = (self.validations, &mut self.folder, &self.parts);
            trainer.with_full_tables(|trainer| v.run(folder, trainer, state, epoch, parts))?;
            if state.stopped_early {
                self.bar.finish_and_clear();
                return Ok(Control::Stop);
            }
        }
        if t.checkpoint_every > 0
            && state.step.is_multiple_of(t.checkpoint_every as u64)
            && (self.epoch_batches as usize) < self.batches
        {
            self.commit_within_epoch(trainer)?;
        }
        Ok(Control::Continue)
    }

    fn after_epoch(&mut self, trainer: &mut Trainer, epoch: usize) -> Result<Control> {
        self.bar.finish_and_clear();
        self.state.epochs_done += 1;
        self.state.within_epoch = None;
        self.epochs_this_call += 1;
        let v = self.validations;
        let refit = self.refit_calibrators;
        let (folder, state, parts) = (&mut self.folder, &mut self.state, &self.parts);
        let m = trainer.with_full_tables(|trainer| {
            if refit && trainer.model().has_teachers() {
                let scored = v.score(trainer.model())?;
                refit_calibrators(trainer.model(), &scored, v.tasks)?;
            }
            v.run(folder, trainer, state, epoch + 1, parts)
        })?;
        tracing::info!(
            epoch = epoch + 1,
            train_loss = self.parts.mean(self.parts.total),
            valid_mean_auc = m.mean_auc,
            seconds = self.epoch_start.elapsed().as_secs_f64(),
            "epoch done"
        );
        commit_last(&mut self.folder, &self.state, trainer)?;
        if self
            .opts
            .stop_after_epochs
            .is_some_and(|n| self.epochs_this_call >= n)
        {
            return Err(TrainError::run(
                self.out,
                format!("stopped after {} epochs as asked", self.epochs_this_call),
            ));
        }
        Ok(if self.state.stopped_early {
            Control::Stop
        } else {
            Control::Continue
        })
    }
}

impl RunHooks<'_> {
    /// Commits the run inside an epoch: the state with where the epoch stands, and a last
    /// checkpoint.
    fn commit_within_epoch(&mut self, trainer: &Trainer) -> Result<()> {
        let v = self.validations;
        let (recent_losses, recent_sum) = self.guard.recent();
        self.state.within_epoch = Some(WithinEpoch {
            position: trainer.position(self.epoch_batches)?,
            losses: self.parts.clone(),
            recent_losses,
            recent_sum,
        });
        self.state.train_seconds = v.seconds_before + v.started.elapsed().as_secs_f64();
        commit_last(&mut self.folder, &self.state, trainer)?;
        if self
            .opts
            .stop_after_steps
            .is_some_and(|n| self.steps_this_call >= n)
        {
            return Err(TrainError::run(
                self.out,
                format!("stopped after {} steps as asked", self.steps_this_call),
            ));
        }
        Ok(())
    }
}

/// Commits `state` with the trainer's state as the last checkpoint: one file, or with sharded
/// tables the dense part from rank 0 and a shard from every rank.
fn commit_last(folder: &mut RunFolder, state: &TrainState, trainer: &Trainer) -> Result<()> {
    if trainer.sharded().is_some() {
        let shards = trainer.write_shards(&folder.run.dir, folder.next_generation())?;
        return folder.commit_sharded(state, &trainer.dense_checkpoint_view()?, shards);
    }
    folder.commit(state, Some(&trainer.checkpoint_view()?))
}

/// The last checkpoint of a run for rank `rank` of `ranks` (`None` before the first commit):
/// the one file, or with sharded tables the dense part and the rank's shard. Written by another
/// number of ranks, or with the other table layout, its tables are resharded for this rank
/// ([`crate::reshard`]; `targets` are the model's tables).
fn load_last_for(
    run: &RunDir,
    m: &crate::manifest::Manifest,
    (rank, ranks): (usize, usize),
    sharded: bool,
    targets: &[Target],
) -> Result<Option<std::collections::HashMap<String, Tensor>>> {
    let Some(last) = &m.last else {
        return Ok(None);
    };
    let written = m.last_shards.len();
    let (rank, ranks) = if sharded { (rank, ranks) } else { (0, 1) };
    if written == ranks.max(1) && written > 0 || written == 0 && ranks == 1 {
        let mut tensors = load_verified(run, last)?;
        if written > 0 {
            tensors.extend(load_verified(run, &m.last_shards[rank])?);
        }
        return Ok(Some(tensors));
    }
    tracing::info!(
        written = written.max(1),
        ranks,
        "the last checkpoint's tables were written by {} rank(s): resharding them",
        written.max(1)
    );
    let tensors = if written == 0 {
        // The tables are in `last`, whole: one source.
        reshard(1, |_| load_verified(run, last), targets, rank, ranks)?
    } else {
        let mut dense = load_verified(run, last)?;
        let tables = reshard(
            written,
            |s| load_verified(run, &m.last_shards[s]),
            targets,
            rank,
            ranks,
        )?;
        dense.extend(tables);
        dense
    };
    Ok(Some(tensors))
}

/// Refuses to resume the run in `run` (saved configuration `saved`) with a configuration that
/// differs from it, naming every key that differs.
fn check_resume_config(run: &RunDir, saved: &RunConfig, given: &RunConfig) -> Result<()> {
    let diffs = saved.differences(given);
    if diffs.is_empty() {
        return Ok(());
    }
    Err(TrainError::run(
        run.config_path(),
        format!(
            "--resume with a configuration that differs from the run's in {} key(s): {}. \
             Resume without --config (the run's own configuration is used), or start a new run",
            diffs.len(),
            diffs.join("; ")
        ),
    ))
}

fn progress_bar(show: bool, len: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "epoch {epoch}/{epochs} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{eta}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Refits every calibrator by maximum-likelihood Platt scaling on the teacher scores and labels
/// of the validation rows (`scored`).
fn refit_calibrators(model: &MultiTaskModel, scored: &Scored, tasks: &[usize]) -> Result<()> {
    let Some(scores) = &scored.pred.teacher else {
        return Ok(());
    };
    for (k, &t) in tasks.iter().enumerate() {
        let y: Vec<f32> = scored.labels[t].iter().map(|&v| v as f32).collect();
        let (p, q) = fit_platt(&scores[k], &y);
        model.calibrators()[k].set(p, q)?;
    }
    Ok(())
}

/// Sums of the loss parts over an epoch (saved in a commit inside an epoch).
type EpochParts = EpochLosses;

impl EpochLosses {
    fn new(tasks: usize) -> Self {
        EpochLosses {
            n: 0,
            total: 0.0,
            bce: 0.0,
            kd: 0.0,
            rank: 0.0,
            cal: 0.0,
            kd_gap: vec![0.0; tasks],
        }
    }

    /// Adds one step's parts and its total (the weighted objective that was minimised).
    fn add(&mut self, s: &LossParts) {
        self.n += 1;
        self.bce += s.bce;
        self.kd += s.kd;
        self.rank += s.rank;
        self.cal += s.cal;
        self.total += s.total;
        for (a, g) in self.kd_gap.iter_mut().zip(&s.kd_gap) {
            *a += g;
        }
    }

    fn mean(&self, v: f64) -> f64 {
        v / self.n.max(1) as f64
    }
}

const PER_TASK: [&str; 5] = ["auc", "gauc", "multi_auc", "logloss", "ece"];
const PER_TEACHER: [&str; 4] = [
    "teacher_auc",
    "teacher_multi_auc",
    "cal_teacher_logloss",
    "cal_teacher_ece",
];

fn metrics_header(tasks: &[String], teachers: bool) -> Vec<String> {
    let mut h: Vec<String> = [
        "epoch",
        "step",
        "seconds",
        "train_loss",
        "train_bce",
        "train_kd",
        "train_rank",
        "train_cal",
        "valid_mean_auc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for t in tasks {
        h.push(format!("kd_gap_{t}"));
        for m in PER_TASK {
            h.push(format!("valid_{t}_{m}"));
        }
        if teachers {
            for m in PER_TEACHER {
                h.push(format!("valid_{t}_{m}"));
            }
        }
    }
    h
}

/// What an evaluation during and after training needs besides the model: the data, and where
/// a validation is recorded.
/// The learned task weighting after a step, as TensorBoard scalars: GradNorm's weights
/// (`weighting/<task>`, renormalised to sum to the number of tasks) or uncertainty weighting's
/// log-variances (`weighting/<task>_log_var`); none with fixed weights.
fn weighting_scalars(model: &MultiTaskModel, tasks: &[String]) -> Result<Vec<(String, f32)>> {
    let mut out = Vec::new();
    if let Some((w, _)) = model.gradnorm() {
        let w = crate::gradnorm::renormalised(&w.as_tensor().to_vec1::<f32>()?);
        out.extend(
            tasks
                .iter()
                .zip(w)
                .map(|(t, w)| (format!("weighting/{t}"), w)),
        );
    }
    if let Some(s) = model.task_log_vars() {
        let s = s.as_tensor().to_vec1::<f32>()?;
        out.extend(
            tasks
                .iter()
                .zip(s)
                .map(|(t, s)| (format!("weighting/{t}_log_var"), s)),
        );
    }
    Ok(out)
}

struct Validations<'a> {
    header: &'a [String],
    task_names: &'a [String],
    data: &'a RunData,
    tasks: &'a [usize],
    cfg: &'a TrainSettings,
    /// When this call of `fit` started, and the training seconds of the calls before it.
    started: Instant,
    seconds_before: f64,
    /// The run's TensorBoard events (`RUN/tb/`).
    events: std::cell::RefCell<EventWriter>,
}

impl Validations<'_> {
    /// The model's predictions for the validation rows, on the workers' threads.
    fn score(&self, model: &MultiTaskModel) -> Result<Scored> {
        let t = self.cfg;
        self.data.score_with(
            model,
            Some(Split::Valid),
            t.eval_batch_size,
            t.workers,
            false,
        )
    }

    /// The model's metrics on `split`.
    fn metrics(&self, model: &MultiTaskModel, split: Split) -> Result<SplitMetrics> {
        let t = self.cfg;
        self.data
            .evaluate(model, split, self.tasks, t.eval_batch_size, t.workers)
    }

    /// Validates `model`, updates the training time, and [`record`]s the result (metrics.csv,
    /// best checkpoint, patience) under `epoch`.
    fn run(
        &self,
        folder: &mut RunFolder,
        trainer: &Trainer,
        state: &mut TrainState,
        epoch: usize,
        parts: &EpochParts,
    ) -> Result<SplitMetrics> {
        let t = self.cfg;
        let model = trainer.model();
        check_parameters(model, state.step)?;
        let m = self.metrics(model, Split::Valid)?;
        state.train_seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        record(
            folder,
            self.header,
            self.task_names,
            state,
            epoch,
            parts,
            &m,
            trainer,
            t.patience,
        )?;
        // The metrics.csv row as scalars: `train_loss` as `train/loss`, `valid_income_auc` as
        // `valid/income_auc`, and so on.
        let row = metrics_values(self.header, self.task_names, parts, &m);
        let named: Vec<(String, f32)> = self.header[3..]
            .iter()
            .zip(row)
            .filter_map(|(name, v)| Some((name.replacen('_', "/", 1), v? as f32)))
            .collect();
        let scalars: Vec<(&str, f32)> = named.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        self.events
            .borrow_mut()
            .scalars(state.step as i64, &scalars)?;
        Ok(m)
    }
}

/// The values of a metrics.csv row after its epoch, step and seconds, in the header's order
/// (`None`: a metric a task lacks, such as a GAUC without users).
fn metrics_values(
    header: &[String],
    tasks: &[String],
    parts: &EpochParts,
    m: &SplitMetrics,
) -> Vec<Option<f64>> {
    let mut v: Vec<Option<f64>> = [parts.total, parts.bce, parts.kd, parts.rank, parts.cal]
        .iter()
        .map(|&x| Some(parts.mean(x)))
        .collect();
    v.push(Some(m.mean_auc));
    let teachers = header.iter().any(|h| h.ends_with("_teacher_auc"));
    for (k, t) in tasks.iter().enumerate() {
        let tm = &m.tasks[t];
        v.push(Some(parts.mean(parts.kd_gap[k])));
        v.extend([tm.auc, tm.gauc, tm.multi_auc, tm.logloss, tm.ece]);
        if teachers {
            v.extend([
                tm.teacher_auc,
                tm.teacher_multi_auc,
                tm.calibrated_teacher_logloss,
                tm.calibrated_teacher_ece,
            ]);
        }
    }
    v
}

/// Appends a validation to metrics.csv, keeps the best checkpoint, and counts patience.
#[allow(clippy::too_many_arguments)]
fn record(
    folder: &mut RunFolder,
    header: &[String],
    tasks: &[String],
    state: &mut TrainState,
    epoch: usize,
    parts: &EpochParts,
    m: &SplitMetrics,
    trainer: &Trainer,
    patience: usize,
) -> Result<()> {
    let mut row = vec![
        epoch.to_string(),
        state.step.to_string(),
        format!("{:.3}", state.train_seconds),
    ];
    row.extend(
        metrics_values(header, tasks, parts, m)
            .into_iter()
            .map(|v| v.map_or(String::new(), |v| format!("{v:.6}"))),
    );
    folder.append_metrics(header, &row)?;
    if state.best_mean_auc.is_none_or(|b| m.mean_auc > b) {
        state.best_mean_auc = Some(m.mean_auc);
        state.best_epoch = Some(epoch);
        state.best_step = Some(state.step);
        state.since_best = 0;
        folder.save_best(&trainer.checkpoint_view()?)?;
    } else {
        state.since_best += 1;
        if patience > 0 && state.since_best >= patience {
            state.stopped_early = true;
            tracing::info!(epoch, best_epoch = state.best_epoch, "early stopping");
        }
    }
    Ok(())
}
