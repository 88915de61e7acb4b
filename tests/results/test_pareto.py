"""ParetoFront and objectives on hand-made trial tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphnas.results import ParetoFront, front_objectives, parse_objectives


def frame() -> pd.DataFrame:
    rows = [  # trial, state, val, flops
        (0, "COMPLETE", 0.80, 100), (1, "COMPLETE", 0.85, 300), (2, "COMPLETE", 0.70, 50),
        (3, "COMPLETE", 0.75, 200), (4, "FAIL", float("nan"), float("nan")), (5, "COMPLETE", 0.90, 1000),
        (6, "COMPLETE", 0.85, 300)]
    return pd.DataFrame(rows, columns=["trial", "state", "val_metric", "flops"])


def test_front_keeps_exactly_the_non_dominated():
    objs = parse_objectives("metric,flops", "maximize")
    front = ParetoFront.of(frame(), objs)
    # 3 is dominated by 0; ties 1 and 6 are both kept; the failed trial never enters
    assert list(front.trials["trial"]) == [2, 0, 1, 6, 5]


def test_single_objective_front_adds_flops():
    objs = front_objectives(parse_objectives("metric", "maximize"))
    assert [o.name for o in objs] == ["metric", "flops"]
    assert [o.direction for o in objs] == ["maximize", "minimize"]


def test_minimised_metric():
    objs = parse_objectives("metric,flops", "minimize")
    assert list(ParetoFront.of(frame(), objs).trials["trial"]) == [2]


def test_bad_objectives():
    with pytest.raises(ValueError, match="unknown objective 'acc'; valid: metric, flops, params, latency"):
        parse_objectives("acc,flops", "maximize")
    with pytest.raises(ValueError, match="names an objective twice"):
        parse_objectives("flops,flops", "maximize")


def test_empty_frame():
    assert len(ParetoFront.of(frame().iloc[:0], parse_objectives("metric,flops", "maximize"))) == 0


@pytest.mark.parametrize("maximize", [True, False])
def test_the_hypervolume_history_is_each_prefix_s_hypervolume(maximize):
    """Computed only where a trial joins the front (issue 18: 28 s at 10,000 trials before),
    it must equal the hypervolume of every prefix of the completed trials."""
    from graphnas.results import analysis

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"trial": range(200), "state": ["COMPLETE"] * 200, "val_metric": rng.random(200),
                          "flops": rng.random(200) * 100})
    frame.loc[[5, 17], "state"] = "FAIL"
    ref = analysis.Reference.of([frame], maximize)
    history = analysis.hypervolume_history(frame, ref, maximize)
    done = analysis.completed(frame)
    expected = [analysis.hypervolume(done.iloc[: i + 1], ref, maximize) for i in range(len(done))]
    assert history["trial"].tolist() == done["trial"].tolist()
    np.testing.assert_allclose(history["hypervolume"], expected, rtol=0, atol=1e-12)
    assert history["hypervolume"].is_monotonic_increasing and history["hypervolume"].iloc[-1] > 0
