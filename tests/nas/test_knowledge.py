"""The knowledge store of earlier searches and transfer from it (issue 13): fingerprints,
the store's entries, which sources a search picks, its first proposals, the shipped
NAS-Bench-Graph knowledge that never reads the searched dataset's table, resume."""
from __future__ import annotations

import pickle

import optuna
import pytest
import torch
from torch_geometric.data import Data
from typer.testing import CliRunner

import nas_bench_graph
from graphnas.cli import app
from graphnas.evaluators.datasets import DatasetBundle
from graphnas.evaluators.splits import Splits
from graphnas.evaluators.training import TrainConfig
from graphnas.nas import Search, SearchConfig
from graphnas.nas.knowledge import (KNOWLEDGE_ATTR, NAS_BENCH_GRAPH_FINGERPRINTS, Fingerprint, KnowledgeEntry, KnowledgeStore,
                           KnownTrial, Origin, Transfer, _clustering, benchmark_entries, rank_sources, register_run,
                           transfer_for)
from graphnas.nas.strategies import STRATEGIES, PredictorSearch
from graphnas.search_spaces import SearchSpace
from graphnas.search_spaces.builder import DataInfo

optuna.logging.set_verbosity(optuna.logging.ERROR)
FAST = TrainConfig(epochs=3, patience=3, latency_repeats=1)
runner = CliRunner()


def node_fp(nodes: float, classes: int = 7, homophily: float = 0.8) -> Fingerprint:
    return Fingerprint("node_classification", nodes, nodes * 4, 1000, classes, homophily=homophily, clustering=0.2)


# --- fingerprints ---------------------------------------------------------------------------
def test_clustering_is_one_on_a_triangle_and_zero_on_a_star():
    triangle = Data(edge_index=torch.tensor([[0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2]]), num_nodes=3)
    star = Data(edge_index=torch.tensor([[0, 0, 0, 1, 2, 3], [1, 2, 3, 0, 0, 0]]), num_nodes=4)
    assert _clustering([triangle]) == pytest.approx(1.0)
    assert _clustering([star]) == pytest.approx(0.0)


def test_fingerprint_reads_only_training_labels():
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, 200, (2, 4000), generator=gen)
    y = torch.zeros(200, dtype=torch.long)
    train = torch.arange(100)  # every training node has class 0: homophily 1 among them
    y[100:] = torch.randint(0, 3, (100,), generator=gen)
    data = Data(x=torch.randn(200, 5), edge_index=edge_index, y=y)
    info = DataInfo(task="node_classification", num_features=5, num_outputs=3)
    bundle = DatasetBundle("toy", data, info, Splits(train, torch.arange(100, 150), torch.arange(150, 200)))
    fp = Fingerprint.of_bundle(bundle)
    assert (fp.nodes, fp.edges, fp.features, fp.classes) == (200, 4000, 5, 3)
    assert fp.homophily == pytest.approx(1.0)  # validation and test labels (random) are never read
    few = DatasetBundle("toy", data, info, Splits(torch.arange(3), torch.arange(3, 6), torch.arange(6, 9)))
    assert Fingerprint.of_bundle(few).homophily is None  # too few edges between training nodes to say


def test_sources_rank_by_distance_and_other_tasks_are_left_out():
    target = node_fp(3000)
    graph_task = Fingerprint("graph_classification", 3000, 12000, 1000, 7, graphs=188)
    ranked = rank_sources(target, [("far", node_fp(200000, classes=40, homophily=0.3)), ("near", node_fp(2700)),
                                   ("graphs", graph_task)])
    assert [name for name, _ in ranked] == ["near", "far"]
    assert ranked[0][1] < ranked[1][1]


def test_shipped_fingerprints_of_cora_and_citeseer_match_the_data(shared_datasets, cache_dir):
    from graphnas.evaluators.datasets import load_dataset
    from graphnas.nas.knowledge import _clustering as clustering

    for name in ("cora", "citeseer"):
        data = load_dataset(name, shared_datasets, cache_dir).data
        shipped = NAS_BENCH_GRAPH_FINGERPRINTS[name]
        assert (data.num_nodes, data.edge_index.shape[1]) == (shipped.nodes, shipped.edges)
        assert clustering([data]) == pytest.approx(shipped.clustering, abs=2e-3)
        homophily = float((data.y[data.edge_index[0]] == data.y[data.edge_index[1]]).float().mean())
        assert homophily == pytest.approx(shipped.homophily, abs=2e-3)


# --- the store --------------------------------------------------------------------------------
def entry(name: str, fp: Fingerprint, trials: list[tuple[dict, float]], space: SearchSpace) -> KnowledgeEntry:
    from graphnas.nas.knowledge import space_digest

    known = [KnownTrial(p, space.canonical_id(space.suggest(optuna.trial.FixedTrial(p))), v) for p, v in trials]
    return KnowledgeEntry(name, "toy", space.name, space_digest(space), fp, f"/runs/{name}", "accuracy", known)


def cell(links: str, *ops: str) -> dict:
    return {"links": links, **{f"layer{i}.mpnn": op for i, op in enumerate(ops)}}


def distributions(space: SearchSpace, e: KnowledgeEntry) -> dict:
    from graphnas.nas.strategies import _DrawTrial
    import numpy as np

    out = {}
    for t in e.trials:
        draw = _DrawTrial(t.params, np.random.default_rng(0))
        space.suggest(draw)
        out[t.key] = draw.distributions
    return out


@pytest.fixture(scope="module")
def bench_space() -> SearchSpace:
    return SearchSpace.preset("nas_bench_graph")


@pytest.fixture(scope="module")
def pubmed_transfer(bench_space) -> Transfer:
    """The shipped knowledge a benchmark search on pubmed starts from (read once: 8 tables)."""
    return transfer_for(NAS_BENCH_GRAPH_FINGERPRINTS["pubmed"], Origin(None, bench_space, "pubmed"))


def test_store_adds_lists_gets_and_removes_entries(tmp_path, bench_space):
    store = KnowledgeStore(f"sqlite:///{tmp_path / 'k.db'}")
    e = entry("a", node_fp(3000), [(cell("0-0-0-0", "gcn", "gcn", "gat", "sage"), 0.8),
                                   (cell("0-1-2-3", "gin", "gin", "gin", "gin"), 0.6)], bench_space)
    assert store.add(e, distributions(bench_space, e)) == "a"
    assert store.add(e, distributions(bench_space, e)) == "a-2"  # a name is never overwritten
    back = store.get("a")
    assert back.fingerprint == e.fingerprint and [t.score for t in back.trials] == [0.8, 0.6]
    assert back.trials[0].key == e.trials[0].key and back.scores()[e.trials[0].key] == 1.0
    assert store.names() == ["a", "a-2"] and len(store.entries(bench_space)) == 2
    assert store.entries(SearchSpace.preset("tiny")) == []  # knowledge transfers within one space
    store.remove("a-2")
    with pytest.raises(KeyError, match="has no entry 'a-2'; it has: a"):
        store.get("a-2")


def test_first_proposals_alternate_the_pooled_prior_and_each_source_and_never_repeat(bench_space):
    a = entry("a", node_fp(3000), [(cell("0-0-0-0", "gcn", "gcn", "gcn", "gcn"), 0.9),
                                   (cell("0-0-0-0", "gat", "gat", "gat", "gat"), 0.8)], bench_space)
    b = entry("b", node_fp(4000), [(cell("0-0-0-0", "gat", "gat", "gat", "gat"), 0.7),
                                   (cell("0-0-0-0", "sage", "sage", "sage", "sage"), 0.6)], bench_space)
    transfer = Transfer([{"name": "a"}, {"name": "b"}], Origin(None, bench_space), [a, b])
    first = [t.params["layer0.mpnn"] for t in transfer.initial_proposals(3)]
    # the prior: gat is good in both (0.5 + 1) / 2 > gcn (1 + 0) / 2; then a's best, then b's best unseen
    assert first == ["gat", "gcn", "sage"]
    isomorphic = cell("0-0-0-0", "gat", "gat", "gat", "gat")
    assert transfer.initial_proposals(5, skip=[bench_space.canonical_id(bench_space.suggest(
        optuna.trial.FixedTrial(isomorphic)))])[0].params["layer0.mpnn"] == "gcn"
    assert len(transfer.initial_proposals(10)) == 3  # every known architecture once


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_a_benchmark_search_never_reads_the_table_of_its_own_dataset(monkeypatch, bench_space):
    read = []
    real = nas_bench_graph.light_read
    monkeypatch.setattr(nas_bench_graph, "light_read", lambda name: read.append(name) or real(name))
    transfer = transfer_for(NAS_BENCH_GRAPH_FINGERPRINTS["cora"], Origin(None, bench_space, "cora"))
    assert "cora" not in read and len(read) == 8
    assert [s.dataset for s in transfer.sources] == ["citeseer", "cs", "computers"]
    assert all(e.dataset != "pubmed" for e in benchmark_entries(bench_space, exclude="pubmed"))
    assert len(transfer.sources[0].trials) == 26206  # every cell of the benchmark, isomorphic ones once


def test_a_pickled_transfer_carries_no_trials_and_reads_its_sources_again(tmp_path, bench_space):
    store = KnowledgeStore(f"sqlite:///{tmp_path / 'k.db'}")
    e = entry("a", node_fp(3000), [(cell("0-0-0-0", "gcn", "gcn", "gcn", "gcn"), 0.9)], bench_space)
    store.add(e, distributions(bench_space, e))
    transfer = transfer_for(node_fp(3100), Origin(store.url, bench_space))
    blob = pickle.dumps(transfer)
    assert len(blob) < 20_000
    again = pickle.loads(blob)
    assert again.prior(e.trials[0].key) == 1.0


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
@pytest.mark.parametrize("strategy", STRATEGIES.without_capability("differentiable"))
def test_every_strategy_takes_a_transfer_and_still_proposes_members(strategy, bench_space, pubmed_transfer):
    transfer = pubmed_transfer
    sampler = STRATEGIES.get(strategy)(bench_space, 0, 1, transfer=transfer).sampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for known in transfer.initial_proposals(12):
        study.enqueue_trial(known.params)
    for k in range(20):
        trial = study.ask()
        arch = bench_space.suggest(trial)
        assert bench_space.contains(arch)
        study.tell(trial, (k * 7919 % 13) / 13)


def test_predictor_with_a_transfer_adds_each_source_as_an_input(bench_space, pubmed_transfer):
    transfer = pubmed_transfer
    predictor = PredictorSearch(bench_space, 0, 1, transfer=transfer)
    params = [t.params for t in transfer.initial_proposals(12)]
    for p in params:
        predictor._encoding.add(p, predictor._distributions(p))
    x = predictor._encode(params)
    assert x.shape == (12, len(predictor._encoding.columns) + 3)
    assert x[0, -3:].max() > 0.99  # the first proposal is the top of the prior


# --- searches with knowledge ------------------------------------------------------------------
def search(tmp_path, name: str, knowledge: str, **kw) -> tuple[Search, optuna.Study]:
    config = SearchConfig(space=kw.pop("space", "tiny"), dataset="synthetic", run_dir=str(tmp_path / name), knowledge=knowledge,
                          cache_dir=str(tmp_path / "cache"), trials=kw.pop("trials", 4), train=FAST, **kw)
    s = Search(config)
    return s, s.run()


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_a_search_starts_from_the_best_of_an_earlier_one_and_is_registered(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    _, first = search(tmp_path, "first", url, objectives="metric")
    store = KnowledgeStore(url)
    assert store.names() == ["first"] and len(store.get("first").trials) == 4
    s, second = search(tmp_path, "second", url, seed=1, trials=5, objectives="metric")
    assert second.user_attrs[KNOWLEDGE_ATTR][0]["name"] == "first"
    best = store.get("first").trials[0]
    assert second.trials[0].params == best.params and "knowledge" in second.trials[0].user_attrs
    queued = [t for t in second.trials if "knowledge" in t.user_attrs]
    # a quarter of the budget of 5, rounded up: the strategy proposes the rest (issue 46)
    assert len(queued) == 2 and len({t.user_attrs["knowledge"] for t in queued}) == 2
    assert "started from the knowledge of: first (synthetic" in (tmp_path / "second" / "summary.md").read_text()
    assert sorted(store.names()) == ["first", "second"]
    register_run(store, tmp_path / "second")  # again: replaces its entry
    assert sorted(store.names()) == ["first", "second"]


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_a_resumed_search_keeps_the_sources_it_began_with(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    search(tmp_path, "first", url, objectives="metric")
    s, study = search(tmp_path, "second", url, seed=1, trials=2, objectives="metric")
    KnowledgeStore(url).remove("first")
    resumed = Search(s.config.model_copy(update={"trials": 3}), resume=True)
    resumed.run()
    assert resumed.transfer is not None and resumed.transfer.record[0]["name"] == "first"
    assert resumed.transfer.sources == []  # removed since: the run goes on without it (and says so)


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_knowledge_none_turns_transfer_off(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    search(tmp_path, "first", url)
    _, study = search(tmp_path, "plain", "none")
    assert KNOWLEDGE_ATTR not in study.user_attrs and not any("knowledge" in t.user_attrs for t in study.trials)


def test_knowledge_cli_lists_shows_adds_and_removes(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    search(tmp_path, "first", "none")
    out = runner.invoke(app, ["knowledge", "add", str(tmp_path / "first"), "--knowledge", url])
    assert out.exit_code == 0 and "as 'first'" in " ".join(out.output.split())
    listing = runner.invoke(app, ["knowledge", "list", "--knowledge", url, "--json"])
    assert '"dataset": "synthetic"' in listing.output and '"trials": 4' in listing.output
    shown = runner.invoke(app, ["knowledge", "show", "synthetic", "--knowledge", url, "--top", "1"])
    assert shown.exit_code == 0 and "first" in shown.output
    missing = runner.invoke(app, ["knowledge", "remove", "nope", "--knowledge", url])
    assert missing.exit_code == 2 and "has no entry 'nope'; it has: first" in " ".join(missing.output.split())
    assert runner.invoke(app, ["knowledge", "remove", "first", "--knowledge", url]).exit_code == 0


def test_an_unopenable_store_is_one_line_before_any_work(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    out = runner.invoke(app, ["search", "--space", "tiny", "--trials", "1", "--run-dir", str(tmp_path / "r"),
                              "--knowledge", f"sqlite:///{blocked / 'k.db'}", "--quiet"])
    line = " ".join(out.output.split())
    assert out.exit_code == 2 and "--knowledge sqlite:///" in line and "cannot open the knowledge" in line
    assert not (tmp_path / "r" / "study.db").exists()


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_knowledge_never_queues_a_reference_the_search_runs_itself(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    search(tmp_path, "first", url, space="node", references=["zoo:gcn"], trials=2, objectives="metric")
    _, second = search(tmp_path, "second", url, space="node", references=["zoo:gcn"], trials=3, seed=1,
                       objectives="metric")
    ids = [t.user_attrs["arch_id"] for t in second.trials]
    assert len(set(ids)) == len(ids)  # zoo:gcn, then the first run's other trial: not zoo:gcn again
    assert [("reference" in t.user_attrs, "knowledge" in t.user_attrs) for t in second.trials[:2]] == [
        (True, False), (False, True)]
