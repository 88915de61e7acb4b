"""NAS-Bench-Graph (Qin et al., NeurIPS 2022), all of it: the one module to read or replace.

The benchmark trained all 26,206 distinct architectures of its cell space (4 nodes, each an
operator applied to an earlier node's output) on nine datasets; its package ``nas-bench-graph``
ships, per architecture, validation and test accuracy, latency and parameter count. This module
holds everything graphnas knows of it:

* **the canonical form** ``nas_bench_graph`` (registered in ``search_spaces.canonical.CANONICAL``,
  which names this module as the form's provider): the benchmark's own ``Arch(...).valid_hash()``,
  so that isomorphic labellings of a cell count once and are looked up by the key its tables use;
* **the tabular evaluator** ``nas-bench-graph`` (registered in ``EVALUATORS``): an architecture is
  answered from its dataset's table instead of trained, so every strategy can be measured exactly,
  in milliseconds per query, on a CPU;
* **the shipped knowledge** of its datasets (:data:`PUBLISHED_FIGURES` and :func:`tables`), from
  which ``nas.knowledge`` lets a benchmark search on one dataset start from the other eight.

Its space is the ``nas_bench_graph`` preset (``search_spaces/presets``), and its cell is built by
``search_spaces.builder`` (a layer stack with ``links``), as any space's.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Optional

import pandas as pd

from graphnas.evaluators.evaluator import EVALUATORS
from graphnas.evaluators.result import TrialResult
from graphnas.search_spaces import Architecture, SearchSpace
from graphnas.search_spaces.canonical import CANONICAL, CanonicalForm
from graphnas.search_spaces.param_key import layer_key

if TYPE_CHECKING:
    from graphnas.evaluators.evaluator import EvaluatorSettings

DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")

# Our operator names -> NAS-Bench-Graph's (Qin et al. 2022, architecture.py gnn_list).
OPS = {"gat": "gat", "gcn": "gcn", "gin": "gin", "cheb": "cheb", "sage": "sage",
       "arma": "arma", "graphconv": "graph", "mlp": "fc", "skip": "skip"}

# The benchmark's datasets as the benchmark paper (Qin et al. 2022, Table 1) and PyG give them:
# nodes, directed edges, features, classes (nas.knowledge.Fingerprint's fields). Homophily: the
# edge label homophily of the whole graph as published (Cora and CiteSeer recomputed here: 0.810,
# 0.736); clustering: the mean local clustering coefficient as published (Cora 0.241 and CiteSeer
# 0.141 recomputed here). ogbn-proteins has 112 binary tasks and no node features: its classes and
# homophily stay open.
_NODE = "node_classification"
PUBLISHED_FIGURES: dict[str, dict[str, Any]] = {
    "cora": dict(task=_NODE, nodes=2708, edges=10556, features=1433, classes=7, homophily=0.81, clustering=0.241),
    "citeseer": dict(task=_NODE, nodes=3327, edges=9104, features=3703, classes=6, homophily=0.736, clustering=0.141),
    "pubmed": dict(task=_NODE, nodes=19717, edges=88648, features=500, classes=3, homophily=0.80, clustering=0.060),
    "cs": dict(task=_NODE, nodes=18333, edges=163788, features=6805, classes=15, homophily=0.81, clustering=0.343),
    "physics": dict(task=_NODE, nodes=34493, edges=495924, features=8415, classes=5, homophily=0.93, clustering=0.377),
    "photo": dict(task=_NODE, nodes=7650, edges=238162, features=745, classes=8, homophily=0.83, clustering=0.404),
    "computers": dict(task=_NODE, nodes=13752, edges=491722, features=767, classes=10, homophily=0.78,
                      clustering=0.344),
    "arxiv": dict(task=_NODE, nodes=169343, edges=2332486, features=128, classes=40, homophily=0.655,
                  clustering=0.226),
    "proteins": dict(task=_NODE, nodes=132534, edges=79122504, features=8, classes=112, clustering=0.280),
}


def metric_of(dataset: str) -> str:
    return "roc_auc" if dataset == "proteins" else "accuracy"  # ogbn-proteins is scored by ROC-AUC


# --- the canonical form -----------------------------------------------------------------------

def _benchmark_arch(arch: Architecture):
    try:
        from nas_bench_graph import Arch
    except ImportError:
        raise ImportError("the nas_bench_graph canonical form needs the benchmark's package: "
                          "pip install 'graphnas[bench]' (nas-bench-graph)") from None
    if arch.links is None or arch.num_layers != 4:
        raise ValueError(f"NAS-Bench-Graph architectures are 4-node cells with links, got "
                         f"num_layers={arch.num_layers}, links={arch.links}")
    unknown = [layer.mpnn for layer in arch.layers if layer.mpnn not in OPS]
    if unknown:
        raise ValueError(f"operators {unknown} are not in NAS-Bench-Graph ({', '.join(OPS)})")
    return Arch(list(arch.links), [OPS[layer.mpnn] for layer in arch.layers])


def benchmark_hash(arch: Architecture) -> Optional[int]:
    """NAS-Bench-Graph's own ``Arch(...).valid_hash()`` (isomorphic cells merged, skip ops
    moved, equal branches sorted): the benchmark's function, not a re-implementation, since
    its keys are what its tables hold. The all-skip cell is not in the benchmark: ``None``."""
    if all(layer.mpnn == "skip" for layer in arch.layers):
        return None
    return _benchmark_arch(arch).valid_hash()


def _cells_of(space: SearchSpace) -> Optional[Iterator[tuple[tuple[int, ...], tuple[str, ...], int]]]:
    """(links, ops, benchmark hash) of every labelled cell of a NAS-Bench-Graph space, from the
    benchmark's ``valid_hash`` directly (0.5 s for 59,049 labellings, where building each
    architecture takes a minute); ``None`` for a space that is not one."""
    layers, glob = space.spec.layers, space.spec.global_
    if space.tied("mpnn") or glob.num_layers.values() != [4]:
        return None
    links, ops = glob.links.values(), layers.mpnn.values()
    if any(op not in OPS for op in ops):
        return None
    from nas_bench_graph import Arch

    return ((tuple(link), combo, Arch(list(link), [OPS[o] for o in combo]).valid_hash())
            for link in links for combo in itertools.product(ops, repeat=4) if set(combo) != {"skip"})


def count_cells(space: SearchSpace) -> Optional[int]:
    """Distinct cells, times the count of the space's other choices (None: enumerate the space)."""
    cells = _cells_of(space)
    if cells is None:
        return None
    glob, layers = space.spec.global_, space.spec.layers
    keys = {h for _, _, h in cells}
    return len(keys) * (space.labelled_size() // (len(glob.links.values()) * len(layers.mpnn.values()) ** 4))


CANONICAL.register("nas_bench_graph", "NAS-Bench-Graph's valid_hash: isomorphic cells count once")(
    CanonicalForm(benchmark_hash, count_cells))


# --- the tabular evaluator --------------------------------------------------------------------

class TabularError(ValueError):
    """A tabular evaluator cannot answer: unknown dataset, missing package, foreign space."""


@EVALUATORS.register("nas-bench-graph", "Answer from NAS-Bench-Graph's tables (validation/test accuracy, "
                     "latency, params; no training, no FLOPs; --space nas_bench_graph)", trains=False,
                     space="nas_bench_graph", flops=False)
@dataclass
class NasBenchGraph:
    """The NAS-Bench-Graph table of one dataset. Costs: ``latency_ms`` (the benchmark's
    measured inference latency) and ``params``; ``flops`` is not in the benchmark (0)."""

    name: str
    metric: str = "accuracy"
    table: dict = field(default_factory=dict, repr=False)
    info: Optional[object] = None  # no DataInfo: the model is never built

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise TabularError(f"nas-bench-graph has no dataset {self.name!r}; it has: {', '.join(DATASETS)}")
        self.table = read_table(self.name)
        self.metric = metric_of(self.name)

    def lookup(self, arch: Architecture) -> dict:
        key = benchmark_hash(arch)
        if key is None or key not in self.table:
            ops = [layer.mpnn for layer in arch.layers]
            raise TabularError(f"architecture links={arch.links} ops={ops} is not in NAS-Bench-Graph/{self.name} "
                               "(the all-skip cell is excluded; proteins has 5 ops only)")
        return self.table[key]

    @classmethod
    def prepare(cls, settings: "EvaluatorSettings", space: SearchSpace) -> "NasBenchGraph":
        return cls(settings.dataset)

    def evaluate(self, arch: Architecture, report: Optional[Any] = None) -> TrialResult:
        """The table's row of ``arch``; ``report`` (early stopping) has nothing to stop."""
        row = self.lookup(arch)
        return TrialResult(arch_id=arch.arch_id, arch_json=arch.to_json(), metric=self.metric,
                           val_metric=float(row["valid_perf"]), test_metric=float(row["perf"]), flops=0,
                           params=int(round(float(row["para"]) * 1e6)), latency_ms=float(row["latency"]) * 1e3,
                           train_time_s=0.0, epochs=0, best_epoch=-1, device="table")

    def frame(self) -> pd.DataFrame:
        """The whole table: one row per distinct architecture (key, val, test, latency_ms, params)."""
        return pd.DataFrame([{"key": k, "val_metric": float(v["valid_perf"]), "test_metric": float(v["perf"]),
                              "latency_ms": float(v["latency"]) * 1e3, "params": float(v["para"]) * 1e6}
                             for k, v in self.table.items()])


def read_table(dataset: str) -> dict:
    """One dataset's table, shipped inside the benchmark's package: nothing downloads."""
    try:
        from nas_bench_graph import light_read
    except ImportError:
        raise TabularError("the nas-bench-graph evaluator needs its tables: pip install 'graphnas[bench]'") from None
    return light_read(dataset)


# --- the shipped knowledge --------------------------------------------------------------------

@dataclass(frozen=True)
class BenchmarkTable:
    """One dataset's table as knowledge: its published figures, its metric, and the score of
    every cell of a space: (parameters of the cell's first labelling, canonical id, validation)."""

    dataset: str
    figures: dict[str, Any]
    metric: str
    cells: list[tuple[dict[str, Any], str, float]]


def tables(space: SearchSpace, exclude: str) -> list[BenchmarkTable]:
    """Every dataset's table but ``exclude``'s, which is never read."""
    cells = _first_labellings(space)
    out = []
    for dataset, figures in PUBLISHED_FIGURES.items():
        if dataset == exclude:
            continue
        table = read_table(dataset)
        out.append(BenchmarkTable(dataset, figures, metric_of(dataset),
                                  [(params, key, float(table[h]["valid_perf"])) for h, (params, key) in cells.items()
                                   if h in table]))
    return out


_FIRST: dict[str, dict[int, tuple[dict[str, Any], str]]] = {}  # a memo: a run transfers from eight tables of one space


def _first_labellings(space: SearchSpace) -> dict[int, tuple[dict[str, Any], str]]:
    """The benchmark hash of every cell of a NAS-Bench-Graph space -> the parameters of its
    first labelling and its canonical id."""
    memo = space.digest()
    if memo not in _FIRST:
        sample = space.build(lambda name, choice: choice.values()[0])
        suffix = space.canonical_id(sample).rsplit(":", 1)[-1]  # the digest of the choices a cell does not cover
        out: dict[int, tuple[dict[str, Any], str]] = {}
        for link, combo, h in _cells_of(space) or ():
            if h not in out:
                params = {"links": "-".join(map(str, link)), **{layer_key(i, "mpnn"): o for i, o in enumerate(combo)}}
                out[h] = (params, f"{space.spec.canonical}:{h}:{suffix}")
        _FIRST[memo] = out
    return _FIRST[memo]
