"""The Ray Tune backend on a local 2-CPU Ray: concurrency, failures, the run directory."""
from __future__ import annotations

import pandas as pd
import pytest

from graphnas.evaluators import TrainConfig
from graphnas.nas import Search, SearchConfig

pytestmark = pytest.mark.slow  # subprocesses, clusters or servers: seconds to a minute each

ray = pytest.importorskip("ray", reason="Ray Tune is the optional extra graphnas[ray]")

# kv_source: mpnn is valid only with an attention form that reads the MPNN's output, so
# with `full` attention those trials raise when the model is built: half fail, half train.
SPACE = """
name: raytest
global: {hidden_dim: 16, num_layers: 1, residual: false}
layers: {mpnn: [gcn, mlp], attention: full, kv_source: [features, mpnn], heads: 1, norm: none}
"""


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, cache_dir):
    d = tmp_path_factory.mktemp("ray")
    (d / "space.yaml").write_text(SPACE)
    config = SearchConfig(space=str(d / "space.yaml"), run_dir=str(d / "run"), cache_dir=str(cache_dir), trials=4,
                          workers=2, backend="ray", ray_cpus=2, strategy="random", pruner="asha",
                          train=TrainConfig(epochs=15, patience=15, latency_repeats=1))
    search = Search(config)
    try:
        study = search.run()
    finally:
        ray.shutdown()
    return search, study


def test_ray_runs_the_budget_two_at_a_time_into_the_standard_run_directory(ray_run):
    search, study = ray_run
    assert len(study.trials) == 4
    for name in ("config.yaml", "trials.csv", "pareto.json", "best_arch.json", "summary.md"):
        assert (search.run_dir / name).is_file(), name
    spans = [(t.datetime_start, t.datetime_complete) for t in study.trials]
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert overlap == 2  # ConcurrencyLimiter(max_concurrent=workers)
    frame = pd.read_csv(search.run_dir / "trials.csv")
    done = frame[frame["state"] == "COMPLETE"]
    assert len(done) >= 1 and (done["flops"] > 0).all() and (done["val_metric"] > 0).all()


def test_a_trial_that_raises_is_failed_with_its_message_and_the_rest_complete(ray_run):
    _, study = ray_run
    states = {t.number: t.state.name for t in study.trials}
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed and all("kv_source='mpnn' needs an attention form" in t.user_attrs["error"] for t in failed)
    assert all('"kv_source":"mpnn"' in t.user_attrs["arch_json"] for t in failed)
    assert set(states.values()) - {"FAIL"} <= {"COMPLETE", "PRUNED"} and "COMPLETE" in states.values()


def test_ray_backend_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(ValueError, match=r"--backend ray runs black-box strategies .*use --backend local"):
        Search(SearchConfig(run_dir=str(tmp_path / "x"), backend="ray", strategy="darts"))
    with pytest.raises(ValueError, match=r"--backend ray runs strategies that train .*use --backend local"):
        Search(SearchConfig(run_dir=str(tmp_path / "z"), backend="ray", space="nas_bench_graph",
                            evaluator="nas-bench-graph", dataset="cora", objectives="metric"))
    with pytest.raises(KeyError, match="unknown backend 'dask'; registered: local, ray"):
        Search(SearchConfig(run_dir=str(tmp_path / "y"), backend="dask"))
    assert not any((tmp_path / name).exists() for name in ("x", "y", "z"))  # refused before any work


def test_every_backend_declares_its_capabilities_and_ray_alone_prunes_multi_objective_searches():
    from graphnas.nas.backends import BACKENDS

    for entry in BACKENDS:
        assert {"differentiable", "tabular", "parallel"} <= set(entry.capabilities), entry.name
    assert BACKENDS.with_capability("multi_objective_pruning") == ["ray"]
    assert BACKENDS.with_capability("differentiable") == ["local"]
