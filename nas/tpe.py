"""Optuna's TPE with its per-proposal work made independent of what it has already seen.

:class:`IncrementalTPESampler` is ``optuna.samplers.TPESampler`` itself, with the same
proposals for the same seed and history (a test checks it draw by draw), and two pieces of
bookkeeping that Optuna 5 redoes from every trial on every proposal kept instead:

* the group decomposition (``group=True``): Optuna's ``_GroupDecomposedSearchSpace`` adds
  every finished trial's parameters to its groups at each call (about a third of TPE's
  time at 1,000 trials);
* the trials' internal representation (``_get_internal_repr``): each finished trial's
  parameters converted again for both Parzen estimators at each call.

Written here because Optuna has no incremental form of either (checked in Optuna 5.1), and
the engine's per-trial overhead at 1,000 trials is one of issue 18's targets. Both caches are
left out of the pickled sampler snapshot: they are rebuilt from the study, to the same
values, on the first proposal after a resume, and the snapshot does not grow with the study.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace, _SearchSpaceGroup
from optuna.trial import FrozenTrial, TrialState


class _IncrementalGroups(_GroupDecomposedSearchSpace):
    """The group decomposition, each finished trial added once. Re-adding a trial the
    groups already split is a no-op (every group then lies wholly inside or wholly outside
    its parameters, and the split keeps the groups' order), so adding only the trials not
    yet added gives Optuna's groups, in Optuna's order."""

    def __init__(self, include_pruned: bool) -> None:
        super().__init__(include_pruned)
        self._added: set[int] = set()

    def calculate(self, study: optuna.Study, use_cache: bool = False) -> _SearchSpaceGroup:
        if self._study_id is None:
            self._study_id = study._study_id
        elif self._study_id != study._study_id:
            raise ValueError("`_GroupDecomposedSearchSpace` cannot handle multiple studies.")
        states = (TrialState.COMPLETE, TrialState.PRUNED) if self._include_pruned else (TrialState.COMPLETE,)
        for trial in study._get_trials(deepcopy=False, states=states, use_cache=use_cache):
            if trial.number not in self._added:
                self._search_space.add_distributions(trial.distributions)
                self._added.add(trial.number)
        return copy.deepcopy(self._search_space)

    def __getstate__(self) -> dict:
        # The groups are kept; the added set is not: adding every trial again is a no-op.
        return {**self.__dict__, "_added": set()}


class _Rows:
    """Finished trials' internal values under one search space (parameter names and
    distributions), by trial number: a row per trial, ``None`` where the trial lacks one of
    the parameters. A finished trial's parameters never change, so its row is computed once."""

    def __init__(self, search_space: dict[str, BaseDistribution]) -> None:
        self.search_space = dict(search_space)
        self.rows: dict[int, tuple | None] = {}

    def row(self, trial: FrozenTrial) -> tuple | None:
        try:
            return self.rows[trial.number]
        except KeyError:
            row = self.rows[trial.number] = _internal_row(trial.params, self.search_space)
            return row


def _internal_row(params: dict[str, Any], search_space: dict[str, BaseDistribution]) -> tuple | None:
    if not search_space.keys() <= params.keys():
        return None
    return tuple(distribution.to_internal_repr(params[name]) for name, distribution in search_space.items())


class IncrementalTPESampler(optuna.samplers.TPESampler):
    """``TPESampler`` (same arguments, same proposals) whose group decomposition and
    finished trials' internal values are kept between proposals (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._group_decomposed_search_space is not None:
            self._group_decomposed_search_space = _IncrementalGroups(self._group_decomposed_search_space._include_pruned)
        self._rows: dict[tuple[str, ...], _Rows] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_rows": {}}

    def _rows_for(self, search_space: dict[str, BaseDistribution]) -> _Rows:
        names = tuple(search_space)
        rows = self._rows.get(names)
        if rows is None or rows.search_space != search_space:
            rows = self._rows[names] = _Rows(search_space)
        return rows

    def _get_internal_repr(self, trials: list[FrozenTrial], search_space: dict[str, BaseDistribution],
                           study: optuna.Study) -> dict[str, np.ndarray]:
        cached = self._rows_for(search_space)
        rows = [cached.row(trial) if trial.state.is_finished()  # a running trial (constant liar) is still being set
                else _internal_row(self._get_params(trial, study), search_space) for trial in trials]
        columns = list(zip(*(row for row in rows if row is not None))) or [()] * len(search_space)
        return {name: np.asarray(column) for name, column in zip(search_space, columns)}
