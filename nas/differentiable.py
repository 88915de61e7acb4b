"""Differentiable strategies, registered in :data:`nas.strategies.STRATEGIES` beside the
black-box ones with ``differentiable=True``: ``darts``, ``gdas`` and ``darts+tpe``.

Lifecycle (the black-box one of :mod:`nas.strategies`, plus a run of their own):

1. **Registration** declares ``differentiable`` (a supernet trained in one process on the
   whole training data: no workers, no Ray, no tabular evaluator, no sampled mini-batches,
   no references or knowledge) and ``multi_objective`` (the derived architecture is
   recorded with every objective).
2. **space_of(space, run_dir, resume)**: the space the study's trials are drawn from
   (darts+tpe resumes on the space its first phase narrowed).
3. **budget(config)**: the trials the run records (one derived architecture per FLOPs
   cost weight for darts and gdas).
4. **sampler()**: the study's sampler. darts and gdas never ask it to propose (their
   trials are queued); darts+tpe's second phase is TPE.
5. **run(search, study, evaluator, objectives, observer)** trains the supernets; each
   derived architecture is retrained by the evaluator as an ordinary trial, tagged with
   its mode and cost weight. A resumed run skips the cost weights it has recorded.

The supernet is :mod:`nas.supernet`, its bi-level step :mod:`nas.architect`, and what is
read off it :mod:`nas.darts`.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Optional

import optuna
import yaml
from torch_geometric import seed_everything

from graphnas.evaluators.evaluator import TrainingEvaluator
from graphnas.evaluators.training import resolve_device
from graphnas.nas.architect import AlphaSearch, bilevel_batches
from graphnas.nas.darts import alphas_summary, narrow
from graphnas.nas.strategies import STRATEGIES, TPE, Random, Strategy
from graphnas.nas.supernet import Supernet
from graphnas.results.objectives import Objective
from graphnas.search_spaces import Architecture, SearchSpace
from graphnas.search_spaces.builder import model_inputs

if TYPE_CHECKING:
    from graphnas.nas.search import Observer, Search, SearchConfig

log = logging.getLogger(__name__)

NARROWED_SPACE = "narrowed_space.yaml"  # darts+tpe: the space of its second phase, in the run directory


class DifferentiableStrategy(Strategy):
    """A supernet search per FLOPs cost weight (see the module docstring for the lifecycle)."""

    mode: ClassVar[str]  # the supernet's: darts (softmax mixing) or gdas (Gumbel sampling)

    def sampler(self) -> optuna.samplers.BaseSampler:
        # never asked to propose: every trial is a derived architecture, queued
        return Random(self.space, self.seed, self.n_objectives, self.transfer).sampler()

    @classmethod
    def budget(cls, config: "SearchConfig") -> int:
        return len(config.darts.cost_weights)

    def cost_weights(self, config: "SearchConfig") -> list[float]:
        return list(config.darts.cost_weights)

    def run(self, search: "Search", study: optuna.Study, evaluator: TrainingEvaluator, objectives: list[Objective],
            observer: Optional["Observer"]) -> None:
        done = {t.user_attrs.get("cost_weight") for t in study.get_trials(deepcopy=False)
                if t.state.is_finished() and "cost_weight" in t.user_attrs}
        for lam in (w for w in self.cost_weights(search.config) if w not in done):
            net, arch = supernet_search(search, evaluator, self.mode, lam, study, observer)
            self.derived(search, net, lam)
            study.enqueue_trial(search.space.trial_params(arch))
            state = search.runner.one_trial(study, study.ask(), evaluator, objectives,
                                      tags={"strategy": self.mode, "cost_weight": lam})
            if observer:
                search.runner.observe(study, observer, state)

    def derived(self, search: "Search", net: Supernet, cost_weight: float) -> None:
        """What the strategy does with a trained supernet beyond recording its derived architecture."""


@STRATEGIES.register("darts", "DARTS (Liu et al. 2019): a softmax-weighted supernet per FLOPs cost weight, "
                     "discretised by argmax", differentiable=True, multi_objective=True)
class Darts(DifferentiableStrategy):
    mode = "darts"


@STRATEGIES.register("gdas", "GDAS (Dong & Yang 2019): one Gumbel-sampled candidate per mixed operation and step",
                     differentiable=True, multi_objective=True)
class Gdas(DifferentiableStrategy):
    mode = "gdas"


@STRATEGIES.register("darts+tpe", "One DARTS supernet, then TPE on the space narrowed to its top-k candidates per "
                     "choice, starting from the derived architecture", differentiable=True, multi_objective=True)
class DartsThenTPE(DifferentiableStrategy):
    mode = "darts"

    def sampler(self) -> optuna.samplers.BaseSampler:
        return TPE(self.space, self.seed, self.n_objectives, self.transfer).sampler()

    @classmethod
    def space_of(cls, space: SearchSpace, run_dir: Path, resume: bool) -> SearchSpace:
        narrowed = run_dir / NARROWED_SPACE
        return SearchSpace.from_yaml(narrowed) if resume and narrowed.is_file() else space

    @classmethod
    def budget(cls, config: "SearchConfig") -> int:
        return config.trials

    def cost_weights(self, config: "SearchConfig") -> list[float]:
        return list(config.darts.cost_weights[:1])

    def run(self, search: "Search", study: optuna.Study, evaluator: TrainingEvaluator, objectives: list[Objective],
            observer: Optional["Observer"]) -> None:
        if not (search.run_dir / NARROWED_SPACE).is_file():  # else narrowed already: its second phase goes on
            super().run(search, study, evaluator, objectives, observer)
        search.runner.loop(study, evaluator, objectives, observer)

    def derived(self, search: "Search", net: Supernet, cost_weight: float) -> None:
        search.narrow_space(narrow(search.space, net, search.config.darts.top_k,
                                   search.config.darts.keeps_none(cost_weight)))
        (search.run_dir / NARROWED_SPACE).write_text(
            yaml.safe_dump(search.space.spec.model_dump(mode="json", by_alias=True), sort_keys=False))


def supernet_search(search: "Search", evaluator: TrainingEvaluator, mode: str, cost_weight: float,
                    study: optuna.Study, observer: Optional["Observer"]) -> tuple[Supernet, Architecture]:
    """Train a supernet for ``cost_weight`` and discretise it; append its alpha trajectories
    to alphas.csv and what was searched, fixed and learned to darts.json."""
    cfg, dcfg, bundle = search.config, search.config.darts, evaluator.bundle
    seed_everything(cfg.seed)
    device = resolve_device(cfg.train.device)
    net = Supernet(search.space, bundle.info, dcfg.fix, mode, seed=cfg.seed).to(device)
    net.measure_flops(model_inputs(bundle.data.to(device), net.base))
    steps = bilevel_batches(bundle, net.base, device, dcfg.arch_fraction, cfg.seed, cfg.train.batch_size)

    def on_epoch(epoch: int) -> None:
        if observer and (epoch + 1) % 10 == 0:
            search.runner.observe(study, observer, "RUNNING", f"{mode} lambda={cost_weight:g} epoch {epoch + 1}/{dcfg.epochs}")

    start = time.perf_counter()
    rows = AlphaSearch(net, dcfg, cost_weight).run(steps, on_epoch)
    arch = net.derive(dcfg.keeps_none(cost_weight))
    overridden = net.overridden_none(dcfg.keeps_none(cost_weight))
    if overridden:
        log.warning("%s lambda=%g: 'none' has the largest weight at %s, and the derived architecture takes the "
                    "next candidate there: without a FLOPs penalty DARTS never picks the zero operation (its "
                    "weight says how little the others matter); --keep-none or a cost weight > 0 lets it win",
                    mode, cost_weight, ", ".join(f"{k} ({w:.3f})" for k, w in overridden.items()))
    search.store.append_alphas([{**r, "cost_weight": cost_weight} for r in rows])
    search.store.update_json("darts.json", str(cost_weight), {
        "mode": mode, "searched": net.candidates, "fixed": net.fixed, "final_weights": alphas_summary(rows),
        "none_overridden": overridden,
        "derived_arch_id": arch.arch_id, "search_time_s": time.perf_counter() - start,
        "candidate_flops": {k: v.tolist() for k, v in net.flops.items()}})
    return net, arch
