"""Tabular evaluators: answer an architecture from a benchmark's table instead of training.

NAS-Bench-Graph (Qin et al., NeurIPS 2022) trained all 26,206 distinct architectures of
its cell space on nine datasets; its package ``nas-bench-graph`` ships, per architecture,
validation and test accuracy, latency and parameter count. Looked up by the benchmark's
own canonical hash, so isomorphic labellings get the same answer. Every strategy can then
be measured exactly, in milliseconds per query, on a CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd

from graphnas.evaluators.result import TrialResult
from graphnas.evaluators.evaluator import EVALUATORS
from graphnas.search_spaces import Architecture, SearchSpace
from graphnas.search_spaces.canonical import nas_bench_graph_hash

if TYPE_CHECKING:
    from graphnas.evaluators.evaluator import EvaluatorSettings

NAS_BENCH_GRAPH_DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv",
                            "proteins")


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
        if self.name not in NAS_BENCH_GRAPH_DATASETS:
            raise TabularError(f"nas-bench-graph has no dataset {self.name!r}; it has: "
                               f"{', '.join(NAS_BENCH_GRAPH_DATASETS)}")
        try:
            from nas_bench_graph import light_read
        except ImportError:
            raise TabularError("the nas-bench-graph evaluator needs its tables: pip install 'graphnas[bench]'") from None
        self.table = light_read(self.name)  # shipped inside the package: nothing downloads
        if self.name == "proteins":  # ogbn-proteins is scored by ROC-AUC in the benchmark
            self.metric = "roc_auc"

    def lookup(self, arch: Architecture) -> dict:
        key = nas_bench_graph_hash(arch)
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
