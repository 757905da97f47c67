"""Scores the sample of each exported model with onnxruntime and compares with crossdistil.

Usage: check_onnxruntime.py TOLERANCE OUT.onnx [OUT2.onnx ...]

For each model: `onnx.checker` checks it (by path, so that external data is followed), then
onnxruntime scores `OUT.sample.parquet` (a 2-D input `name` is the columns `name_0`,
`name_1`, ...) and every output `<task>` is compared with the column `score_<task>`. Prints one
line per model with the largest absolute difference; exits 1 when one is above TOLERANCE.
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow.parquet as pq


def sample_path(model: str) -> str:
    stem = model[: -len(".onnx")] if model.endswith(".onnx") else model
    return stem + ".sample.parquet"


def check(model: str) -> float:
    onnx.checker.check_model(model, full_check=True)
    table = pq.read_table(sample_path(model))
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feeds = {}
    for i in session.get_inputs():
        cols = sorted(
            (c for c in table.column_names if c.startswith(i.name + "_")
             and c[len(i.name) + 1:].isdigit()),
            key=lambda c: int(c[len(i.name) + 1:]),
        )
        dtype = np.int64 if i.type == "tensor(int64)" else np.float32
        feeds[i.name] = np.stack(
            [table.column(c).to_numpy().astype(dtype) for c in cols], axis=1
        )
    outputs = session.run(None, feeds)
    worst = 0.0
    for o, got in zip(session.get_outputs(), outputs):
        want = table.column("score_" + o.name).to_numpy()
        assert got.shape == want.shape, (o.name, got.shape, want.shape)
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want))))
    return worst


def main() -> int:
    tolerance = float(sys.argv[1])
    failed = False
    for model in sys.argv[2:]:
        diff = check(model)
        print(f"{model}: max |onnxruntime - crossdistil| = {diff:.3e}")
        failed |= not diff <= tolerance
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
