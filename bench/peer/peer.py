"""The PyTorch peer of `cargo xtask bench --peer`.

The same models as crossdistil's benchmark (Shared-Bottom, MMoE, PLE with towers; with
`--crossdistil` also the teacher heads, the calibrators and the CrossDistil objective), built
from the parameter names of crossdistil's exported weights, on every thread of the machine. It
reads the same prepared Parquet file. Three variants (`--variant`):

- `plain`: the models as PyTorch CTR code commonly writes them: one `nn.Embedding(sparse=True)`
  table per field with `SparseAdam`, `Adam` for everything else, one matrix product per expert;
- `tuned`: what an engineer tuning for speed writes: one `nn.Embedding(sparse=True)` for all
  fields, addressed by per-field offsets (one `SparseAdam`), `Adam(fused=True)` for the dense
  parameters (`foreach=True` where this torch has no fused Adam for the CPU), the experts, the
  towers and the teacher heads of each layer stacked into `[E, in, out]` parameters and run as
  one batched matrix product, every task's gate logits from one linear layer and the experts
  mixed for all tasks at once;
- `compiled`: `tuned` with its dense part (everything after the embedding lookup) compiled by
  `torch.compile` (the inductor backend, on the CPU).

    python peer.py bench  --data DIR --model mmoe --init W.safetensors --variant tuned ...
    python peer.py parity --data DIR --model mmoe --dir DIR --variant tuned ...

Each prints one line of JSON.

`parity` loads the initial weights and the first batch that crossdistil exported to DIR, and
prints the loss of that batch before and after one training step.
"""

import argparse
import json
import os
import resource
import statistics
import time

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

N_FIELDS = 10
N_DENSE = 8
N_TASKS = 2

# The optimiser and the objective of crossdistil's benchmark configuration (`bench_config` in
# crates/crossdistil-bench/src/model.rs: `[train] lr = 0.001` and Adam's defaults; `[distill]
# mode = "crossdistil"` with every other key at its default). A test there pins these values.
LR = 1e-3
BETAS = (0.9, 0.999)
EPS = 1e-8
# The distillation weight: 0 for the first KD_WARMUP_STEPS steps, then a linear ramp to ALPHA
# over KD_RAMP_STEPS steps (0: at once).
ALPHA = 0.5
KD_WARMUP_STEPS = 0
KD_RAMP_STEPS = 0
# The weights of the ranking loss (BPR over adjacent present levels, every pair) and of the
# calibration loss.
BETA = 0.1
GAMMA = 1.0
# Adam's learning rate of the calibrators' `rho` and `Q`.
CALIBRATOR_LR = 0.05

VARIANTS = ["plain", "tuned", "compiled"]


def args():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["bench", "parity"])
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True, choices=["shared-bottom", "mmoe", "ple"])
    p.add_argument("--variant", choices=VARIANTS, default="plain")
    p.add_argument("--crossdistil", action="store_true")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--table-rows", type=int, required=True)
    p.add_argument("--first-table-rows", type=int)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--window-steps", type=int, default=20)
    p.add_argument("--windows", type=int, default=7)
    p.add_argument("--eval-rows", type=int, default=40000)
    p.add_argument("--eval-batch", type=int, default=1024)
    p.add_argument("--init")
    p.add_argument("--dir")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    return p.parse_args()


def dense_groups(named):
    """Adam's parameter groups of the dense parameters `named` (name, parameter): the
    calibrators' (`calibrator*`) at CALIBRATOR_LR, the others at LR."""
    named = list(named)
    rest = [p for n, p in named if not n.startswith("calibrator")]
    cal = [p for n, p in named if n.startswith("calibrator")]
    return [{"params": rest}] + ([{"params": cal, "lr": CALIBRATOR_LR}] if cal else [])


class Model(torch.nn.Module):
    """The plain variant. Parameters by crossdistil's names; the forward pass follows
    crossdistil-model."""

    def __init__(self, kind, weights):
        super().__init__()
        self.kind = kind
        self.tables = torch.nn.ModuleList()
        for f in range(N_FIELDS):
            w = weights[f"input.sparse.f{f}.weight"]
            e = torch.nn.Embedding(w.shape[0], w.shape[1], sparse=True)
            with torch.no_grad():
                e.weight.copy_(w)
            self.tables.append(e)
        self.names = sorted(k for k in weights if not k.startswith("input."))
        self.dense = torch.nn.ParameterList(
            [torch.nn.Parameter(weights[k].clone()) for k in self.names]
        )
        self.p = {k: v for k, v in zip(self.names, self.dense)}
        self.has_teachers = "teacher0.out.weight" in self.p

    def table_params(self):
        return list(self.tables.parameters())

    def dense_groups(self):
        return dense_groups(zip(self.names, self.dense))

    def calibrators(self):
        """Every task's calibrator parameters `(rho, Q)`, `[T]` each."""
        rho = torch.cat([self.p[f"calibrator{t}.rho"] for t in range(N_TASKS)])
        q = torch.cat([self.p[f"calibrator{t}.q"] for t in range(N_TASKS)])
        return rho, q

    @torch.no_grad()
    def reset_teacher_biases(self, weights):
        """Sets the teacher heads' output biases back to `weights` (see `parity`)."""
        for t in range(N_TASKS):
            self.p[f"teacher{t}.out.bias"].copy_(weights[f"teacher{t}.out.bias"])

    def linear(self, x, name):
        return F.linear(x, self.p[f"{name}.weight"], self.p[f"{name}.bias"])

    def mlp(self, x, name):
        i = 0
        while f"{name}.layer{i}.weight" in self.p:
            x = F.relu(self.linear(x, f"{name}.layer{i}"))
            i += 1
        return x

    def gate(self, x, name, experts):
        g = torch.softmax(self.linear(x, name), dim=-1)
        return (g.unsqueeze(2) * experts).sum(1)

    def forward(self, ids, dense):
        """The student logits `[b, T]` and the teacher scores `[b, T]` (None without teachers)."""
        emb = [t(ids[:, f]) for f, t in enumerate(self.tables)]
        x = torch.cat(emb + [dense], dim=1)
        if self.kind == "shared-bottom":
            h = self.mlp(x, "backbone.shared")
            reprs = [h] * N_TASKS
        elif self.kind == "mmoe":
            k = 0
            outs = []
            while f"backbone.expert{k}.layer0.weight" in self.p:
                outs.append(self.mlp(x, f"backbone.expert{k}"))
                k += 1
            e = torch.stack(outs, 1)
            reprs = [self.gate(x, f"backbone.gate{t}", e) for t in range(N_TASKS)]
        else:
            shared = []
            k = 0
            while f"backbone.level0.shared{k}.layer0.weight" in self.p:
                shared.append(self.mlp(x, f"backbone.level0.shared{k}"))
                k += 1
            reprs = []
            for t in range(N_TASKS):
                own = []
                k = 0
                while f"backbone.level0.task{t}.expert{k}.layer0.weight" in self.p:
                    own.append(self.mlp(x, f"backbone.level0.task{t}.expert{k}"))
                    k += 1
                e = torch.stack(own + shared, 1)
                reprs.append(self.gate(x, f"backbone.level0.gate{t}", e))
        logits = [
            self.linear(self.mlp(r, f"tower{t}"), f"tower{t}.out") for t, r in enumerate(reprs)
        ]
        scores = None
        if self.has_teachers:
            scores = torch.cat([self.linear(r, f"teacher{t}.out") for t, r in enumerate(reprs)], 1)
        return torch.cat(logits, 1), scores


def layer_names(weights, mlp):
    """The layers `<mlp>.layer<i>` of an MLP of crossdistil's, in order."""
    names = []
    while f"{mlp}.layer{len(names)}.weight" in weights:
        names.append(f"{mlp}.layer{len(names)}")
    return names


class Stacked(torch.nn.Module):
    """E networks of the same layer sizes run side by side: layer `i` is `layers[i]`, the E
    linear layers of that depth by crossdistil's name, its weights stacked into one `[E, in, out]`
    parameter and its biases into one `[E, 1, out]`, and runs as one batched matrix product
    (`baddbmm`): `[E, b, in] -> [E, b, out]`, ReLU after every layer but the last (and after the
    last too with `relu_last`)."""

    def __init__(self, weights, layers, relu_last):
        super().__init__()
        self.relu_last = relu_last
        w = [torch.stack([weights[f"{n}.weight"].t() for n in ns]) for ns in layers]
        b = [torch.stack([weights[f"{n}.bias"] for n in ns]).unsqueeze(1) for ns in layers]
        self.w = torch.nn.ParameterList([torch.nn.Parameter(x) for x in w])
        self.b = torch.nn.ParameterList([torch.nn.Parameter(x) for x in b])

    def forward(self, x):
        last = len(self.w) - 1
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            x = torch.baddbmm(b, x, w)
            if i < last or self.relu_last:
                x = F.relu(x)
        return x


def experts_and_gates(kind, weights):
    """The backbone's experts (crossdistil's names, in the order of the stacked pool) and each
    task's gate (its name and its experts in the order of its logits); no gates for
    Shared-Bottom."""
    if kind == "shared-bottom":
        return ["backbone.shared"], []
    if kind == "mmoe":
        experts = []
        while f"backbone.expert{len(experts)}.layer0.weight" in weights:
            experts.append(f"backbone.expert{len(experts)}")
        return experts, [(f"backbone.gate{t}", experts) for t in range(N_TASKS)]

    def count(prefix):
        n = 0
        while f"{prefix}{n}.layer0.weight" in weights:
            n += 1
        return [f"{prefix}{k}" for k in range(n)]

    shared = count("backbone.level0.shared")
    own = [count(f"backbone.level0.task{t}.expert") for t in range(N_TASKS)]
    experts = shared + [e for o in own for e in o]
    return experts, [(f"backbone.level0.gate{t}", own[t] + shared) for t in range(N_TASKS)]


def selection(experts, gates):
    """`[T, K, E]`: 1 where task t's gate weighs expert e of the pool (`experts`) by its logit k,
    0 elsewhere; None where every gate weighs the whole pool in its order (MMoE)."""
    if all(mine == experts for _, mine in gates):
        return None
    select = torch.zeros(len(gates), len(gates[0][1]), len(experts))
    for t, (_, mine) in enumerate(gates):
        for k, e in enumerate(mine):
            select[t, k, experts.index(e)] = 1.0
    return select


class TunedModel(torch.nn.Module):
    """The tuned variant (and, with `compiled`, its dense part compiled): one table for all
    fields, the experts of every layer, the towers and the teacher heads each as one batched
    matrix product, the gates as one linear layer. The same functions of the same parameters
    as the plain variant."""

    def __init__(self, kind, weights, compiled):
        super().__init__()
        tables = [weights[f"input.sparse.f{f}.weight"] for f in range(N_FIELDS)]
        rows = [t.shape[0] for t in tables]
        self.table = torch.nn.Embedding(sum(rows), tables[0].shape[1], sparse=True)
        with torch.no_grad():
            self.table.weight.copy_(torch.cat(tables))
        offsets = torch.tensor(np.cumsum([0] + rows[:-1]), dtype=torch.int64)
        self.register_buffer("offsets", offsets)
        experts, gates = experts_and_gates(kind, weights)
        depth = len(layer_names(weights, experts[0]))
        self.experts = Stacked(
            weights, [[f"{e}.layer{i}" for e in experts] for i in range(depth)], relu_last=True
        )
        self.gates = len(gates) > 0
        if self.gates:
            self.gate_w = torch.nn.Parameter(torch.cat([weights[f"{g}.weight"] for g, _ in gates]))
            self.gate_b = torch.nn.Parameter(torch.cat([weights[f"{g}.bias"] for g, _ in gates]))
            self.register_buffer("select", selection(experts, gates))
        towers = [layer_names(weights, f"tower{t}") + [f"tower{t}.out"] for t in range(N_TASKS)]
        self.towers = Stacked(weights, [list(ns) for ns in zip(*towers)], relu_last=False)
        self.has_teachers = "teacher0.out.weight" in weights
        if self.has_teachers:
            self.teachers = Stacked(weights, [[f"teacher{t}.out" for t in range(N_TASKS)]], False)
            self.calibrator_rho = torch.nn.Parameter(
                torch.cat([weights[f"calibrator{t}.rho"] for t in range(N_TASKS)])
            )
            self.calibrator_q = torch.nn.Parameter(
                torch.cat([weights[f"calibrator{t}.q"] for t in range(N_TASKS)])
            )
        self.run_dense = torch.compile(self.dense_forward) if compiled else self.dense_forward

    def table_params(self):
        return [self.table.weight]

    def dense_groups(self):
        return dense_groups((n, p) for n, p in self.named_parameters() if n != "table.weight")

    def calibrators(self):
        """Every task's calibrator parameters `(rho, Q)`, `[T]` each."""
        return self.calibrator_rho, self.calibrator_q

    @torch.no_grad()
    def reset_teacher_biases(self, weights):
        """Sets the teacher heads' output biases back to `weights` (see `parity`)."""
        biases = [weights[f"teacher{t}.out.bias"] for t in range(N_TASKS)]
        self.teachers.b[0].copy_(torch.stack(biases).unsqueeze(1))

    def dense_forward(self, emb, dense):
        """The student logits and teacher scores from the embeddings `[b, F, d]` and the dense
        features `[b, N_DENSE]`."""
        x = torch.cat([emb.flatten(1), dense], dim=1)
        b = x.shape[0]
        pool = self.experts(x.expand(self.experts.w[0].shape[0], b, x.shape[1]))
        if self.gates:
            logits = F.linear(x, self.gate_w, self.gate_b).view(b, N_TASKS, -1)
            g = torch.softmax(logits, dim=-1)
            if self.select is not None:
                g = (g.unsqueeze(3) * self.select).sum(2)
            # [T, E, b, 1] * [E, b, h] summed over the experts: [T, b, h].
            reprs = (g.permute(1, 2, 0).unsqueeze(3) * pool).sum(1)
        else:
            reprs = pool.expand(N_TASKS, b, pool.shape[2])
        logits = self.towers(reprs).squeeze(2).t()
        scores = self.teachers(reprs).squeeze(2).t() if self.has_teachers else None
        return logits, scores

    def forward(self, ids, dense):
        """The student logits `[b, T]` and the teacher scores `[b, T]` (None without teachers)."""
        return self.run_dense(self.table(ids + self.offsets), dense)


def build(a, weights):
    """The model of variant `a.variant`, which must have teachers exactly with CrossDistil."""
    if a.variant == "plain":
        model = Model(a.model, weights)
    else:
        model = TunedModel(a.model, weights, compiled=a.variant == "compiled")
    if model.has_teachers != a.crossdistil:
        raise SystemExit(
            f"--crossdistil is {a.crossdistil} but the initial weights "
            f"{'have' if model.has_teachers else 'have no'} teacher heads"
        )
    return model


def loss_fn(logits, labels):
    """sum over tasks of the mean binary cross-entropy, as crossdistil's objective."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0).sum()


def alpha_at(step):
    """The distillation weight at training step `step` (from 1), as crossdistil-loss's
    `KdSchedule::weight`."""
    if step <= KD_WARMUP_STEPS:
        return 0.0
    into = step - KD_WARMUP_STEPS
    if KD_RAMP_STEPS == 0 or into >= KD_RAMP_STEPS:
        return ALPHA
    return ALPHA * into / KD_RAMP_STEPS


def graded_levels(labels, k):
    """Task k's graded level of every row (crossdistil-loss levels.rs): a binary number whose
    highest bit is the row's label of task k and whose other bits are the other tasks' labels,
    in task order."""
    level = torch.zeros(labels.shape[0], dtype=torch.int64)
    for t in [k] + [t for t in range(N_TASKS) if t != k]:
        level = level * 2 + (labels[:, t] > 0.5).long()
    return level


def ranking_loss(r, levels):
    """The ranking loss of the teacher scores `r` `[b]` (crossdistil-loss ranking.rs, its
    defaults): over each pair of adjacent levels present in the batch, `h` above `l`, the mean
    over every pair of rows `i` in `h`, `j` in `l` of `softplus(r_j - r_i)`, summed over the
    level pairs; None when fewer than two levels are present."""
    present = torch.unique(levels).tolist()[::-1]
    total = None
    for h, l in zip(present, present[1:]):
        d = r[levels == h].unsqueeze(1) - r[levels == l].unsqueeze(0)
        term = F.softplus(-d).mean()
        total = term if total is None else total + term
    return total


def crossdistil_loss(logits, scores, labels, rho, q, step):
    """The CrossDistil objective of crossdistil-loss objective.rs at step `step` with the
    benchmark's settings: over the tasks `k`, the student's BCE, BETA times the teacher's
    ranking loss, GAMMA times the calibration loss (the BCE of `softplus(rho_k) r_k + Q_k`, the
    score detached) and alpha(step) times the distillation loss (the student's BCE against the
    detached calibrated teacher probability, clamped to the label's side of the student's own
    probability)."""
    total = loss_fn(logits, labels)
    for k in range(N_TASKS):
        rank = ranking_loss(scores[:, k], graded_levels(labels, k))
        if rank is not None:
            total = total + BETA * rank
    teacher = F.softplus(rho) * scores.detach() + q
    total = total + GAMMA * loss_fn(teacher, labels)
    alpha = alpha_at(step)
    if alpha > 0:
        p = torch.sigmoid(logits).detach()
        q_t = torch.sigmoid(teacher.detach())
        target = torch.where(labels > 0.5, torch.maximum(q_t, p), torch.minimum(q_t, p))
        total = total + alpha * loss_fn(logits, target)
    return total


def batch_loss(model, ids, dense, labels, step):
    """The loss of a batch at training step `step`: the BCE, or with teachers the CrossDistil
    objective."""
    logits, scores = model(ids, dense)
    if scores is None:
        return loss_fn(logits, labels)
    rho, q = model.calibrators()
    return crossdistil_loss(logits, scores, labels, rho, q, step)


class LazyAdam:
    """Adam on the rows a sparse gradient touches, with the textbook bias correction
    `m_hat / (sqrt(v_hat) + eps)`, as crossdistil's tables. `torch.optim.SparseAdam` divides by
    `sqrt(v) + eps` before correcting, i.e. uses `eps / sqrt(1 - beta2^t)` in place of `eps`:
    the same optimiser up to that constant, which matters only in the first steps of rows with
    gradients near `eps`. The parity check uses this class so that the two sides can match to
    1e-5; the speed runs use SparseAdam."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = list(params), lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad.coalesce()
            rows, vals = g.indices()[0], g.values()
            m[rows] = b1 * m[rows] + (1 - b1) * vals
            v[rows] = b2 * v[rows] + (1 - b2) * vals * vals
            p[rows] -= self.lr * (m[rows] / c1) / ((v[rows] / c2).sqrt() + self.eps)


def dense_adam(groups, variant):
    """The dense parameters' Adam and the name of its implementation: the CPU's default (a
    loop over the parameters) for the plain variant; otherwise `fused=True`, or `foreach=True`
    where this torch has no fused Adam for the CPU."""
    if variant == "plain":
        return torch.optim.Adam(groups, lr=LR, betas=BETAS, eps=EPS), "for-loop"
    try:
        return torch.optim.Adam(groups, lr=LR, betas=BETAS, eps=EPS, fused=True), "fused"
    except (RuntimeError, ValueError):
        return torch.optim.Adam(groups, lr=LR, betas=BETAS, eps=EPS, foreach=True), "foreach"


def optimisers(model, variant, lazy=False):
    """The dense Adam and the tables' SparseAdam (LazyAdam with `lazy`), and the name of the
    dense Adam's implementation."""
    dense, kind = dense_adam(model.dense_groups(), variant)
    sparse = (LazyAdam if lazy else torch.optim.SparseAdam)(
        model.table_params(), lr=LR, betas=BETAS, eps=EPS
    )
    return (dense, sparse), kind


def step(model, opts, ids, dense, labels, n):
    """Training step `n` (from 1) on one batch; returns its loss."""
    for o in opts:
        o.zero_grad(set_to_none=True)
    loss = batch_loss(model, ids, dense, labels, n)
    loss.backward()
    for o in opts:
        o.step()
    return loss.item()


def setup(a, adam):
    """How this run was set up, for the report."""
    return {"variant": a.variant, "dense_adam": adam, "torch": torch.__version__}


def load_data(path):
    t = pq.read_table(os.path.join(path, "data.parquet"))
    split = np.array(t.column("split").to_pylist())
    ids = np.stack([t.column(f"f{f}").to_numpy() for f in range(N_FIELDS)], 1).astype(np.int64)
    dense = np.stack([t.column(f"d{j}").to_numpy() for j in range(N_DENSE)], 1).astype(np.float32)
    train = split == "train"
    mean, std = dense[train].mean(0), dense[train].std(0)
    dense = (dense - mean) / np.where(std > 0, std, 1.0)
    labels = np.stack(
        [t.column(f"task{k}").to_numpy().astype(np.float32) for k in range(N_TASKS)], 1
    )
    return split, ids, dense.astype(np.float32), labels


def bench(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    split, ids, dense, labels = load_data(a.data)
    model = build(a, load_file(a.init))
    opts, adam = optimisers(model, a.variant)
    train = np.flatnonzero(split == "train")
    rng = np.random.default_rng(7)
    total = a.warmup_steps + a.window_steps * a.windows
    windows, n, rows, start = [], 0, 0, time.perf_counter()
    while n < total:
        order = rng.permutation(train)
        for s in range(0, len(order) - a.batch + 1, a.batch):
            idx = order[s : s + a.batch]
            step(
                model,
                opts,
                torch.from_numpy(ids[idx]),
                torch.from_numpy(dense[idx]),
                torch.from_numpy(labels[idx]),
                n + 1,
            )
            n += 1
            if n == a.warmup_steps:
                start, rows = time.perf_counter(), 0
            elif n > a.warmup_steps:
                rows += len(idx)
                if (n - a.warmup_steps) % a.window_steps == 0:
                    windows.append(rows / (time.perf_counter() - start))
                    start, rows = time.perf_counter(), 0
            if n >= total:
                break
    held = np.flatnonzero(split != "train")[: a.eval_rows]
    evals = []
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            for s in range(0, len(held), a.eval_batch):
                idx = held[s : s + a.eval_batch]
                torch.sigmoid(model(torch.from_numpy(ids[idx]), torch.from_numpy(dense[idx]))[0])
            evals.append(len(held) / (time.perf_counter() - t0))
    train_rate = statistics.median(windows)
    print(
        json.dumps(
            {
                "side": "pytorch",
                "model": a.model,
                "crossdistil": a.crossdistil,
                "workers": 1,
                "first_table_rows": a.first_table_rows or a.table_rows,
                "windows": windows,
                "train_rows_per_s": train_rate,
                "step_ms": 1e3 * a.batch / train_rate,
                "eval_rows_per_s": statistics.median(evals),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "peer": setup(a, adam),
            }
        )
    )


def parity(a):
    """The loss of crossdistil's first batch before and after one training step from its initial
    weights. With teachers, the teacher heads' output biases are set back to their initial values
    before the loss after the step is taken, as crossdistil's side of the check does: only the
    ranking loss reaches them, and it sees differences of scores alone, so their gradient is 0
    in exact arithmetic and float noise (about 1e-9) on either side, which Adam's first step,
    `lr g / (|g| + eps)`, turns into a step of up to `lr` in a random direction."""
    torch.set_num_threads(a.threads)
    weights = load_file(os.path.join(a.dir, "init.safetensors"))
    model = build(a, weights)
    b = load_file(os.path.join(a.dir, "batch.safetensors"))
    ids, dense, labels = b["sparse"].to(torch.int64), b["dense"], b["labels"]
    opts, adam = optimisers(model, a.variant, lazy=True)
    before = step(model, opts, ids, dense, labels, 1)
    if model.has_teachers:
        model.reset_teacher_biases(weights)
    with torch.no_grad():
        after = batch_loss(model, ids, dense, labels, 2).item()
    print(json.dumps({"loss_before": before, "loss_after": after, "peer": setup(a, adam)}))


if __name__ == "__main__":
    a = args()
    bench(a) if a.mode == "bench" else parity(a)
