"""The NAS-Bench-Graph tabular evaluator: lookups, canonical forms, searches in seconds."""
from __future__ import annotations


import pandas as pd
import pytest
from nas_bench_graph import light_read

from graphnas.evaluators.result import TrialResult
from graphnas.evaluators.nas_bench_graph import NasBenchGraph, TabularError
from graphnas.nas import Search, SearchConfig
from graphnas.search_spaces import Architecture, LayerArch, SearchSpace
from graphnas.search_spaces.canonical import CANONICAL


def cell(links, ops) -> Architecture:
    return Architecture(space="nas_bench_graph", hidden_dim=256, num_layers=4, dropout=0.5, lr=0.01,
                        weight_decay=5e-4, residual=True, links=tuple(links),
                        layers=tuple(LayerArch(mpnn=o, attention="none", heads=2, norm="none") for o in ops))


@pytest.fixture(scope="module")
def cora():
    return NasBenchGraph("cora")


def test_known_architectures_get_the_benchmarks_values(cora):
    # Key 0 of the table: link pattern 0 ([0,0,0,0]) and op 0 (gat) everywhere.
    r = cora.evaluate(cell([0, 0, 0, 0], ["gat"] * 4))
    assert r.val_metric == pytest.approx(0.7733333, abs=1e-6) and r.test_metric == pytest.approx(0.797)
    assert r.latency_ms == pytest.approx(5.922238, abs=1e-5) and r.params == 1736711
    # A chain (link pattern 8) is its own canonical form: hash = 8 op0 op1 op2 op3 in base 10,
    # with the benchmark's op indices graph=6, fc=7, gcn=1, gin=2: our names map onto them.
    raw = light_read("cora")[86712]
    r = cora.evaluate(cell([0, 1, 2, 3], ["graphconv", "mlp", "gcn", "gin"]))
    assert (r.val_metric, r.test_metric) == (pytest.approx(raw["valid_perf"]), pytest.approx(raw["perf"]))
    assert r.metric == "accuracy" and r.flops == 0 and r.device == "table"


def test_isomorphic_labellings_get_one_answer(cora):
    a = cora.evaluate(cell([0, 0, 0, 0], ["gcn", "gat", "gin", "sage"]))
    b = cora.evaluate(cell([0, 0, 0, 0], ["sage", "gin", "gat", "gcn"]))
    assert a.arch_id != b.arch_id and (a.val_metric, a.test_metric) == (b.val_metric, b.test_metric)


@pytest.mark.slow
def test_the_preset_enumerates_the_benchmarks_distinct_architectures():
    space = SearchSpace.preset("nas_bench_graph")
    key = CANONICAL.get("nas_bench_graph").key
    keys = {key(a) for a in space.enumerate()} - {None}
    assert len(keys) == 26206 and keys == set(light_read("cora"))
    proteins = SearchSpace.preset("nas_bench_graph_proteins")
    assert {key(a) for a in proteins.enumerate()} - {None} == set(light_read("proteins"))


def test_bad_requests_say_what_is_wrong(cora, tmp_path):
    with pytest.raises(TabularError, match="no dataset 'zinc'; it has: cora, citeseer, pubmed"):
        NasBenchGraph("zinc")
    with pytest.raises(TabularError, match="all-skip cell is excluded"):
        cora.evaluate(cell([0, 1, 2, 3], ["skip"] * 4))
    with pytest.raises(TabularError, match="proteins has 5 ops only"):
        NasBenchGraph("proteins").evaluate(cell([0, 1, 2, 3], ["gat"] * 4))
    base = dict(run_dir=str(tmp_path / "x"), evaluator="nas-bench-graph", dataset="cora")
    with pytest.raises(ValueError, match="no FLOPs; use --objectives metric,latency"):
        Search(SearchConfig(space="nas_bench_graph", **base))
    with pytest.raises(ValueError, match="answers the cells of space 'nas_bench_graph' only"):
        Search(SearchConfig(space="tiny", objectives="metric,latency", **base))


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_a_30_query_search_trains_nothing(tmp_path):
    # No clock here (issue 45: a busy machine took 116 s): a timing belongs in benchmarks/;
    # what proves that nothing trained is the per-trial record below.
    config = SearchConfig(space="nas_bench_graph", evaluator="nas-bench-graph", dataset="citeseer",
                          objectives="metric,latency", trials=30, run_dir=str(tmp_path / "nbg"))
    search = Search(config)
    study = search.run()
    results = [TrialResult.from_attrs(t.user_attrs) for t in study.trials]
    assert all(r.device == "table" and r.train_time_s == 0 for r in results)
    frame = pd.read_csv(tmp_path / "nbg" / "trials.csv")
    assert len(frame) == 30 and study.metric_names == ["val_accuracy", "latency"]
    table = NasBenchGraph("citeseer")
    done = frame[frame["state"] == "COMPLETE"]
    for _, row in done.head(5).iterrows():
        assert row["val_metric"] == pytest.approx(table.evaluate(Architecture.from_json(row["arch_json"])).val_metric)
    assert (tmp_path / "nbg" / "pareto.json").is_file() and (done["latency_ms"] > 0).all()
