"""The predictor strategy (BANANAS-style, White et al. 2021): an ensemble of small MLPs fitted to
the evaluated trials ranks the unseen neighbours of the best; and ``auto``, the default, which
is the predictor with the knowledge of earlier searches as its prior."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import optuna

from graphnas.nas.strategy_base import STRATEGIES, Strategy
from graphnas.search_spaces import SearchSpace
from graphnas.nas.proposals import Evaluated, History, ProposalStrategy

if TYPE_CHECKING:
    from graphnas.nas.knowledge import Transfer


@STRATEGIES.register("auto", "The default: the predictor, with the knowledge of earlier searches as its prior", multi_objective=True, parallel=True, distinct=True, transfers=True)
class Auto(Strategy):
    """The default strategy, chosen on NAS-Bench-Graph (benchmarks/search_quality.py, README
    "Strategies"): the predictor with transfer had the lowest regret of every strategy at 30
    and 100 queries, and with two objectives the highest hypervolume at 200."""

    def sampler(self) -> optuna.samplers.BaseSampler:
        return PredictorSearch(self.space, self.seed, self.n_objectives, self.transfer).sampler()


@STRATEGIES.register("predictor", "Surrogate-guided search (BANANAS-style): an ensemble of small MLPs on a one-hot "
                     "encoding proposes the mutation of a top architecture that one member, drawn at random, "
                     "predicts best (Thompson sampling); with two objectives, of the highest expected hypervolume "
                     "improvement, or in turn of either objective's extreme by Thompson sampling; with more, "
                     "of a random Chebyshev scalarisation of them (ParEGO)",
                     multi_objective=True, parallel=True, distinct=True, transfers=True)
class PredictorSearch(ProposalStrategy):
    """BANANAS (White et al. 2021) over a stack space: after ``initial`` random proposals,
    an ensemble of ``members`` MLPs (:class:`MLPEnsemble`, each its own initialisation) is
    fitted to each objective of the evaluated trials, each encoded one-hot per choice
    (floats as their position in the range). The candidates are the unseen neighbours of the
    ``top`` best trials; with one objective the proposal is the candidate that one member of
    the ensemble, drawn at random per proposal, predicts best (Thompson sampling: the
    members' disagreement explores, without expected improvement's pull towards the
    candidates every member is unsure of). The ensembles are refitted when the history has
    grown by a tenth since the last fit, and by at least ``refit_after`` trials (BANANAS too
    proposes in batches from one fit), so proposals stay cheap at 1,000 trials.

    Two objectives (a metric, then a cost): a ``metric_extreme`` share of the proposals
    looks for the most accurate architecture, whatever its cost, and a ``cost_extreme`` share
    for the cheapest, each by Thompson sampling on that objective alone; the rest maximise
    expected hypervolume improvement. Why: the improvement is measured from the worst point
    found, and a search that avoids slow cells finds a worst latency far below the space's
    (7-10 ms of pubmed's 19 on NAS-Bench-Graph), so it gives the accurate, slow end of the
    front almost no weight; that end is also the hardest to find (the cost of a cell is
    predictable from its operators, its accuracy is not). On NAS-Bench-Graph (20 seeds,
    auto with knowledge) the hypervolume ratio at 200 queries went from 0.987/0.988/0.960 to
    0.990/0.993/0.979 on cora/citeseer/pubmed; 0.5 for the metric alone gave pubmed 0.981
    but cora 0.977 (its front's cheap end weighs more), and 0.25 each gave pubmed 0.953.

    More objectives (ParEGO, Knowles 2006): each objective is fitted on its ranks among
    the evaluated trials (so a heavy-tailed latency and a bounded accuracy weigh alike); each
    proposal draws random weights, and "best" and "improvement" are those of the augmented
    Chebyshev scalarisation under them. Over the proposals the weights sweep the front, its
    cheap corner as much as its accurate one.

    With a transfer (earlier searches of the space), each source's rank score of an
    architecture is one more input, so the ensemble learns how far this dataset follows
    each source; the best unseen architectures of the sources' pooled prior join the
    candidates; and the transferred trials queued first replace the random start-up."""

    initial, members, top, candidates = 10, 5, 5, 50
    # With a transfer and one objective: the best unseen architectures of each ranking (the
    # pooled prior, each source) that join the neighbours as candidates. 20 from each of the
    # (usually four) rankings weigh about alike with the 50 neighbours; at 50 each (before)
    # the sources' picks were 4 in 5 candidates, and on NAS-Bench-Graph (20 seeds, auto with
    # knowledge) regret at 30 / 100 queries went from 0.67/1.12/1.07 / 0.48/0.24/0.31 to
    # 0.65/1.09/0.96 / 0.47/0.17/0.28 on cora/citeseer/pubmed; 5 or 10 hurt citeseer at 30
    # (1.48), 30 gave 0.65/1.11/0.96 / 0.48/0.22/0.31. Several objectives keep ``candidates``
    # (50) from each: there the sources' best also serve the accurate end of the front, and
    # 20 lowered pubmed's hypervolume at 200 queries from 0.979 to 0.967.
    prior_candidates = 20
    augment = 0.05  # the augmented Chebyshev term: keeps weakly dominated points from tying
    metric_extreme, cost_extreme = 0.4, 0.15  # with two objectives: shares of extreme proposals
    # Fewest new trials before a refit: (one objective, several). Early on each trial changes
    # the fit most. On the five NAS-Bench-Graph datasets the default was not designed on (cs,
    # physics, photo, computers, arxiv; 20 seeds, auto with knowledge) 2 instead of 5 lowered
    # regret at 30 queries on all five (mean 0.63x -> 0.56x random's; at 100 0.30x either
    # way); with two objectives it lowered pubmed's hypervolume at 200 from 0.979 to 0.957.
    refit_after = (2, 5)
    # With ``warm_steps``, a refit starts from the last fit's weights and takes that many Adam
    # steps instead of a fresh fit's 300; None: every fit fresh. Measured in one run
    # (benchmarks/surrogate_refit.py, 20 seeds, auto with knowledge, warm - fresh paired by
    # seed): 100 warm steps made the 30-query search 0.83x as long (the fit 0.46x) but raised
    # cora's regret at 200 queries by 0.08 ± 0.04 and lowered pubmed's hypervolume at 200 by
    # 0.017 ± 0.006; 200 warm steps (0.95x the search, the fit 0.75x) still raised cora's regret
    # at 100 and 200 by 0.09 ± 0.03 and lowered pubmed's hypervolume at 200 by 0.015 ± 0.006.
    # Fits stay fresh: a member refitted from its last fit keeps its place, and the ensemble's
    # disagreement, which Thompson sampling explores with, shrinks.
    warm_steps: Optional[int] = None

    def __init__(self, space: SearchSpace, seed: int, n_objectives: int,
                 transfer: Optional["Transfer"] = None) -> None:
        super().__init__(space, seed, n_objectives, transfer)
        self._fitted_on, self._ensembles = 0, None
        self._by_prior: Optional[list[list[tuple[dict[str, Any], str]]]] = None  # the sources' best, once
        self._encoding = OneHotEncoding()

    @property
    def start_up(self) -> int:
        """Evaluated trials before the first fit: ``initial`` random ones, or with a transfer
        the transferred trials the search queues first (random proposals would add nothing
        the sources do not already say)."""
        if self.transfer is None:
            return self.initial
        from graphnas.nas.knowledge import FIRST_PROPOSALS

        return min(self.initial, FIRST_PROPOSALS)

    def propose(self, history: History) -> dict[str, Any]:
        if len(history.ranked) < self.start_up:
            return self.random_unseen(history)
        self._refit(history.ranked)
        scores = np.array([e.score for e in history.ranked], dtype=float)
        weights = self._weights()
        parents = [history.ranked[i] for i in np.argsort(-self._utility(_ranks(scores), weights), kind="stable")]
        pool: list[dict[str, Any]] = []
        for k, parent in enumerate(parents[:self.top]):  # an equal share of candidates per parent
            for child in self.neighbours(parent.params, history):
                pool.append(child)
                if len(pool) >= self.candidates * (k + 1) // self.top:
                    break
        pool += self._prior_candidates(history)
        if not pool:
            return self.random_unseen(history)
        x = self._encode(pool)
        predicted = np.stack([e.predict(x) for e in self._ensembles], -1)  # (members, candidates, objectives)
        return pool[int(np.argmax(self._acquisition(predicted, scores, weights)))]

    def _acquisition(self, predicted: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Per candidate: the prediction of one ensemble member drawn at random (Thompson
        sampling; one objective); expected hypervolume improvement over the found front, plus
        that of the optimistic point mean + spread (SMS-EGO's), which ranks the candidates no
        member expects to improve (two; on an extreme proposal, one member's prediction of
        that objective); expected improvement of the Chebyshev scalarisation of the
        objectives' ranks (ParEGO, more)."""
        if np.count_nonzero(weights) == 1:  # one objective, or an extreme proposal (see _weights)
            # Thompson sampling over the ensemble: one member's prediction, drawn per proposal.
            # On NAS-Bench-Graph it gave lower regret than EI at 100 queries on cora, citeseer
            # and pubmed, and at 30 on cora and pubmed (citeseer's +0.03 is within its noise)
            return predicted[int(self.rng.integers(len(predicted))), :, int(weights.argmax())]
        if self.n_objectives == 2:
            reference = scores.min(0)
            front = scores[_nondominated(scores)]
            expected = np.mean([_hvi_2d(member, front, reference) for member in predicted], axis=0)
            return expected + _hvi_2d(predicted.mean(0) + predicted.std(0), front, reference)
        utility, best = self._utility(predicted, weights), self._utility(_ranks(scores), weights).max()
        mean, std = utility.mean(0), utility.std(0) + 1e-9
        z = (mean - best) / std
        return std * (z * _normal_cdf(z) + np.exp(-z * z / 2) / math.sqrt(2 * math.pi))

    def _weights(self) -> np.ndarray:
        """This proposal's weight per objective: 1 for one; with two, all on the metric (a
        ``metric_extreme`` share of the proposals) or all on the cost (``cost_extreme``), else
        uniform on the simplex, as for more."""
        if self.n_objectives == 1:
            return np.ones(1)
        if self.n_objectives == 2:
            draw = self.rng.random()
            if draw < self.metric_extreme + self.cost_extreme:
                return np.array([1.0, 0.0]) if draw < self.metric_extreme else np.array([0.0, 1.0])
        return self.rng.dirichlet(np.ones(self.n_objectives))

    def _targets(self, ranked: list[Evaluated]) -> np.ndarray:
        """(trials, objectives) what the ensembles fit: the scores themselves for one or two
        objectives (hypervolume is measured in their units); each objective's rank among the
        trials for more (ParEGO's scalarisation weighs objectives of any scale alike)."""
        scores = np.array([e.score for e in ranked], dtype=float)
        return scores if self.n_objectives <= 2 else _ranks(scores)

    def _utility(self, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(..., objectives) ranks in [0, 1] -> (...), larger is better: minus the augmented
        Chebyshev distance to the ideal point (every rank 1), the largest weighted shortfall
        plus a little of their sum. With one objective, the value itself."""
        if self.n_objectives == 1:
            return values[..., 0]
        shortfall = (1.0 - values) * weights
        return -(shortfall.max(-1) + self.augment * shortfall.sum(-1))

    def _prior_candidates(self, history: History) -> list[dict[str, Any]]:
        """The ``prior_candidates`` best unseen architectures (``candidates`` with several
        objectives) by the transfer's pooled prior and by each of its sources."""
        if self.transfer is None:
            return []
        if self._by_prior is None:
            rankings = [self.transfer.ranked_by_prior()] + [e.trials for e in self.transfer.sources]
            self._by_prior = [[(t.params, t.key) for t in ranking[:20 * self.candidates]] for ranking in rankings]
        count = self.prior_candidates if self.n_objectives == 1 else self.candidates
        pool, keys = [], set()
        for ranking in self._by_prior:
            fresh = [(p, k) for p, k in ranking if k not in history.seen and k not in keys][:count]
            pool += [p for p, _ in fresh]
            keys.update(k for _, k in fresh)
        return pool

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_by_prior": None}

    def __setstate__(self, state: dict) -> None:
        if "_columns" in state:  # a snapshot from before OneHotEncoding held the columns
            state["_encoding"] = OneHotEncoding(state.pop("_columns"), state.pop("_floats"))
        self.__dict__.update(state)

    def _refit(self, ranked: list[Evaluated]) -> None:
        step = self.refit_after[0] if self.n_objectives == 1 else self.refit_after[1]
        if self._ensembles is not None and len(ranked) < max(self._fitted_on + step, self._fitted_on * 1.1):
            return
        for e in ranked:  # the encoding's columns: every (choice, value) seen so far
            self._encoding.add(e.params, self._distributions(e.params))
        x, targets = self._encode([e.params for e in ranked]), self._targets(ranked)
        last = self._ensembles if self.warm_steps is not None else None
        self._ensembles = [MLPEnsemble.fit(x, targets[:, j], self.members, seed=int(self.rng.integers(2 ** 31)),
                                           **({"start": last[j], "steps": self.warm_steps} if last else {}))
                           for j in range(targets.shape[1])]
        self._fitted_on = len(ranked)

    def _encode(self, batch: list[dict[str, Any]]) -> np.ndarray:
        x = self._encoding.encode(batch)
        if self.transfer is not None:
            x = np.hstack([x, self.transfer.features([self.complete(params)[1] for params in batch])])
        return x


@dataclass
class OneHotEncoding:
    """The predictor's input: one column per (choice, value) seen so far, and one per float
    choice holding its position in the range (on a log scale where the choice is log)."""

    columns: dict[tuple[str, Any], int] = field(default_factory=dict)  # (choice, value); (choice, None): a float
    # a float's name is in floats; a categorical None value shares the key shape, not the name
    floats: dict[str, optuna.distributions.FloatDistribution] = field(default_factory=dict)

    def add(self, params: dict[str, Any], distributions: dict[str, Any]) -> None:
        """Columns for what ``params`` chose (new ones appended: earlier columns keep their place)."""
        for name, dist in distributions.items():
            if isinstance(dist, optuna.distributions.FloatDistribution):
                self.columns.setdefault((name, None), len(self.columns))
                self.floats[name] = dist
            else:
                self.columns.setdefault((name, params[name]), len(self.columns))

    def encode(self, batch: list[dict[str, Any]]) -> np.ndarray:
        x = np.zeros((len(batch), len(self.columns)))
        for i, params in enumerate(batch):
            for name, value in params.items():
                # a float: its position in the range. Asked by name, not by the (name, None)
                # column: a categorical choice may hold None itself (input_dropout: [null, 0.0])
                if name in self.floats:
                    dist = self.floats[name]
                    lo, hi, v = (map(math.log, (dist.low, dist.high, value)) if dist.log
                                 else (dist.low, dist.high, value))
                    x[i, self.columns[(name, None)]] = (v - lo) / ((hi - lo) or 1.0)
                elif (name, value) in self.columns:  # a value no evaluated trial had stays all-zero
                    x[i, self.columns[(name, value)]] = 1.0
        return x


class MLPEnsemble:
    """``members`` two-layer MLPs (32 units) trained together, full batch, on standardised
    targets: one batched matrix product per layer, so a fit on 1,000 trials takes a tenth
    of a second where scikit-learn's per-model minibatch loop took seconds."""

    def __init__(self, layers: list, mean: float, scale: float) -> None:
        self.layers, self.mean, self.scale = layers, mean, scale

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, members: int, seed: int, hidden: int = 32, steps: int = 300,
            lr: float = 0.01, start: Optional["MLPEnsemble"] = None) -> "MLPEnsemble":
        """``start``: begin from its weights (fine-tuning) instead of a fresh initialisation;
        input columns ``x`` has beyond ``start``'s (choices seen since) start from fresh weights."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        mean, scale = float(y.mean()), float(y.std()) or 1.0
        xt = torch.as_tensor(x, dtype=torch.float32).expand(members, *x.shape)
        yt = torch.as_tensor((y - mean) / scale, dtype=torch.float32).expand(members, len(y))
        sizes = [x.shape[1], hidden, hidden, 1]
        if start is not None:
            layers = [t.clone() for t in start.layers]
            new_columns = x.shape[1] - layers[0].shape[1]  # columns seen since: appended, never removed
            if new_columns > 0:
                fresh = (torch.rand(members, new_columns, hidden, generator=gen) * 2 - 1) / x.shape[1] ** 0.5
                layers[0] = torch.cat([layers[0], fresh], 1)
            layers = [t.requires_grad_() for t in layers]
        else:
            layers = []
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
                w = (torch.rand(members, fan_in, fan_out, generator=gen) * 2 - 1) / max(fan_in, 1) ** 0.5
                layers += [w.requires_grad_(), torch.zeros(members, 1, fan_out, requires_grad=True)]
        opt = torch.optim.Adam(layers, lr=lr, weight_decay=1e-4)
        for _ in range(steps):
            opt.zero_grad()
            loss = ((cls._forward(layers, xt).squeeze(-1) - yt) ** 2).mean()
            loss.backward()
            opt.step()
        return cls([t.detach() for t in layers], mean, scale)

    @staticmethod
    def _forward(layers: list, x):
        import torch

        out = x
        for i in range(0, len(layers), 2):
            out = torch.baddbmm(layers[i + 1], out, layers[i])
            if i + 2 < len(layers):
                out = torch.relu(out)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(members, len(x)) predictions in the target's units."""
        import torch

        with torch.no_grad():
            xt = torch.as_tensor(x, dtype=torch.float32).expand(self.layers[0].shape[0], *x.shape)
            return self._forward(self.layers, xt).squeeze(-1).numpy() * self.scale + self.mean


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)


# --- helpers ---------------------------------------------------------------------------------
def _ranks(scores: np.ndarray) -> np.ndarray:
    """(trials, objectives) -> each objective's rank among the trials in [0, 1], 1 = best."""
    ranks = scores.argsort(0, kind="stable").argsort(0, kind="stable")
    return ranks / max(len(scores) - 1, 1)


def _nondominated(scores: np.ndarray) -> np.ndarray:
    """A mask of the rows no other row dominates (every objective larger is better)."""
    dominates = (scores[None, :, :] >= scores[:, None, :]).all(-1) & (scores[None, :, :] > scores[:, None, :]).any(-1)
    return ~dominates.any(1)


def _hvi_2d(points: np.ndarray, front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(candidates, 2) -> the hypervolume each point would add to ``front`` (both objectives
    larger is better, above ``reference``), exactly: the front's attained set is a staircase;
    the gain is the area of the point's box above it, summed over the stair's steps. Written
    here because moocore and Optuna compute one hypervolume per call, and this runs over
    hundreds of candidates per proposal."""
    front = front[np.argsort(-front[:, 0], kind="stable")]  # first objective falling, second rising
    # step i spans the first objective from edges[i + 1] to edges[i]; above it the staircase
    # is at height floor[i]
    edges = np.concatenate([[np.inf], front[:, 0], [reference[0]]])
    floor = np.concatenate([[reference[1]], np.maximum.accumulate(front[:, 1])])
    p = np.maximum(points, reference)
    width = np.clip(np.minimum(p[:, :1], edges[None, :-1]) - edges[None, 1:], 0.0, None)
    return (width * np.clip(p[:, 1:] - floor[None, :], 0.0, None)).sum(1)
