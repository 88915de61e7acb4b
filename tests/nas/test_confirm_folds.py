"""Confirmation on folds of the selection graphs, with the best trial's neighbours and the
reference designs among the finalists (issue 14: a holdout split of 100 graphs cannot tell
one-choice neighbours apart)."""
from __future__ import annotations

import optuna
import pandas as pd
import pytest
import torch
from optuna.distributions import CategoricalDistribution

from graphnas.evaluators import TrainConfig
from graphnas.nas import Search, SearchConfig
from graphnas.nas.refine import neighbour_params
from graphnas.results.store import CONFIRM_ATTR, NEIGHBOUR_ATTR
from graphnas.search_spaces import SearchSpace

FAST = TrainConfig(epochs=3, patience=3, latency_repeats=1)


def _config(tmp_path, cache_dir, data_root, **kw) -> SearchConfig:
    return SearchConfig(**{"space": "graph", "dataset": "mutag", "data_root": str(data_root),
                           "run_dir": str(tmp_path / "run"), "cache_dir": str(cache_dir), "strategy": "random",
                           "references": [], "trials": 4, "confirm": 1, "train": FAST, **kw})


def test_confirmation_folds_partition_the_selection_graphs_and_keep_test(shared_datasets, cache_dir):
    from graphnas.evaluators.datasets import load_dataset
    from graphnas.evaluators.splits import confirmation_folds

    bundle = load_dataset("mutag", str(shared_datasets), cache_dir)
    folds = confirmation_folds(bundle, 5)
    rest = torch.cat([bundle.splits.train, bundle.splits.val]).sort().values
    assert len(folds) == 5
    assert torch.equal(torch.cat([f.val for f in folds]).sort().values, rest)  # each graph validates once
    for f in folds:
        assert torch.equal(f.test, bundle.splits.test)  # test never selects
        assert torch.equal(torch.cat([f.train, f.val]).sort().values, rest)
        labels = torch.cat([bundle.graphs[int(i)].y.view(-1) for i in f.val]).float()
        assert 0.5 < labels.mean().item() < 0.85  # stratified: MUTAG is 2/3 positive


@pytest.mark.slow
def test_fold_confirmation_ranks_the_best_trial_and_its_neighbours(tmp_path, cache_dir, shared_datasets):
    config = _config(tmp_path, cache_dir, shared_datasets, trials=3, confirm_folds=2, confirm_neighbours=2,
                     references=["zoo:gin"])
    search = Search(config)
    study = search.run()
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 5  # the budget, then two neighbours
    added = [t for t in trials if NEIGHBOUR_ATTR in t.user_attrs]
    assert [t.number for t in added] == [3, 4]
    base = study.trials[added[0].user_attrs[NEIGHBOUR_ATTR]]
    for t in added:  # one choice away from the trial they surround, and new
        assert sum(t.params.get(k) != v for k, v in base.params.items()) == 1
        assert t.user_attrs["arch_id"] not in {o.user_attrs["arch_id"] for o in trials if o.number != t.number}
    records = study.user_attrs[CONFIRM_ATTR]
    # the neighbours and the reference design (trial 0) are finalists whatever their holdout figure
    assert trials[0].user_attrs["reference"] == "zoo:gin" and {0, 3, 4} <= {int(k) for k in records}
    for record in records.values():
        assert record["folds"] == 2 and len(record["val"]) == len(record["test"]) == 2
    frame = pd.read_csv(tmp_path / "run" / "trials.csv")
    best = search.store.outputs(study).best  # the finalist of best mean validation over the folds
    assert sum(records[str(int(best["trial"]))]["val"]) == max(sum(r["val"]) for r in records.values())
    assert (frame.loc[frame["confirm_folds"] > 0, "confirm_folds"] == 2).all()
    assert "cross-validated on 2 folds of the training and validation graphs" in \
        (tmp_path / "run" / "summary.md").read_text()

    again = Search(config, resume=True).run()  # nothing left: no neighbour added, nothing trained again
    assert len(again.trials) == 5 and again.user_attrs[CONFIRM_ATTR] == records


def test_neighbours_whose_choice_did_best_come_first():
    space = SearchSpace.from_dict({"name": "t", "global": {"hidden_dim": [16, 32, 64], "num_layers": 2},
                                   "layers": {"tied": True, "mpnn": ["gcn", "sage", "gin"]}})
    dists = {"hidden_dim": CategoricalDistribution([16, 32, 64]), "mpnn": CategoricalDistribution(["gcn", "sage", "gin"])}

    def trial(number: int, hidden: int, mpnn: str, val: float) -> optuna.trial.FrozenTrial:
        t = optuna.trial.create_trial(params={"hidden_dim": hidden, "mpnn": mpnn}, distributions=dists,
                                      values=[val], user_attrs={"val_metric": val})
        t.number = number
        return t

    # mean validation by choice: sage 0.76, width 32 0.74, width 64 0.64, gin 0.50, against
    # 0.70 for the base's own gcn and width 16
    trials = [trial(0, 16, "gcn", 0.70), trial(1, 32, "sage", 0.74), trial(2, 64, "sage", 0.78),
              trial(3, 64, "gin", 0.50)]
    order = neighbour_params(space, trials[0], trials, limit=10, seed=0, maximize=True)
    changed = [next((k, p[k]) for k in p if p[k] != trials[0].params[k]) for p in order]
    assert changed == [("mpnn", "sage"), ("hidden_dim", 32), ("hidden_dim", 64), ("mpnn", "gin")]
    assert neighbour_params(space, trials[0], trials, limit=2, seed=0, maximize=True) == order[:2]
    flipped = neighbour_params(space, trials[0], trials, limit=10, seed=0, maximize=False)  # a loss: lower is better
    assert next((k, v) for k, v in flipped[0].items() if v != trials[0].params[k]) == ("mpnn", "gin")


@pytest.mark.parametrize("kw, message", [
    ({"confirm_folds": 3, "confirm": 0}, "act in the confirmation of the top trials"),
    ({"confirm_folds": 1}, "at least 2"),
    ({"confirm_folds": 3, "dataset": "synthetic", "space": "tiny"}, "applies to graph-level datasets"),
    ({"confirm_folds": 3, "train": TrainConfig(epochs=3, folds=3)}, "already a cross-validation"),
])
def test_fold_confirmation_is_refused_where_it_cannot_apply(tmp_path, cache_dir, shared_datasets, kw, message):
    search = Search(_config(tmp_path, cache_dir, shared_datasets, **kw))
    with pytest.raises(ValueError, match=message):
        search.run()
    assert not (tmp_path / "run" / "trials.csv").exists()  # refused before any trial
