"""Errica et al.'s protocol: a search inside every outer fold, test only on the fold."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from graphnas.evaluators import TrainConfig, evaluate, load_dataset
from graphnas.nas import SearchConfig
from graphnas.nas.assessment import ASSESSMENT_FILE, assess
from graphnas.nas.search import Search
from graphnas.search_spaces import Architecture


def config(tmp_path, shared_datasets, cache_dir, **kw) -> SearchConfig:
    return SearchConfig(dataset="mutag", data_root=str(shared_datasets), cache_dir=str(cache_dir),
                        run_dir=str(tmp_path / "errica"), trials=2, strategy="random", references=[],
                        protocol="errica", train=TrainConfig(epochs=2, patience=2, folds=3, latency_repeats=1), **kw)


@pytest.mark.slow
def test_errica_searches_inside_each_fold_and_resumes(tmp_path, shared_datasets, cache_dir):
    cfg = config(tmp_path, shared_datasets, cache_dir)
    result = assess(cfg, final_runs=2)
    assert [f.fold for f in result.folds] == [0, 1, 2]
    assert all(len(f.test_metrics) == 2 and 0 <= f.test_mean <= 1 for f in result.folds)
    mean, _ = result.stat()
    assert mean == pytest.approx(sum(f.test_mean for f in result.folds) / 3)
    saved = json.loads((tmp_path / "errica" / ASSESSMENT_FILE).read_text())
    assert saved["test_mean"] == pytest.approx(mean) and len(saved["folds"]) == 3

    # each fold's search trained and scored that fold only: its trials' test figure is the
    # fold's test part, which its selection never saw
    mutag = load_dataset("mutag", shared_datasets, cache_dir)
    for k in range(3):
        sub = yaml.safe_load((tmp_path / "errica" / f"fold_{k}" / "config.yaml").read_text())
        assert sub["train"]["fold"] == k and sub["protocol"] == "xu"
        trial = pd.read_csv(tmp_path / "errica" / f"fold_{k}" / "trials.csv").iloc[0]
        alone = evaluate(Architecture.from_json(trial["arch_json"]), mutag, cfg.train.model_copy(update={"fold": k}))
        assert alone.test_metric == pytest.approx(trial["test_metric"])

    # an interrupted assessment resumes at its unfinished fold; finished folds are kept
    saved["folds"] = saved["folds"][:2]
    (tmp_path / "errica" / ASSESSMENT_FILE).write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="already holds an assessment"):
        assess(cfg)
    again = assess(cfg, resume=True, final_runs=2)
    assert [f.fold for f in again.folds] == [0, 1, 2]
    assert again.folds[:2] == result.folds[:2] and again.folds[2].trial == result.folds[2].trial


def test_errica_needs_folds_and_is_not_a_plain_search(tmp_path, shared_datasets, cache_dir):
    cfg = config(tmp_path, shared_datasets, cache_dir)
    with pytest.raises(ValueError, match="give --folds K"):
        assess(cfg.model_copy(update={"train": TrainConfig(folds=1)}))
    with pytest.raises(ValueError, match="one search per outer fold"):
        Search(cfg)
