"""Backends: where a search's black-box trials run.

A backend is the third concept of a search beside its strategy (what to try,
:mod:`nas.strategies`) and its evaluator (how a candidate is measured,
:mod:`evaluators.evaluator`). ``local`` runs the trials in the search's own process, or in
``--workers N`` spawned processes sharing the study; ``ray`` runs them as Ray Tune trials on
this machine or a cluster. Every backend tells its trials through :func:`nas.outcome.tell`, so
a run directory reads the same whichever ran it.

Lifecycle, as :class:`nas.search.Search` drives it:

1. ``BACKENDS.entry(name)``: an unknown name is refused, listing the registered ones.
2. :meth:`Backend.check` (a classmethod, before any work): the run's strategy, evaluator and
   pruner against what the entry declared at registration.
3. :meth:`Backend.sole_writer`: whether one process alone writes the study. Only then does
   the search keep the study in memory, snapshot its sampler after every proposal (so that a
   resumed run goes on exactly), and count its budget without a lock file.
4. :meth:`Backend.run`, once per run (fresh, resumed or joined): the remaining budget's trials.
   Differentiable strategies have their own run and need ``differentiable``.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from filelock import ReadWriteLock, Timeout

from graphnas.nas.pruners import MULTI_OBJECTIVE_PRUNERS
from graphnas.search_spaces.registry import Entry, Registry

if TYPE_CHECKING:
    import optuna

    from graphnas.evaluators.evaluator import Evaluator
    from graphnas.nas.search import Observer, Search, SearchConfig
    from graphnas.results.objectives import Objective


class Backend:
    """Runs the trials of one search (see the module docstring for the lifecycle)."""

    def __init__(self, config: "SearchConfig") -> None:
        self.config = config

    @classmethod
    def check(cls, entry: Entry, config: "SearchConfig", differentiable: bool, trains: bool) -> None:
        """Refuse, before any work, a run that the entry's declared capabilities exclude."""
        if differentiable and not entry.can("differentiable"):
            raise ValueError(f"--backend {entry.name} runs black-box strategies (not darts, gdas or darts+tpe): "
                             f"use --backend {' or '.join(BACKENDS.with_capability('differentiable'))}")
        if not trains and not entry.can("tabular"):
            raise ValueError(f"--backend {entry.name} runs strategies that train their candidates (not tabular "
                             f"evaluators): use --backend {' or '.join(BACKENDS.with_capability('tabular'))}")
        if "," in config.objectives and config.pruner not in MULTI_OBJECTIVE_PRUNERS \
                and not entry.can("multi_objective_pruning"):
            raise ValueError(f"--pruner {config.pruner}: Optuna prunes single-objective searches only, and "
                             "multi-objective ones are pruned by the median or successive-halving rule on the metric "
                             "objective: use --pruner median or asha, --objectives metric, or --backend "
                             + " or ".join(f"{name} ({BACKENDS.entry(name).capabilities['multi_objective_pruning']})"
                                           for name in BACKENDS.with_capability("multi_objective_pruning")))

    def sole_writer(self) -> bool:
        """Whether this process alone writes the run's study."""
        return False

    def run(self, search: "Search", study: "optuna.Study", evaluator: "Evaluator", objectives: list["Objective"],
            observer: Optional["Observer"]) -> None:
        raise NotImplementedError


BACKENDS: Registry[type[Backend]] = Registry("backend", capabilities={
    "differentiable": "runs the supernet search of a differentiable strategy",
    "tabular": "runs searches answered by a tabular evaluator (no training)",
    "multi_objective_pruning": "how it stops multi-objective trials early, where it can",
    "parallel": "runs several trials at a time"}, required=("differentiable", "tabular", "parallel"))


@BACKENDS.register("local", "This process, or --workers N spawned processes sharing the study (one thread each "
                   "by default)", differentiable=True, tabular=True, parallel=True)
class LocalBackend(Backend):
    def sole_writer(self) -> bool:
        return self.config.workers == 1

    def run(self, search, study, evaluator, objectives, observer) -> None:
        if self.config.workers > 1:
            self.run_workers(search, study, observer)
        # one process, or after the workers: the retries of trials whose worker died
        search.runner.loop(study, evaluator, objectives, observer)

    def run_workers(self, search, study, observer) -> None:
        """Start ``workers`` processes on the study, report progress while they run, then fail
        the trials of any worker that died (the journal storage has no heartbeat). Workers die
        with this process (:func:`nas.backends.become_worker`) and leave Ctrl-C to it."""
        from graphnas.nas.runner import count_finished
        from graphnas.nas.search import run_worker  # the worker builds a Search of its own

        ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        # the run directory by name: a worker must not stamp a default one of its own
        config = search.config.model_copy(update={"run_dir": str(search.run_dir)}).model_dump_json()
        procs = [ctx.Process(target=run_worker, args=(config, i), daemon=False) for i in range(search.config.workers)]
        try:
            with sigint_blocked():
                for p in procs:
                    p.start()
            seen = -1
            while any(p.is_alive() for p in procs):
                # a worker's exit wakes the driver at once (a fixed sleep added up to half a second
                # to every run's end); otherwise progress is read twice a second
                multiprocessing.connection.wait([p.sentinel for p in procs if p.is_alive()], timeout=0.5)
                done = count_finished(study)
                if observer and done != seen:
                    seen = done
                    search.runner.observe(study, observer, "COMPLETE")
        finally:  # Ctrl-C or an error here: the workers stop now, their trials are left for --resume
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                if p.pid is not None:  # started
                    p.join()
        search.store.fail_stale_trials(study)


@BACKENDS.register("ray", "Ray Tune trials on this machine or a cluster (--address), ASHA early stopping",
                   differentiable=False, tabular=False, parallel=True, multi_objective_pruning="ASHA")
class RayBackend(Backend):
    def run(self, search, study, evaluator, objectives, observer) -> None:
        from graphnas.nas.ray_backend import run_ray  # Ray is an optional extra

        run_ray(search, study, evaluator, objectives)


# --- local workers: they live and die with the search that started them ------------------
# Each worker holds this lock shared for as long as it lives (the OS drops it when the process
# ends, however it ends); a search that claims the run directory must get it exclusively, so a
# --resume beside a worker still training is refused instead of failing that worker's trials.
WORKERS_LOCK = "workers.lock"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block Ctrl-C in this thread meanwhile: processes started meanwhile inherit the mask, so
    a Ctrl-C while a worker still imports torch (seconds) does not print its traceback; the
    worker then ignores SIGINT (:func:`become_worker`). A Ctrl-C that arrives meanwhile
    reaches this process afterwards, not lost."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    # the first spawned process starts multiprocessing's resource tracker, and that unblocks
    # SIGINT as it ends (its own mask dance): started now, before ours, it cannot undo it
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def become_worker(run_dir: Path) -> Optional[ReadWriteLock]:
    """Called first in a local worker process: leave Ctrl-C to the driver (it prints one line
    and stops the workers), hold :data:`WORKERS_LOCK`, and die with the driver. Returns the
    lock, to be kept referenced for the worker's life (None outside a worker process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked by sigint_blocked; now ignored, and a pending one dropped
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    driver = multiprocessing.parent_process()
    if driver is None:  # called in a process of its own: nothing to die with
        return None
    lock = ReadWriteLock(run_dir / WORKERS_LOCK, is_singleton=False)
    lock.acquire_read()
    if sys.platform.startswith("linux"):  # the kernel kills this process when the driver dies, even mid-trial
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # Only now, with the lock held and the death signal set: a driver that died before (while
    # this process imported torch) sends no signal, and a resume may already have claimed the
    # directory; this worker must not start a trial then.
    if os.getppid() != driver.pid or multiprocessing.connection.wait([driver.sentinel], timeout=0):
        os._exit(1)
    # Portable fallback (macOS, Windows) and a second line on Linux: the driver's end of a pipe
    # closes when it dies, however it dies.
    threading.Thread(target=_exit_with_driver, args=(driver.sentinel,), daemon=True,
                     name="graphnas-driver-watch").start()
    return lock


def _exit_with_driver(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)  # at once: a trial left RUNNING is failed and queued again by --resume


def refuse_live_workers(run_dir: Path) -> None:
    """Raise ValueError (one line) if a worker of an earlier search still runs in ``run_dir``
    (its driver was killed: workers die with it, this closes the moment in between)."""
    path = run_dir / WORKERS_LOCK
    if not path.is_file():  # no search with --workers ever ran here
        return
    lock = ReadWriteLock(path, is_singleton=False)
    try:
        lock.acquire_write(blocking=False)
    except Timeout:
        raise ValueError(f"{run_dir}: worker processes of an earlier search are still running in it (they hold "
                         f"{WORKERS_LOCK}); wait for them to end before --resume") from None
    finally:
        lock.close()
