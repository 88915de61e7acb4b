"""FLOPs, parameters and latency of every MPNN and attention operator on one graph.

Prints, per operator: our FLOPs, what FlopCounterMode alone counts (the share it misses is
message passing and CPU attention), parameters and median forward latency, each as a ratio
to GCN measured in the same run.

    python benchmarks/operator_cost.py [--nodes 2708] [--edges 10556] [--channels 64]
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from graphnas.evaluators.cost import flops_of, latency_ms, params_of
from graphnas.search_spaces.operators import ATTENTION, MPNN, OpContext


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=2708)
    parser.add_argument("--edges", type=int, default=10556)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.nodes, args.channels, generator=gen)
    edge_index = torch.randint(0, args.nodes, (2, args.edges), generator=gen)
    ctx = OpContext(channels=args.channels, heads=args.heads, deg=torch.tensor([0, 10, 20, 10]))
    rows = []
    for kind, registry in (("mpnn", MPNN), ("attention", ATTENTION)):
        for entry in registry:
            torch.manual_seed(0)
            op = entry.factory(ctx).eval()
            inputs = dict(x=x, edge_index=edge_index)
            plain = FlopCounterMode(display=False)
            with torch.no_grad(), plain:
                op(**inputs)
            rows.append((kind, entry.name, flops_of(op, **inputs), plain.get_total_flops(), params_of(op),
                         latency_ms(op, repeats=5, **inputs)))
    base = next(r for r in rows if r[1] == "gcn")
    print(f"graph: {args.nodes} nodes, {args.edges} edges, {args.channels} channels, {args.heads} heads")
    print(f"{'kind':<10}{'op':<11}{'FLOPs':>14}{'x gcn':>8}{'torch-only':>14}{'missed':>8}"
          f"{'params':>9}{'ms':>9}{'x gcn':>7}")
    for kind, name, flops, plain, params, ms in rows:
        missed = 1 - plain / flops if flops else 0.0
        print(f"{kind:<10}{name:<11}{flops:>14,}{flops / base[2]:>8.2f}{plain:>14,}{missed:>8.0%}"
              f"{params:>9,}{ms:>9.2f}{ms / base[5]:>7.2f}")


if __name__ == "__main__":
    main()
