"""What a differentiable search costs, on Cora (issue 4).

1. One supernet epoch (DARTS: every candidate; GDAS: one sampled path) against the
   single-path models it contains, each timed for one training epoch: time and peak memory.
   Space: 2 layers, 8 MPNN candidates and 3 attention forms (plus none) per layer. The
   single paths are the 8 MPNN candidates (no attention) and the 3 attention forms (with
   GCN): every candidate op of a layer once. Targets: DARTS epoch <= 1.3 x the sum of the
   single-path epochs; GDAS epoch <= 1.5 x their mean.
   Peak memory: CUDA max allocated on a GPU; on the CPU the growth of the process's peak
   RSS during the timed epochs, each measurement in a fresh process.
2. ``--strategy darts`` on the ``tiny`` space (the search a user runs), then random search
   given the same wall-clock time: the best-validation architecture's test accuracy of each
   (test is reported, never used to select).

    python benchmarks/darts_cost.py --data-root ../shared/datasets [--skip-search]
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import tempfile
import time

MPNNS = ["gcn", "gat", "gatv2", "sage", "gin", "graphconv", "cheb", "arma"]
ATTENTIONS = ["full", "linear", "performer"]
SPACE = {"name": "darts_cost", "global": {"hidden_dim": 64, "num_layers": 2, "dropout": 0.5, "lr": 0.01,
                                          "weight_decay": 5e-4, "residual": False},
         "layers": {"mpnn": MPNNS, "attention": ["none", *ATTENTIONS], "heads": 2, "norm": "none"}}


def _measure(kind: str, what: dict, data_root: str, repeats: int) -> tuple[float, float]:
    """Median seconds of one epoch and peak memory growth (MiB) for a supernet ('darts',
    'gdas') or a single path ('path', with mpnn/attention): runs in its own process."""
    import torch
    import torch.nn.functional as F

    from graphnas.evaluators import load_dataset
    from graphnas.evaluators.training import resolve_device
    from graphnas.nas.architect import AlphaSearch, bilevel_batches
    from graphnas.nas.darts import DartsConfig
    from graphnas.nas.supernet import Supernet
    from graphnas.search_spaces import SearchSpace, build_model
    from graphnas.search_spaces.builder import model_inputs

    torch.manual_seed(0)
    device = resolve_device("auto")
    bundle = load_dataset("cora", data_root)
    space = SearchSpace.from_dict(SPACE)
    if kind == "path":
        arch = space.build(lambda name, choice: what.get(name.rsplit(".", 1)[-1], choice.values()[0]))
        model = build_model(arch, bundle.info).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=arch.lr, weight_decay=arch.weight_decay)
        data = bundle.data.to(device)
        inputs, train = model_inputs(data, arch), bundle.splits.train.to(device)

        def epoch() -> None:
            opt.zero_grad()
            F.cross_entropy(model(**inputs)[train], data.y[train]).backward()
            opt.step()
    else:
        net = Supernet(space, bundle.info, mode=kind).to(device)
        net.measure_flops(model_inputs(bundle.data.to(device), net.base))
        search = AlphaSearch(net, DartsConfig(epochs=1))
        steps = bilevel_batches(bundle, net.base, device, 0.4, seed=0)

        def epoch() -> None:
            search.run(steps)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base_cuda = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        epoch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base_cuda) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024  # KiB on Linux
    return statistics.median(times[1:]), peak


def _in_process(args: tuple) -> tuple[float, float]:
    return _measure(*args)


def measure(kind: str, what: dict, data_root: str, repeats: int) -> tuple[float, float]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_in_process, ((kind, what, data_root, repeats),))


def epoch_costs(data_root: str, repeats: int) -> None:
    paths = [{"mpnn": m, "attention": "none"} for m in MPNNS] + [{"mpnn": "gcn", "attention": a} for a in ATTENTIONS]
    single = {f"{p['mpnn']}+{p['attention']}": measure("path", p, data_root, repeats) for p in paths}
    darts = measure("darts", {}, data_root, repeats)
    # GDAS samples a new path every epoch (with or without full attention, the slowest
    # candidate): four times the epochs, so that the median is over the paths it draws.
    gdas = measure("gdas", {}, data_root, 4 * repeats)
    total_t = sum(t for t, _ in single.values())
    total_m = sum(m for _, m in single.values())
    mean_t, mean_m = total_t / len(single), total_m / len(single)
    print(f"Cora, 2 layers, {len(MPNNS)} MPNN candidates + {len(ATTENTIONS)} attention forms (+ none) per layer; "
          f"median of {repeats} epochs")
    print(f"{'single path':<22}{'ms/epoch':>10}{'peak MiB':>10}")
    for name, (t, m) in single.items():
        print(f"{name:<22}{t * 1e3:>10.1f}{m:>10.1f}")
    print(f"{'sum of single paths':<22}{total_t * 1e3:>10.1f}{total_m:>10.1f}")
    print(f"{'mean single path':<22}{mean_t * 1e3:>10.1f}{mean_m:>10.1f}")
    print(f"{'darts supernet':<22}{darts[0] * 1e3:>10.1f}{darts[1]:>10.1f}   time {darts[0] / total_t:.2f}x sum "
          f"(target <= 1.3), memory {darts[1] / total_m:.2f}x sum")
    print(f"{'gdas supernet':<22}{gdas[0] * 1e3:>10.1f}{gdas[1]:>10.1f}   time {gdas[0] / mean_t:.2f}x mean "
          f"(target <= 1.5), memory {gdas[1] / mean_m:.2f}x mean")


def search_versus_random(data_root: str, seed: int) -> None:
    from graphnas.nas import Search, SearchConfig

    results = {}
    budget = None
    for strategy in ("darts", "random"):
        config = SearchConfig(dataset="cora", data_root=data_root, strategy=strategy, seed=seed,
                              run_dir=tempfile.mkdtemp(prefix=f"graphnas-{strategy}-"),
                              trials=1000 if strategy == "random" else 20, timeout=budget)
        search = Search(config)
        start = time.perf_counter()
        study = search.run()
        elapsed = time.perf_counter() - start
        budget = budget or elapsed
        best = search.store.outputs(study).best
        results[strategy] = (elapsed, len(study.trials), best)
    print(f"\ntiny space on Cora, seed {seed}: darts, then random search given the same wall-clock time")
    for strategy, (elapsed, n, best) in results.items():
        print(f"{strategy:<8} {elapsed:6.0f} s  {n:3d} trials  best-val trial {int(best['trial'])}: "
              f"val {best['val_metric']:.3f}  test {best['test_metric']:.3f}  {int(best['flops']):,} FLOPs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default="../shared/datasets")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    epoch_costs(args.data_root, args.repeats)
    if not args.skip_search:
        search_versus_random(args.data_root, args.seed)


if __name__ == "__main__":
    main()
