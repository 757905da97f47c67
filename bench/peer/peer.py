"""The PyTorch peer of `cargo xtask bench --peer`.

The same models as crossdistil's benchmark (Shared-Bottom, MMoE, PLE with towers), built from
the parameter names of crossdistil's exported weights, trained the way PyTorch CTR code trains
them: `nn.Embedding(sparse=True)` tables with `SparseAdam`, `Adam` for everything else, every
thread of the machine. It reads the same prepared Parquet file.

    python peer.py bench  --data DIR --model mmoe --init W.safetensors ...   # prints JSON
    python peer.py parity --data DIR --model mmoe --dir DIR ...              # prints JSON

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


def args():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["bench", "parity"])
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True, choices=["shared-bottom", "mmoe", "ple"])
    p.add_argument("--crossdistil", action="store_true")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--table-rows", type=int, required=True)
    p.add_argument("--first-table-rows", type=int)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--window-steps", type=int, default=20)
    p.add_argument("--windows", type=int, default=7)
    p.add_argument("--eval-rows", type=int, default=40000)
    p.add_argument("--init")
    p.add_argument("--dir")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    return p.parse_args()


class Model(torch.nn.Module):
    """Parameters by crossdistil's names; the forward pass follows crossdistil-model."""

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
        return torch.cat(logits, 1)


def loss_fn(logits, labels):
    """sum over tasks of the mean binary cross-entropy, as crossdistil's objective."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0).sum()


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


def optimisers(model, lazy=False):
    dense = torch.optim.Adam(model.dense.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    kind = LazyAdam if lazy else torch.optim.SparseAdam
    sparse = kind(list(model.tables.parameters()), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    return dense, sparse


def step(model, opts, ids, dense, labels):
    for o in opts:
        o.zero_grad(set_to_none=True)
    loss = loss_fn(model(ids, dense), labels)
    loss.backward()
    for o in opts:
        o.step()
    return loss.item()


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
    model = Model(a.model, load_file(a.init))
    opts = optimisers(model)
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
            for s in range(0, len(held), 8192):
                idx = held[s : s + 8192]
                torch.sigmoid(model(torch.from_numpy(ids[idx]), torch.from_numpy(dense[idx])))
            evals.append(len(held) / (time.perf_counter() - t0))
    train_rate = statistics.median(windows)
    print(
        json.dumps(
            {
                "side": "pytorch",
                "model": a.model,
                "crossdistil": False,
                "workers": 1,
                "first_table_rows": a.first_table_rows or a.table_rows,
                "windows": windows,
                "train_rows_per_s": train_rate,
                "step_ms": 1e3 * a.batch / train_rate,
                "eval_rows_per_s": statistics.median(evals),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def parity(a):
    torch.set_num_threads(a.threads)
    model = Model(a.model, load_file(os.path.join(a.dir, "init.safetensors")))
    b = load_file(os.path.join(a.dir, "batch.safetensors"))
    ids, dense, labels = b["sparse"].to(torch.int64), b["dense"], b["labels"]
    opts = optimisers(model, lazy=True)
    before = step(model, opts, ids, dense, labels)
    with torch.no_grad():
        after = loss_fn(model(ids, dense), labels).item()
    print(json.dumps({"loss_before": before, "loss_after": after}))


if __name__ == "__main__":
    a = args()
    bench(a) if a.mode == "bench" else parity(a)
