"""Differentiable search: a runner of its own, not a proposal strategy.

``darts``, ``gdas`` and ``darts+tpe`` are registered in :data:`nas.strategies.STRATEGIES` (the
names ``--strategy`` takes) with ``differentiable=True``, and what is registered is a
:class:`SupernetSearch`: a description (the supernet's mode, which FLOPs cost weights, and an
optional black-box second phase), not a :class:`~nas.strategy_base.Strategy`. It proposes
nothing; :class:`SupernetRunner` runs it:

1. **Registration** declares ``differentiable`` (a supernet trained in one process on the
   whole training data: no workers, no Ray, no tabular evaluator, no sampled mini-batches,
   no references or knowledge) and ``multi_objective`` (the derived architecture is
   recorded with every objective).
2. **space_of(space, run_dir, resume)**: the space the study's trials are drawn from
   (darts+tpe resumes on the space its first phase narrowed).
3. **budget(config)**: the trials the run records (one derived architecture per FLOPs
   cost weight for darts and gdas).
4. **The study's strategy** (``SupernetSearch(space, seed, n_objectives)``): the second
   phase's (TPE for darts+tpe), or Optuna's random sampler, which then only replays the
   queued trials: every trial of darts and gdas is a derived architecture, queued.
5. **SupernetRunner.run(study, evaluator, objectives, observer)** trains a supernet per cost
   weight and hands each derived architecture to the trial runner (``TrialRunner.one_trial``,
   its public port) as an ordinary trial, tagged with its mode and cost weight; a resumed run
   skips the cost weights it has recorded. A search with a second phase narrows its space to
   each choice's top-k (``narrow``) and the backend then runs the rest of the budget over it.

The supernet is :mod:`nas.supernet`, its bi-level step :mod:`nas.architect`, and what is
read off it :mod:`nas.darts`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import optuna
import yaml
from torch_geometric import seed_everything

from graphnas.evaluators.evaluator import TrainingEvaluator
from graphnas.evaluators.training import resolve_device
from graphnas.nas.architect import AlphaSearch, bilevel_batches
from graphnas.nas.darts import alphas_summary, narrow
from graphnas.nas.strategies import STRATEGIES, Strategy
from graphnas.nas.supernet import Supernet
from graphnas.results.objectives import Objective
from graphnas.search_spaces import Architecture, SearchSpace
from graphnas.search_spaces.builder import model_inputs

if TYPE_CHECKING:
    from graphnas.nas.knowledge import Transfer
    from graphnas.nas.runner import TrialRunner
    from graphnas.nas.search import Observer, SearchConfig
    from graphnas.results.store import RunStore

log = logging.getLogger(__name__)

NARROWED_SPACE = "narrowed_space.yaml"  # darts+tpe: the space of its second phase, in the run directory


@dataclass(frozen=True)
class SupernetSearch:
    """A differentiable search as registered (see the module docstring): the supernet's
    ``mode`` (darts: softmax mixing; gdas: Gumbel sampling), whether it searches every cost
    weight of ``SearchConfig.darts`` or the first only, and ``then``: the black-box strategy
    of a second phase over the narrowed space (``None``: none)."""

    mode: str
    every_cost_weight: bool = True
    then: Optional[str] = None

    def __call__(self, space: SearchSpace, seed: int, n_objectives: int,
                 transfer: Optional["Transfer"] = None) -> Strategy:
        """The strategy of the study's sampler: the second phase's, or random, which only
        replays queued trials (each one a derived architecture)."""
        return STRATEGIES.get(self.then or "random")(space, seed, n_objectives, transfer)

    def space_of(self, space: SearchSpace, run_dir: Path, resume: bool) -> SearchSpace:
        narrowed = run_dir / NARROWED_SPACE
        return SearchSpace.from_yaml(narrowed) if self.then and resume and narrowed.is_file() else space

    def budget(self, config: "SearchConfig") -> int:
        return config.trials if self.then else len(self.cost_weights(config))

    def cost_weights(self, config: "SearchConfig") -> list[float]:
        weights = list(config.darts.cost_weights)
        return weights if self.every_cost_weight else weights[:1]


STRATEGIES.register("darts", "DARTS (Liu et al. 2019): a softmax-weighted supernet per FLOPs cost weight, "
                    "discretised by argmax", differentiable=True, multi_objective=True)(SupernetSearch("darts"))
STRATEGIES.register("gdas", "GDAS (Dong & Yang 2019): one Gumbel-sampled candidate per mixed operation and step",
                    differentiable=True, multi_objective=True)(SupernetSearch("gdas"))
STRATEGIES.register("darts+tpe", "One DARTS supernet, then TPE on the space narrowed to its top-k candidates per "
                    "choice, starting from the derived architecture", differentiable=True,
                    multi_objective=True)(SupernetSearch("darts", every_cost_weight=False, then="tpe"))


class SupernetRunner:
    """Runs a :class:`SupernetSearch` (step 5 of the module docstring). Its ports: the run's
    settings, space and store, the trial runner that records each derived architecture, and
    ``narrow_space``, which moves the search onto a narrowed space for its second phase."""

    def __init__(self, search: SupernetSearch, config: "SearchConfig", space: SearchSpace, store: "RunStore",
                 trials: "TrialRunner", narrow_space: Callable[[SearchSpace], None]) -> None:
        self.search, self.config, self.space, self.store = search, config, space, store
        self.trials, self.narrow_space = trials, narrow_space

    def run(self, study: optuna.Study, evaluator: TrainingEvaluator, objectives: list[Objective],
            observer: Optional["Observer"]) -> None:
        if self.search.then and (self.store.run_dir / NARROWED_SPACE).is_file():
            return  # narrowed already: a resumed second phase goes on with the backend
        done = {t.user_attrs.get("cost_weight") for t in study.get_trials(deepcopy=False)
                if t.state.is_finished() and "cost_weight" in t.user_attrs}
        for lam in (w for w in self.search.cost_weights(self.config) if w not in done):
            net, arch = supernet_search(self.config, self.space, self.store, self.trials, evaluator,
                                        self.search.mode, lam, study, observer)
            if self.search.then:
                self.narrow(net, lam)
            study.enqueue_trial(self.space.trial_params(arch))
            state = self.trials.one_trial(study, study.ask(), evaluator, objectives,
                                          tags={"strategy": self.search.mode, "cost_weight": lam})
            if observer:
                self.trials.observe(study, observer, state)

    def narrow(self, net: Supernet, cost_weight: float) -> None:
        """The second phase's space: each choice's top-k candidates by the supernet's weights,
        kept in the run directory so that a resumed run goes on over it."""
        darts = self.config.darts
        self.space = narrow(self.space, net, darts.top_k, darts.keeps_none(cost_weight))
        self.narrow_space(self.space)
        (self.store.run_dir / NARROWED_SPACE).write_text(
            yaml.safe_dump(self.space.spec.model_dump(mode="json", by_alias=True), sort_keys=False))


def supernet_search(cfg: "SearchConfig", space: SearchSpace, store: "RunStore", trials: "TrialRunner",
                    evaluator: TrainingEvaluator, mode: str, cost_weight: float, study: optuna.Study,
                    observer: Optional["Observer"]) -> tuple[Supernet, Architecture]:
    """Train a supernet for ``cost_weight`` and discretise it; append its alpha trajectories
    to alphas.csv and what was searched, fixed and learned to darts.json."""
    dcfg, bundle = cfg.darts, evaluator.bundle
    seed_everything(cfg.seed)
    device = resolve_device(cfg.train.device)
    net = Supernet(space, bundle.info, dcfg.fix, mode, seed=cfg.seed).to(device)
    net.measure_flops(model_inputs(bundle.data.to(device), net.base))
    steps = bilevel_batches(bundle, net.base, device, dcfg.arch_fraction, cfg.seed, cfg.train.batch_size)

    def on_epoch(epoch: int) -> None:
        if observer and (epoch + 1) % 10 == 0:
            trials.observe(study, observer, "RUNNING", f"{mode} lambda={cost_weight:g} epoch {epoch + 1}/{dcfg.epochs}")

    start = time.perf_counter()
    rows = AlphaSearch(net, dcfg, cost_weight).run(steps, on_epoch)
    arch = net.derive(dcfg.keeps_none(cost_weight))
    overridden = net.overridden_none(dcfg.keeps_none(cost_weight))
    if overridden:
        log.warning("%s lambda=%g: 'none' has the largest weight at %s, and the derived architecture takes the "
                    "next candidate there: without a FLOPs penalty DARTS never picks the zero operation (its "
                    "weight says how little the others matter); --keep-none or a cost weight > 0 lets it win",
                    mode, cost_weight, ", ".join(f"{k} ({w:.3f})" for k, w in overridden.items()))
    store.append_alphas([{**r, "cost_weight": cost_weight} for r in rows])
    store.update_json("darts.json", str(cost_weight), {
        "mode": mode, "searched": net.candidates, "fixed": net.fixed, "final_weights": alphas_summary(rows),
        "none_overridden": overridden,
        "derived_arch_id": arch.arch_id, "search_time_s": time.perf_counter() - start,
        "candidate_flops": {k: v.tolist() for k, v in net.flops.items()}})
    return net, arch
