"""A trial's epoch time at real sizes: graphnas against the same model in plain PyG (issue 45).

Graphs are made in-process with PyG's ``FakeDataset`` (random edges, mean degree ``--degree``,
``--features`` features, 5 classes; self-loops and repeated edges removed), at 10k, 100k and 1M
nodes. Masks: 10% train, 5% validation, 5% test (a large graph's labels are a small share,
as ogbn-products' 8%). Nothing is downloaded.

For each operator and size, two runs, each in a fresh subprocess so that its peak resident
memory (``ru_maxrss``) is its own:

* ``graphnas``: ``evaluators.training.train_model`` on the architecture below, through the
  evaluator a search uses (full batch up to ``--sample-above`` nodes, NeighborLoader
  mini-batches above);
* ``plain``: the same model written here in plain PyG, on PyG's fastest CPU path for the
  operator: a torch.sparse CSR ``adj_t`` for GCN, SAGE and APPNP, ``edge_index`` for GAT (PyG's
  GATConv has no sparse-matrix kernel) and for the GPS layer with Performer attention. Its
  loop does per epoch what the evaluator's does: a training step, then an eval-mode forward
  scoring validation (and test, at a new best validation). Above ``--sample-above``: PyG's
  ``NeighborLoader`` over the training nodes and then the validation nodes (and the test
  nodes at a new best), the same fan-outs and batch size. ``deep`` (12 layers) is not run
  sampled: graphnas samples one hop per layer, and 12 hops of 10 neighbours cover the graph
  from every batch.

The epoch time is the median over ``--epochs`` epochs (``--epochs-small`` below 100k nodes) after a first, untimed one (graphnas's
through its per-epoch report hook). Printed: both epoch times, their ratio, both peaks, and for
each operator the growth exponent of graphnas's epoch time in the number of edges (the
slope of log time against log edges over the sizes run). Times hold on an idle machine only;
the ratio is measured alternately in one run.

    python benchmarks/scale.py [--sizes 10k,100k,1M] [--operators gcn,sage,...] [--epochs 3]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
HIDDEN = 128

_NONE = {"norm": "none"}
_GCN2 = {"layers": [{"mpnn": "gcn", **_NONE}, {"mpnn": "gcn", "activation": "identity", **_NONE}]}
# graphnas's architectures: two layers unless said, the first reading the raw features and the
# last the classifier (zoo:gcn's shape), no dropout on the input, width 128
ARCHS = {
    "gcn": _GCN2,
    "sage": {"layers": [{"mpnn": "sage", **_NONE}, {"mpnn": "sage", "activation": "identity", **_NONE}]},
    "gat": {"layers": [{"mpnn": "gat", "heads": 8, "head_merge": "concat", "activation": "elu", **_NONE},
                       {"mpnn": "gat", "heads": 1, "activation": "identity", **_NONE}]},
    "appnp": {"layers": [{"mpnn": "mlp", **_NONE}, {"mpnn": "appnp", "activation": "identity", **_NONE}]},
    "performer": {"input_projection": True, "head": "linear",
                  "layers": [{"mpnn": "gcn", "attention": "performer", "heads": 4, "norm": "batch", "ffn": True}] * 2},
    "deep": {"head": "linear", "layer_form": "conv_norm_act", "residual": "linear",
             "layers": [{"mpnn": "gcn", "norm": "batch"}] * 12},
}


def architecture(name: str):
    from graphnas.search_spaces import Architecture

    spec = {"space": "scale", "hidden_dim": HIDDEN, "num_layers": len(ARCHS[name]["layers"]), "dropout": 0.5,
            "input_dropout": 0.0, "lr": 0.01, "weight_decay": 5e-4, "optimizer": "adam", "feature_norm": "none",
            "input_projection": False, "head": "last_layer", "residual": "none", **ARCHS[name]}
    return Architecture.model_validate(spec)


# ---------------------------------------------------------------- the graphs

def make_graph(nodes: int, degree: int, features: int, path: Path) -> None:
    """FakeDataset's graph with exactly ``nodes`` nodes: its own generator, called with the node
    count (the dataset draws a count around the mean asked, and 100k became 115,923: past
    ``--sample-above``, so graphnas sampled where plain PyG ran full batch)."""
    import torch
    from torch_geometric.data import Data
    from torch_geometric.datasets.fake import get_edge_index
    from torch_geometric.utils import coalesce

    torch.manual_seed(0)
    n = nodes
    y = torch.randint(5, (n,))
    # avg_degree counts edges one way: is_undirected doubles them (FakeDataset's arguments)
    edge_index = get_edge_index(n, n, degree / 2, is_undirected=True, remove_loops=True)
    data = Data(x=torch.randn(n, features) + y.unsqueeze(1), y=y, edge_index=coalesce(edge_index, num_nodes=n))
    order = torch.randperm(n)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    for mask, (lo, hi) in zip(masks, [(0, 0.10), (0.10, 0.15), (0.15, 0.20)]):
        mask[order[int(lo * n):int(hi * n)]] = True
    data.train_mask, data.val_mask, data.test_mask = masks
    torch.save(data, path)


# ---------------------------------------------------------------- plain PyG models

def plain_model(name: str, features: int, classes: int, cached: bool = False):
    """The model in plain PyG. ``cached``: full batch, where PyG's own way to train GCN and APPNP
    fast is to normalise the graph once (``cached=True``), as graphnas does per trial."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch_geometric.nn import APPNP, GATConv, GCNConv, GPSConv, SAGEConv

    class TwoLayer(nn.Module):
        def __init__(self, first, second, act=F.relu):
            super().__init__()
            self.first, self.second, self.act = first, second, act

        def forward(self, x, graph):
            x = F.dropout(self.act(self.first(x, graph)), 0.5, self.training)
            return self.second(x, graph)

    class Propagated(nn.Module):  # Linear -> ReLU -> Linear -> APPNP(K=10, alpha=0.1)
        def __init__(self):
            super().__init__()
            self.lin1, self.lin2, self.prop = nn.Linear(features, HIDDEN), nn.Linear(HIDDEN, classes), APPNP(10, 0.1, cached=cached)

        def forward(self, x, graph):
            x = F.dropout(F.relu(self.lin1(x)), 0.5, self.training)
            return self.prop(self.lin2(x), graph)

    class Performer(nn.Module):  # Linear -> 2 x GPSConv(GCNConv, performer, BatchNorm) -> Linear
        def __init__(self):
            super().__init__()
            self.inp, self.out = nn.Linear(features, HIDDEN), nn.Linear(HIDDEN, classes)
            # heads of HIDDEN / 4 as graphnas's (PyG's PerformerAttention defaults to 64 per head)
            self.layers = nn.ModuleList(GPSConv(HIDDEN, GCNConv(HIDDEN, HIDDEN, cached=cached), heads=4, dropout=0.5,
                                                attn_type="performer", attn_kwargs={"head_channels": HIDDEN // 4},
                                                norm="batch_norm") for _ in range(2))

        def forward(self, x, graph):
            h = self.inp(x)
            for layer in self.layers:
                h = layer(h, graph)
            return self.out(h)

    class Deep(nn.Module):  # Luo et al.'s GCN: conv(h) + Linear(h), BatchNorm, ReLU, dropout; a linear head
        def __init__(self, depth=12):
            super().__init__()
            widths = [features] + [HIDDEN] * depth
            self.convs = nn.ModuleList(GCNConv(a, b, cached=cached) for a, b in zip(widths, widths[1:]))
            self.skips = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
            self.norms = nn.ModuleList(nn.BatchNorm1d(HIDDEN) for _ in range(depth))
            self.head = nn.Linear(HIDDEN, classes)

        def forward(self, x, graph):
            for conv, skip, norm in zip(self.convs, self.skips, self.norms):
                x = F.dropout(F.relu(norm(conv(x, graph) + skip(x))), 0.5, self.training)
            return self.head(x)

    torch.manual_seed(0)
    return {
        "gcn": lambda: TwoLayer(GCNConv(features, HIDDEN, cached=cached), GCNConv(HIDDEN, classes, cached=cached)),
        "sage": lambda: TwoLayer(SAGEConv(features, HIDDEN), SAGEConv(HIDDEN, classes)),
        "gat": lambda: TwoLayer(GATConv(features, HIDDEN // 8, heads=8), GATConv(HIDDEN, classes), F.elu),
        "appnp": Propagated, "performer": Performer, "deep": Deep,
    }[name]()


SPARSE_PLAIN = {"gcn", "sage", "appnp", "deep"}  # PyG runs these on a sparse adj_t


def plain_epochs(name: str, graph_path: Path, epochs: int, sampled: bool, fanouts: list[int], batch: int,
                 device: str = "cpu") -> list[float]:
    import torch
    import torch.nn.functional as F
    from torch_geometric.loader import NeighborLoader
    from torch_geometric.utils import to_torch_csr_tensor

    data = torch.load(graph_path, weights_only=False)
    classes = int(data.y.max()) + 1
    model = plain_model(name, data.num_features, classes, cached=not sampled).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    times = []
    if not sampled:
        data = data.to(device)
        graph = (to_torch_csr_tensor(data.edge_index.flip(0), size=(data.num_nodes, data.num_nodes))
                 if name in SPARSE_PLAIN else data.edge_index)
        for _ in range(epochs + 1):
            start = time.perf_counter()
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(data.x, graph)[data.train_mask], data.y[data.train_mask]).backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                (model(data.x, graph)[data.val_mask].argmax(-1) == data.y[data.val_mask]).float().mean().item()
            times.append(time.perf_counter() - start)
        return times[1:]
    # PyG's own sampling step needs pyg-lib or torch-sparse, which have no wheel for torch 2.13 on
    # this project's index: then both sides sample with the step graphnas supplies in plain torch
    # (evaluators/sampling.py), in PyG's NeighborLoader
    from graphnas.evaluators.sampling import neighbor_sampler

    sampler = neighbor_sampler(data, fanouts)
    loaders = {split: NeighborLoader(data, num_neighbors=fanouts, batch_size=batch, input_nodes=getattr(data, f"{split}_mask"),
                                     shuffle=split == "train", neighbor_sampler=sampler) for split in ("train", "val", "test")}

    def accuracy(split: str) -> float:
        with torch.no_grad():
            hits = [(model(b.x, b.edge_index)[:b.batch_size].argmax(-1) == b.y[:b.batch_size]).sum().item()
                    for b in (b.to(device) for b in loaders[split])]
        return sum(hits) / int(getattr(data, f"{split}_mask").sum())

    best = -1.0
    for _ in range(epochs + 1):
        start = time.perf_counter()
        model.train()
        for b in loaders["train"]:
            b = b.to(device)
            opt.zero_grad()
            F.cross_entropy(model(b.x, b.edge_index)[:b.batch_size], b.y[:b.batch_size]).backward()
            opt.step()
        model.eval()
        val = accuracy("val")
        if val > best:  # as the evaluator: test is scored at a new best validation only
            best, _ = val, accuracy("test")
        times.append(time.perf_counter() - start)
    return times[1:]


def graphnas_epochs(name: str, graph_path: Path, epochs: int, sample_above: int, fanouts: list[int], batch: int,
                    cache: Path, device: str = "cpu", amp: bool = True) -> list[float]:
    from graphnas.evaluators.datasets import load_dataset
    from graphnas.evaluators.training import TrainConfig, train_model

    bundle = load_dataset(str(graph_path), cache_dir=cache)
    stamps: list[float] = []

    def report(epoch: int, value: float) -> bool:  # called at each epoch's end
        stamps.append(time.perf_counter())
        return False

    config = TrainConfig(epochs=epochs + 1, patience=epochs + 1, seed=0, device=device, amp=amp, sample_above_nodes=sample_above,
                         fanouts=tuple(fanouts), node_batch_size=batch, latency_repeats=1)
    train_model(architecture(name), bundle, config, report)
    return [b - a for a, b in zip(stamps, stamps[1:])]


# ---------------------------------------------------------------- driver

def child(args: argparse.Namespace) -> None:
    """One measurement, in its own process: prints a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    path = Path(args.graph)
    sampled = args.nodes > args.sample_above
    if args.impl == "plain":
        times = plain_epochs(args.operator, path, args.epochs, sampled, args.fanouts, args.batch, args.device)
    else:
        times = graphnas_epochs(args.operator, path, args.epochs, args.sample_above, args.fanouts, args.batch,
                                Path(args.cache), args.device, not args.fp32)
    gpu = {"peak_gpu_mib": torch.cuda.max_memory_allocated() / 2 ** 20} if args.device.startswith("cuda") else {}
    print(json.dumps({"epoch_s": statistics.median(times), "times": times,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **gpu}))


def measure(impl: str, operator: str, graph: Path, nodes: int, opts: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--impl", impl, "--operator", operator, "--graph", str(graph),
           "--nodes", str(nodes), "--epochs", str(opts.epochs if nodes >= 100_000 else opts.epochs_small), "--threads", str(opts.threads),
           "--sample-above", str(opts.sample_above), "--batch", str(opts.batch), "--cache", str(opts.cache),
           "--device", opts.device, *(["--fp32"] if opts.fp32 else []), "--fanouts", *map(str, opts.fanouts)]
    env = dict(os.environ, OMP_NUM_THREADS=str(opts.threads), PYTHONWARNINGS="ignore")
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of log y on log x."""
    xs, ys = [math.log(x) for x, _ in points], [math.log(y) for _, y in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def write_rows(rows: list[dict], results: str) -> None:
    Path(results).parent.mkdir(parents=True, exist_ok=True)
    Path(results).write_text(json.dumps(rows, indent=1))


def print_table(files: list[str]) -> None:
    merged = {}
    for f in files:
        for row in json.loads(Path(f).read_text()):
            merged[(row["operator"], row["nodes"])] = row
    rows = sorted(merged.values(), key=lambda r: (list(ARCHS).index(r["operator"]), r["nodes"]))
    print("| operator | nodes | edges | mode | graphnas s / epoch | plain PyG s / epoch | ratio | graphnas peak MiB | plain peak MiB |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ours, plain = r["graphnas"], r["plain"]
        if "error" in ours or "error" in plain:
            print(f"| {r['operator']} | {r['nodes']:,} | {r['edges']:,} | {r['mode']} | failed: {ours.get('error') or plain.get('error')} |")
            continue
        print(f"| {r['operator']} | {r['nodes']:,} | {r['edges']:,} | {r['mode']} | {ours['epoch_s']:.3f} | "
              f"{plain['epoch_s']:.3f} | {ours['epoch_s'] / plain['epoch_s']:.2f}x | {ours['peak_rss_mib']:,.0f} | "
              f"{plain['peak_rss_mib']:,.0f} |")
    for op in ARCHS:
        done = [r for r in rows if r["operator"] == op and "epoch_s" in r["graphnas"] and "epoch_s" in r["plain"]]
        if len(done) > 1:
            ours, plain = ([(r["edges"], r[impl]["epoch_s"]) for r in done] for impl in ("graphnas", "plain"))
            print(f"growth exponent of epoch time in edges, {op}: graphnas {slope(ours):.2f}, plain PyG "
                  f"{slope(plain):.2f} (sizes {', '.join(f'{e:,}' for e, _ in ours)} edges)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10k,100k,1M")
    p.add_argument("--operators", default=",".join(ARCHS))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--epochs-small", type=int, default=20,
                   help="epochs timed below 100k nodes, where one takes a fraction of a second and a median of 3 is noise")
    p.add_argument("--degree", type=int, default=10)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu | cuda: both implementations on this device")
    p.add_argument("--fp32", action="store_true", help="graphnas without bf16 autocast (which it uses on CUDA only)")
    p.add_argument("--sample-above", type=int, default=100_000, help="graphnas's --sample-above-nodes")
    p.add_argument("--fanouts", type=int, nargs="+", default=[10, 10])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--cache", default=None)
    p.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "scale.json"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--operator", help=argparse.SUPPRESS)
    p.add_argument("--graph", help=argparse.SUPPRESS)
    p.add_argument("--nodes", type=int, help=argparse.SUPPRESS)
    p.add_argument("--table", nargs="+", metavar="JSON", help="print the markdown table and growth exponents of "
                   "saved results (a later file's row replaces an earlier one's for the same operator and size)")
    opts = p.parse_args()
    if opts.child:
        return child(opts)
    if opts.table:
        return print_table(opts.table)
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="graphnas-scale-"))
    opts.cache = opts.cache or str(work / "cache")
    rows = []
    print(f"load average before {os.getloadavg()}; {opts.threads} torch thread(s); epoch = a training pass and "
          f"a validation pass; median of {opts.epochs} epochs ({opts.epochs_small} below 100k nodes) after a first", flush=True)
    print(f"{'operator':10} {'nodes':>9} {'edges':>10} {'mode':8} {'graphnas s':>10} {'plain s':>9} {'ratio':>6} "
          f"{'graphnas MiB':>12} {'plain MiB':>10}", flush=True)
    for size in opts.sizes.split(","):
        nodes = SIZES.get(size) or int(size)
        graph = work / f"graph-{nodes}.pt"
        make_graph(nodes, opts.degree, opts.features, graph)
        import torch

        meta = torch.load(graph, weights_only=False)
        edges = meta.edge_index.size(1)
        for op in opts.operators.split(","):
            ours, plain = (measure(impl, op, graph, meta.num_nodes, opts) for impl in ("graphnas", "plain"))
            row = {"operator": op, "nodes": meta.num_nodes, "edges": edges,
                   "mode": "sampled" if meta.num_nodes > opts.sample_above else "full", "graphnas": ours, "plain": plain}
            rows.append(row)
            write_rows(rows, opts.results)  # as each is measured: a long run stopped early keeps its rows
            if "error" in ours or "error" in plain:
                print(f"{op:10} {meta.num_nodes:>9} {edges:>10} failed: {ours.get('error') or plain.get('error')}", flush=True)
                continue
            print(f"{op:10} {meta.num_nodes:>9} {edges:>10} {row['mode']:8} {ours['epoch_s']:10.3f} "
                  f"{plain['epoch_s']:9.3f} {ours['epoch_s'] / plain['epoch_s']:5.2f}x {ours['peak_rss_mib']:12.0f} "
                  f"{plain['peak_rss_mib']:10.0f}", flush=True)
    for op in opts.operators.split(","):
        pts = [(r["edges"], r["graphnas"]["epoch_s"]) for r in rows if r["operator"] == op and "epoch_s" in r["graphnas"]]
        if len(pts) > 1:
            print(f"growth exponent of graphnas's epoch time in edges, {op}: {slope(pts):.2f}")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
