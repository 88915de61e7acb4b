"""Knowledge of earlier searches, and transfer from it to a new one (issue 13).

The **knowledge store** is a standard Optuna storage (``--knowledge URL``; the default is an
SQLite file in the user cache). Each finished search is one study in it, named
``knowledge/NAME``, holding three things as study attributes and trials:

* the fingerprint of its dataset (:class:`Fingerprint`): size, degree, feature width,
  classes, task, label homophily of the training nodes, clustering;
* its space (name and a digest of the space's content: knowledge transfers only between
  searches of the same space);
* its completed trials: parameters, canonical id and validation score (larger is better).

A new search asks :func:`transfer_for` for a :class:`Transfer`: the earlier searches of its
space ranked by fingerprint distance, the closest ``SOURCES`` kept. Its first proposals are
their best architectures (queued as trials, so they count as queries and none is asked
twice), and a strategy with a surrogate takes the sources' scores as a prior
(``PredictorSearch``). The run records which searches it started from (study attribute
``knowledge``), so that a resumed run uses the same ones.

For the ``nas_bench_graph`` presets the package ships knowledge built from the benchmark's
own tables (:func:`benchmark_entries`, from :mod:`evaluators.nas_bench_graph`): a benchmark
search on dataset X transfers from the other datasets and never reads X's table.

This is written here because no installable package does it: DesiGNN's knowledge base is a
research script over NAS-Bench-Graph only, and Optuna, SMAC, HEBO and syne-tune have warm
starts only from trials of the same objective, not a store ranked by data similarity.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import optuna
from optuna.trial import TrialState

from graphnas.evaluators import nas_bench_graph
from graphnas.evaluators.evaluator import EVALUATORS
from graphnas.search_spaces import SearchSpace

log = logging.getLogger(__name__)

PREFIX = "knowledge/"  # study names of the store
KNOWLEDGE_ATTR = "knowledge"  # study attribute of a run: the searches it started from
SOURCES = 3  # closest earlier searches a transfer uses
FIRST_PROPOSALS = 8  # proposals taken from the knowledge before the strategy's own, at most
# ... and never more than this share of the budget: the strategy the user named proposes the rest
# (a Cora search of 8 trials was 4 references and 4 replays, and its strategy proposed nothing)
REPLAY_SHARE = 0.25
# Sources farther than this (rank_sources' distance: the RMS over the fingerprint's coordinates
# of the difference in units of their spread) are not used. Among NAS-Bench-Graph's datasets the
# three closest of each lie within 1.4 (pubmed: citeseer 0.80, cora 0.92, computers 1.21; arxiv
# 1.22-1.36); a synthetic SBM graph seeded a Cora search from 2.03.
MAX_DISTANCE = 1.5


def replay_count(trials: int, room: int) -> int:
    """Trials queued from the knowledge store in a search of ``trials`` with ``room`` left after
    its references: FIRST_PROPOSALS at most, and at most REPLAY_SHARE of the budget."""
    return max(0, min(FIRST_PROPOSALS, room, math.ceil(REPLAY_SHARE * trials)))
MIN_HOMOPHILY_EDGES = 30  # fewer edges between training nodes give a homophily of std error > 0.09
CLUSTERING_SAMPLE = 5000  # nodes (or graphs) the clustering coefficient is averaged over


def default_url() -> str:
    """$GRAPHNAS_KNOWLEDGE (a URL, or ``none``), or an SQLite file next to the dataset cache."""
    from graphnas.evaluators.datasets import default_cache_dir

    return os.environ.get("GRAPHNAS_KNOWLEDGE") or f"sqlite:///{default_cache_dir() / 'knowledge.db'}"


def space_digest(space: SearchSpace) -> str:
    """Digest of a space's content: knowledge transfers between searches of one space."""
    return space.digest()


# --- fingerprints -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fingerprint:
    """What a dataset looks like, for finding the earlier searches closest to it. For graph
    tasks ``nodes`` and ``edges`` are means per graph. ``edges`` counts both directions.
    ``homophily``: the fraction of edges between training nodes whose ends share a class
    (``None`` where there are too few such edges, or no classes); ``clustering``: the mean
    local clustering coefficient."""

    task: str
    nodes: float
    edges: float
    features: int
    classes: int
    graphs: int = 1
    homophily: Optional[float] = None
    clustering: Optional[float] = None

    @property
    def mean_degree(self) -> float:
        return self.edges / max(self.nodes, 1.0)

    def coordinates(self) -> dict[str, float]:
        """The numbers distances are measured on: logs of the sizes, the two ratios as they are."""
        out = {"log_nodes": math.log10(max(self.nodes, 1.0)), "log_degree": math.log10(max(self.mean_degree, 1e-3)),
               "log_features": math.log10(max(self.features, 1)), "log_classes": math.log10(max(self.classes, 1)),
               "log_graphs": math.log10(max(self.graphs, 1))}
        if self.homophily is not None:
            out["homophily"] = self.homophily
        if self.clustering is not None:
            out["clustering"] = self.clustering
        return out

    @classmethod
    def of_bundle(cls, bundle) -> "Fingerprint":
        """The fingerprint of a loaded dataset (``evaluators.datasets.DatasetBundle``); labels
        of validation and test nodes are never read."""
        info = bundle.info
        classes = info.num_outputs if "classification" in info.task else 0
        if bundle.graphs is None:
            data = bundle.data
            return cls(task=info.task, nodes=float(data.num_nodes), edges=float(data.edge_index.shape[1]),
                       features=info.num_features, classes=classes,
                       homophily=_train_homophily(data, bundle.splits.train) if classes else None,
                       clustering=_clustering([data]))
        graphs = bundle.graphs
        return cls(task=info.task, nodes=float(np.mean([g.num_nodes for g in graphs])),
                   edges=float(np.mean([g.edge_index.shape[1] for g in graphs])), features=info.num_features,
                   classes=classes, graphs=len(graphs), clustering=_clustering(graphs))


def _train_homophily(data, train) -> Optional[float]:
    import torch

    mask = torch.zeros(data.num_nodes, dtype=torch.bool)
    mask[train] = True
    src, dst = data.edge_index
    inner = mask[src] & mask[dst]
    if int(inner.sum()) < MIN_HOMOPHILY_EDGES:
        return None
    y = data.y.view(-1) if data.y.dim() > 1 and data.y.shape[-1] == 1 else data.y
    if y.dim() != 1:  # multi-label targets: no single class per node
        return None
    return float((y[src[inner]] == y[dst[inner]]).float().mean())


def _clustering(graphs: list) -> Optional[float]:
    """Mean local clustering coefficient (nodes of degree < 2 count 0, as in networkx) over
    at most :data:`CLUSTERING_SAMPLE` nodes of one graph, or graphs of many: triangles from
    the rows of A @ A, so it stays linear in the sample."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    if len(graphs) > 1:
        picks = rng.choice(len(graphs), size=min(len(graphs), 200), replace=False)
        values = [_clustering([graphs[i]]) for i in picks]
        return float(np.mean([v for v in values if v is not None])) if values else None
    data = graphs[0]
    n = data.num_nodes
    if n == 0 or data.edge_index.shape[1] == 0:
        return 0.0
    ei = data.edge_index.cpu().numpy()
    a = sp.coo_matrix((np.ones(ei.shape[1]), (ei[0], ei[1])), shape=(n, n)).tocsr()
    a = ((a + a.T) > 0).astype(np.float64)
    a.setdiag(0)
    a.eliminate_zeros()
    rows = rng.choice(n, size=min(n, CLUSTERING_SAMPLE), replace=False) if n > CLUSTERING_SAMPLE else np.arange(n)
    sub = a[rows]
    deg = np.asarray(sub.sum(1)).ravel()
    closed = np.asarray((sub @ a).multiply(sub).sum(1)).ravel()  # 2 x triangles at each node
    return float(np.where(deg > 1, closed / np.maximum(deg * (deg - 1), 1), 0.0).mean())


def rank_sources(target: Fingerprint, candidates: list[tuple[str, Fingerprint]]) -> list[tuple[str, float]]:
    """``candidates`` of the target's task, closest first, with their distance: Euclidean over
    the coordinates both fingerprints have, each divided by its spread over the target and
    all candidates (so no unit dominates), averaged over the coordinates compared."""
    same = [(name, fp) for name, fp in candidates if fp.task == target.task]
    if not same:
        return []
    points = [target.coordinates()] + [fp.coordinates() for _, fp in same]
    keys = set(points[0])
    spread = {k: max(float(np.std([p[k] for p in points if k in p])), 0.05) for k in keys}
    out = []
    for (name, _), point in zip(same, points[1:]):
        shared = [k for k in keys if k in point]
        d = math.sqrt(sum(((point[k] - points[0][k]) / spread[k]) ** 2 for k in shared) / max(len(shared), 1))
        out.append((name, d))
    return sorted(out, key=lambda item: (item[1], item[0]))


# --- entries and the store ------------------------------------------------------------------
@dataclass(frozen=True)
class KnownTrial:
    """One finished trial of an earlier search: its parameters, the canonical id of its
    architecture, its validation score signed so that larger is better."""

    params: dict[str, Any]
    key: str
    score: float


@dataclass
class KnowledgeEntry:
    """One earlier search: where it ran, on what data, over which space, and its trials (best
    first)."""

    name: str
    dataset: str
    space: str
    space_digest: str
    fingerprint: Fingerprint
    source: str  # the run directory, or the benchmark it was built from
    metric: str
    trials: list[KnownTrial] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.trials = sorted(self.trials, key=lambda t: -t.score)

    def scores(self) -> dict[str, float]:
        """Canonical id -> rank score in (0, 1]: 1 for the best trial, 1/n for the worst."""
        n = len(self.trials)
        out: dict[str, float] = {}
        for i, trial in enumerate(self.trials):
            out.setdefault(trial.key, 1.0 - i / n)
        return out

    def summary(self) -> dict[str, Any]:
        best = self.trials[0].score if self.trials else None
        return {"name": self.name, "dataset": self.dataset, "space": self.space, "trials": len(self.trials),
                "best": best, "metric": self.metric, "source": self.source, **asdict(self.fingerprint)}


class KnowledgeStore:
    """The store at ``url`` (any Optuna storage URL, ``journal:///PATH`` included)."""

    def __init__(self, url: str) -> None:
        from graphnas.results.store import open_storage

        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.storage = open_storage(url)

    def names(self) -> list[str]:
        return sorted(n[len(PREFIX):] for n in optuna.get_all_study_names(self.storage) if n.startswith(PREFIX))

    def entries(self, space: Optional[SearchSpace] = None) -> list[KnowledgeEntry]:
        """Every entry, or those of ``space`` (same name and content)."""
        digest = space_digest(space) if space is not None else None
        out = []
        for summary in optuna.get_all_study_summaries(self.storage, include_best_trial=False):
            if not summary.study_name.startswith(PREFIX):
                continue
            attrs = summary.user_attrs
            if digest is not None and (attrs.get("space") != space.name or attrs.get("space_digest") != digest):
                continue
            out.append(self._entry(optuna.load_study(study_name=summary.study_name, storage=self.storage)))
        return sorted(out, key=lambda e: e.name)

    def get(self, name: str) -> KnowledgeEntry:
        if name not in self.names():
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"the knowledge store {self.url} has no entry {name!r}; it has: {known}")
        return self._entry(optuna.load_study(study_name=PREFIX + name, storage=self.storage))

    def add(self, entry: KnowledgeEntry, distributions: dict[str, dict]) -> str:
        """Store ``entry`` (its name made unique); ``distributions``: per trial key, the Optuna
        distributions of its parameters. Returns the name it was stored under."""
        name = self._unique(entry.name)
        study = optuna.create_study(study_name=PREFIX + name, storage=self.storage, direction="maximize")
        attrs = {"dataset": entry.dataset, "space": entry.space, "space_digest": entry.space_digest,
                 "fingerprint": asdict(entry.fingerprint), "source": entry.source, "metric": entry.metric}
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        study.add_trials([optuna.trial.create_trial(params=t.params, distributions=distributions[t.key],
                                                    value=t.score, user_attrs={"key": t.key})
                          for t in entry.trials])
        return name

    def remove(self, name: str) -> None:
        if name not in self.names():
            raise KeyError(f"the knowledge store {self.url} has no entry {name!r}; it has: "
                           f"{', '.join(self.names()) or 'none'}")
        optuna.delete_study(study_name=PREFIX + name, storage=self.storage)

    def _unique(self, name: str) -> str:
        taken = set(self.names())
        if name not in taken:
            return name
        return next(f"{name}-{i}" for i in itertools.count(2) if f"{name}-{i}" not in taken)

    def _entry(self, study: optuna.Study) -> KnowledgeEntry:
        attrs = study.user_attrs
        trials = [KnownTrial(dict(t.params), t.user_attrs["key"], float(t.value))
                  for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        return KnowledgeEntry(name=study.study_name[len(PREFIX):], dataset=attrs["dataset"], space=attrs["space"],
                              space_digest=attrs["space_digest"], fingerprint=Fingerprint(**attrs["fingerprint"]),
                              source=attrs["source"], metric=attrs["metric"], trials=trials)


def open_store(url: Optional[str]) -> Optional[KnowledgeStore]:
    """The store of ``--knowledge``: ``None`` for ``none``; the default store for ``None``/``auto``."""
    url = default_url() if url in (None, "auto") else url
    return None if url == "none" else KnowledgeStore(url)


def entry_of_run(run_dir: str | Path) -> tuple[KnowledgeEntry, dict[str, dict]]:
    """The knowledge a finished run holds, and its trials' distributions (for the store)."""
    from graphnas.results.store import RunStore

    store, study = RunStore.open(run_dir)
    config = store.read_config()
    if not EVALUATORS.entry(config.get("evaluator", "train")).can("trains"):
        raise ValueError(f"{run_dir}: a run answered by a table ({config['evaluator']}) is not added: the "
                         "benchmark's knowledge ships with graphnas")
    fingerprint = study.user_attrs.get("fingerprint") or asdict(_fingerprint_of_config(config))
    space = SearchSpace.load(config["space"]) if "space_spec" not in config else _space_of(config)
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    trials, distributions = [], {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if not math.isfinite(trial.values[0]):
            continue
        key = space.canonical_id(space.suggest(optuna.trial.FixedTrial(trial.params)))
        trials.append(KnownTrial(dict(trial.params), key, sign * trial.values[0]))
        distributions[key] = trial.distributions
    entry = KnowledgeEntry(name=Path(run_dir).resolve().name, dataset=str(study.user_attrs.get("dataset")),
                           space=space.name, space_digest=space_digest(space), fingerprint=Fingerprint(**fingerprint),
                           source=str(Path(run_dir).resolve()), metric=str(study.user_attrs.get("metric", "metric")),
                           trials=trials)
    return entry, distributions


def _fingerprint_of_config(config: dict) -> Fingerprint:
    """The fingerprint of a run from before fingerprints were recorded: its dataset, loaded
    as the run loaded it (from the processed cache when it is still there)."""
    from graphnas.evaluators.datasets import load_dataset

    bundle = load_dataset(config["dataset"], config.get("data_root"),
                          Path(config["cache_dir"]) if config.get("cache_dir") else None,
                          dataset_args=config.get("dataset_args") or {})
    return Fingerprint.of_bundle(bundle)


def _space_of(config: dict) -> SearchSpace:
    """The space a run searched, from its recorded content (the file may have moved)."""
    from graphnas.search_spaces.schema import SpaceSpec

    return SearchSpace(SpaceSpec.model_validate(config["space_spec"]), source=config.get("space_source"))


def register_run(store: KnowledgeStore, run_dir: str | Path) -> str:
    """Add a finished run to the store, replacing the entry it had there (a resumed run that
    finished again); returns the name it is stored under."""
    entry, distributions = entry_of_run(run_dir)
    if not entry.trials:
        raise ValueError(f"{run_dir}: the run has no completed trial to learn from")
    for old in store.entries():
        if old.source == entry.source:
            store.remove(old.name)
    return store.add(entry, distributions)


# --- knowledge shipped for NAS-Bench-Graph (evaluators.nas_bench_graph) -------------------------
NAS_BENCH_GRAPH_FINGERPRINTS = {name: Fingerprint(**figures) for name, figures in nas_bench_graph.PUBLISHED_FIGURES.items()}


def benchmark_entries(space: SearchSpace, exclude: str) -> list[KnowledgeEntry]:
    """One entry per NAS-Bench-Graph dataset other than ``exclude``, every architecture of
    its table that is in ``space`` as a trial. ``exclude``'s table is never read."""
    return [KnowledgeEntry(name=f"nas-bench-graph/{t.dataset}", dataset=t.dataset, space=space.name,
                           space_digest=space_digest(space), fingerprint=NAS_BENCH_GRAPH_FINGERPRINTS[t.dataset],
                           source="NAS-Bench-Graph tables (Qin et al. 2022)", metric=t.metric,
                           trials=[KnownTrial(params, key, value) for params, key, value in t.cells])
            for t in nas_bench_graph.tables(space, exclude)]


# --- transfer -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Origin:
    """Where a transfer's sources are read from, so that a pickled strategy (pickled after
    every proposal) carries this and not the sources' trials."""

    url: Optional[str]  # the knowledge store; None: none
    space: SearchSpace
    benchmark_dataset: Optional[str] = None  # a NAS-Bench-Graph search on it: the other tables

    def entries(self) -> dict[str, KnowledgeEntry]:
        out = {e.name: e for e in KnowledgeStore(self.url).entries(self.space)} if self.url else {}
        if self.benchmark_dataset is not None:
            out.update({e.name: e for e in benchmark_entries(self.space, exclude=self.benchmark_dataset)})
        return out


class Transfer:
    """What a search takes from the knowledge: its sources (closest first, by name) and their
    distances. ``initial_proposals`` are its first trials; ``prior`` and ``features`` give a
    surrogate the sources' view of any architecture (a rank score in [0, 1], 0 where a
    source never evaluated it)."""

    def __init__(self, record: list[dict[str, Any]], origin: Origin,
                 sources: Optional[list[KnowledgeEntry]] = None) -> None:
        self.record, self.origin = record, origin  # record: describe() of the sources
        self._sources, self._scores = sources, None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_sources": None, "_scores": None}  # read again on first use

    @property
    def sources(self) -> list[KnowledgeEntry]:
        if self._sources is None:
            available = self.origin.entries()
            missing = [r["name"] for r in self.record if r["name"] not in available]
            if missing:
                log.warning("the run started from knowledge no longer in the store (%s): going on without it",
                            ", ".join(missing))
            self._sources = [available[r["name"]] for r in self.record if r["name"] in available]
        return self._sources

    @property
    def scores(self) -> list[dict[str, float]]:
        if self._scores is None:
            self._scores = [entry.scores() for entry in self.sources]
        return self._scores

    def prior(self, key: str) -> float:
        """The mean rank score of ``key`` over the sources."""
        return float(np.mean([s.get(key, 0.0) for s in self.scores])) if self.scores else 0.0

    def features(self, keys: Iterable[str]) -> np.ndarray:
        """(len(keys), len(sources)): each source's rank score of each architecture."""
        return np.array([[s.get(k, 0.0) for s in self.scores] for k in keys]).reshape(-1, len(self.scores))

    def ranked_by_prior(self) -> list[KnownTrial]:
        """Every architecture some source evaluated, by mean rank score over the sources."""
        pool = {t.key: t for entry in self.sources for t in entry.trials}
        return sorted(pool.values(), key=lambda t: (-self.prior(t.key), t.key))

    def initial_proposals(self, count: int = FIRST_PROPOSALS, skip: Iterable[str] = ()) -> list[KnownTrial]:
        """The first ``count`` proposals, distinct: in turn the best not yet proposed by the
        pooled prior (what the sources agree on), then by each source (its own best)."""
        lists = [self.ranked_by_prior()] + [entry.trials for entry in self.sources]
        taken, out = set(skip), []
        cursors = [0] * len(lists)
        while len(out) < count and any(c < len(lst) for c, lst in zip(cursors, lists)):
            for i, lst in enumerate(lists):
                while cursors[i] < len(lst) and lst[cursors[i]].key in taken:
                    cursors[i] += 1
                if cursors[i] < len(lst) and len(out) < count:
                    out.append(lst[cursors[i]])
                    taken.add(lst[cursors[i]].key)
        return out


def transfer_for(fingerprint: Fingerprint, origin: Origin, exclude_source: Optional[str] = None,
                 sources: int = SOURCES) -> Optional[Transfer]:
    """The transfer of a new search over ``origin.space`` on data like ``fingerprint``: the
    store's entries of the same space (not those of ``exclude_source``, the run itself), and
    for a NAS-Bench-Graph search the shipped knowledge of the other datasets. ``None`` when
    nothing is known of this space."""
    own = str(Path(exclude_source).resolve()) if exclude_source else None
    entries = {name: e for name, e in origin.entries().items() if e.trials and e.source != own}
    ranked = [(name, d) for name, d in rank_sources(fingerprint, [(name, e.fingerprint) for name, e in entries.items()])
              if d <= MAX_DISTANCE][:sources]
    if not ranked:
        return None
    chosen = [entries[name] for name, _ in ranked]
    record = [{"name": e.name, "dataset": e.dataset, "distance": round(d, 4), "trials": len(e.trials)}
              for e, (_, d) in zip(chosen, ranked)]
    return Transfer(record, origin, chosen)


def queue_transfer(study: optuna.Study, transfer: Transfer, count: int, skip: Iterable[str] = ()) -> int:
    """Queue the transfer's first ``count`` proposals as trials of ``study`` (tagged
    ``knowledge``), skipping canonical ids in ``skip`` (references already queued); returns
    how many were queued."""
    proposals = transfer.initial_proposals(count, skip)
    for known in proposals:
        study.enqueue_trial(known.params, user_attrs={"knowledge": known.key})
    return len(proposals)
