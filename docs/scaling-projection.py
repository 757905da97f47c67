"""The arithmetic of docs/scaling.md: bytes and time of a step on N ranks, from the formulas
there and the figures measured by `cargo xtask bench --mpi --rounds 2`. Prints the tables."""
import math

P, T, D, F = 285_744, 2, 16, 8  # dense parameters, tasks, embedding size, sparse fields
T_ROW = 0.0374 / 1024  # s per row on a rank: 43.8 ms steps, 14.7% of them exchanges, 1024 rows
W = 0.006  # s a step waits at 2 ranks beyond bytes and latency (measured)


def distinct(b):
    """Distinct ids of b rows over the fields: 0.61 of them at 1024 rows (measured)."""
    u = 0.61 if b >= 1024 else 1 - (1 - 0.61) * (b / 1024)
    return F * b * u


def sent(n, batch, layout="sharded"):
    b = batch / n
    dense = 2 * (n - 1) / n * 4 * P
    ranking = 8 * T * (n - 1) * b
    if layout == "sharded":
        tables = (n - 1) / n * distinct(b) * (8 + 8 * D)
    else:
        tables = (n - 1) * distinct(b) * (4 + 4 * D)
    return dense + ranking + tables


def latency(n, alpha):
    return (4 * (n - 1) + 7 * math.ceil(math.log2(n))) * alpha


LINKS = {"10 Gb/s": (25e-6, 1.0e9), "100 Gb/s": (3e-6, 10e9)}
print("S(2), KiB:", round(sent(2, 2048) / 1024, 1))
print("| machines | link | global batch | compute ms | latency ms | bytes ms | waiting ms "
      "| MiB sent per step (replicated) | rows/s | vs 1 |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in (8, 64):
    for name, (alpha, beta) in LINKS.items():
        for batch in (2048, 1024 * n):
            s, r = sent(n, batch), sent(n, batch, "replicated")
            compute, lat, wire = T_ROW * batch / n, latency(n, alpha), s / beta
            t = compute + lat + wire + W
            print(f"| {n} | {name} | {batch:,} | {compute * 1e3:.1f} | {lat * 1e3:.2f} "
                  f"| {wire * 1e3:.2f} | {W * 1e3:.0f} | {s / 2**20:.2f} ({r / 2**20:.2f}) "
                  f"| {batch / t:,.0f} | {batch / t * T_ROW:.1f}x |")
budget = 100 * 2**30  # bytes of a machine's memory for the tables
print("| machines | ids a rank other than 0 could hold | ids rank 0 can hold while it validates |")
for n in (1, 8, 64):
    other = budget / (12 * D / n)
    root = other if n == 1 else budget / (4 * D + 12 * D / n)
    print(f"| {n} | {other / 1e9:.2f} x 10^9 | {root / 1e9:.2f} x 10^9 |")
