"""Forward time and peak memory of every attention form as graphs grow (CPU).

Each (form, N) runs in a fresh process so that peak resident memory (ru_maxrss) belongs to
that measurement alone; the figure printed is the peak minus the process's size after
building the inputs. Prints, per form, time and memory at each N and the growth factor
between the two largest sizes (4x the nodes: ~4x for linear forms, ~16x for quadratic ones).

    python benchmarks/attention_scaling.py [--sizes 1000 4000 16000] [--channels 64] [--heads 2]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from graphnas.search_spaces.operators import ATTENTION, OpContext
name, n, c, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
op = ATTENTION.get(name)(OpContext(channels=c, heads=h)).eval()
x = torch.randn(n, c)
edge_index = torch.randint(0, n, (2, 4 * n))
with torch.no_grad():
    op(x[:64], edge_index[:, :0])  # warm-up on a tiny graph
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(3):
        start = time.perf_counter()
        op(x, edge_index)
        times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"ms": 1e3 * sorted(times)[1], "mib": max(peak - base, 0) / 1024}))
"""


def measure(name: str, n: int, channels: int, heads: int, timeout: float) -> dict:
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, name, str(n), str(channels), str(heads)],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ms": float("nan"), "mib": float("nan"), "note": f"> {timeout:.0f} s"}
    if out.returncode != 0:
        return {"ms": float("nan"), "mib": float("nan"), "note": out.stderr.strip().splitlines()[-1][:60]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    from graphnas.search_spaces.operators import ATTENTION

    names = [n for n in ATTENTION.names() if n != "none"]
    print(f"channels {args.channels}, heads {args.heads}, edges 4N; forward time (median of 3) and peak memory")
    header = "".join(f"{f'N={n} ms':>13}{'MiB':>8}" for n in args.sizes)
    print(f"{'form':<13}{header}{'time x':>9}{'mem x':>8}")
    for name in names:
        rows = [measure(name, n, args.channels, args.heads, args.timeout) for n in args.sizes]
        cells = "".join(f"{r['ms']:>13.1f}{r['mib']:>8.0f}" for r in rows)
        growth_t = rows[-1]["ms"] / rows[-2]["ms"] if rows[-2]["ms"] else float("nan")
        growth_m = rows[-1]["mib"] / rows[-2]["mib"] if rows[-2]["mib"] else float("nan")
        notes = " ".join(r.get("note", "") for r in rows).strip()
        print(f"{name:<13}{cells}{growth_t:>9.1f}{growth_m:>8.1f} {notes}", flush=True)


if __name__ == "__main__":
    main()
