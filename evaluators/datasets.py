"""Datasets by name: where the files are, how they are split, what is precomputed.

A data root is laid out as PyG's loaders expect (``Planetoid/Cora/raw/ind.cora.x``), as
``../shared/datasets`` is. It comes from the ``data_root`` argument, else the
``GRAPHNAS_DATA`` variable, else ``<cache>/data``. PyG writes ``processed/`` next to
``raw/``; so that a read-only root (or a shared one) is never written to, raw files from
any root other than the cache's own are copied into ``<cache>/prepared/<root-hash>/``
first and processed there. Root runs as root in CI, so write permission cannot be trusted
to tell a read-only folder.

Encodings depend only on the graph: they are computed once per (dataset, encoding, k,
graph hash) and cached in ``<cache>/encodings``.
"""
from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Optional, TypeVar, Union

import torch
from filelock import FileLock
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.utils import degree, stochastic_blockmodel_graph

from graphnas.search_spaces import DataInfo
from graphnas.search_spaces.operators import ENCODING
from graphnas.evaluators.splits import Splits, from_masks, stratified_splits
from graphnas.search_spaces.registry import Registry

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset cannot be found or loaded; the message says what was searched."""


@dataclass(frozen=True)
class DatasetBundle:
    """A loaded dataset: what the model needs to know, splits and metric, and either one
    graph (``data``, node tasks; splits index nodes) or many (``graphs``, graph tasks;
    splits index graphs, and ``data`` is a batch of the first few, for shapes and export)."""

    name: str
    data: Data
    info: DataInfo
    splits: Splits
    metric: str = "accuracy"
    encodings: dict[str, int] = field(default_factory=dict)  # name -> precomputed k
    graphs: Optional[list[Data]] = None
    # a dataset's own fixed splits (the heterophily graphs' 10); ``splits`` is the one chosen
    split_sets: tuple[Splits, ...] = ()
    # what is derived from the data once per dataset, not per trial; copies made with
    # ``replace`` (a split, a fold, a feature norm) share it
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    def sparse_adjacency(self) -> Optional[Tensor]:
        """``data``'s graph as a sparse ``adj_t`` (``search_spaces.adjacency.sparse_adjacency``,
        ``None`` where it does not apply), built on the first call. Kept with the
        ``edge_index`` it was built from: a copy with other edges builds its own."""
        from graphnas.search_spaces.adjacency import sparse_adjacency

        edge_index = self.data.edge_index
        built = self.derived.get("adj_t")
        if built is None or built[0] is not edge_index:
            built = self.derived["adj_t"] = (edge_index, sparse_adjacency(edge_index, self.data.num_nodes))
        return built[1]


@dataclass(frozen=True)
class Loaded:
    """What a loader returns: one graph (a node task; ``splits`` index its nodes) or a list of
    graphs (a graph task; they index graphs), and what it knows of them beyond what the
    graphs say: DataInfo or bundle fields (``task``, ``metric``, cardinalities,
    ``node_features``)."""

    data: Union[Data, list[Data]]
    splits: Splits
    meta: dict = field(default_factory=dict)
    task: Optional["TaskInference"] = None  # a source's: the task its data showed, and how
    split_sets: tuple[Splits, ...] = ()  # every fixed split of a dataset that has several


@dataclass(frozen=True)
class TaskInference:
    """A dataset's task and how it was found: ``declared by cora``, ``inferred from g.pt: one
    Data, integer labels``, ``as given (--task)``. The CLI's banner says it."""

    task: str
    how: str


Loader = Callable[[Path, Path], Loaded]  # (data root, cache dir) -> Loaded
DATASETS: Registry[Loader] = Registry("dataset", capabilities={"task": "the task its data is for"})


@dataclass(frozen=True)
class DataSource:
    """A kind of dataset name beyond the registered ones (a ``.pt`` file, a dataset class by
    dotted path): whether a name is of this kind, and how to load it from its name, its
    keyword arguments, the data root, the cache and the task asked for (``None``: the one
    its data shows, :func:`infer_task`)."""

    matches: Callable[[str], bool]
    load: Callable[[str, dict, Path, Path, Optional[str]], Loaded]


# Filled by the modules that define the sources (evaluators.external), as the molecular
# datasets fill DATASETS: this module imports none of them.
DATA_SOURCES: Registry[DataSource] = Registry("data source")


# The preset a search gets without --space, by the task its dataset declared at registration.
DEFAULT_SPACES = {"node_classification": "node", "graph_classification": "graph"}
FALLBACK_SPACE = "tiny"


def dataset_task(dataset: str) -> Optional[str]:
    """The task a registered dataset declared at registration; ``None`` for others (a file or
    a class shows its task when loaded: :func:`resolve_task`)."""
    return DATASETS.entry(dataset).capabilities.get("task") if dataset in DATASETS else None


def default_space(dataset: str, task: Optional[str] = None) -> str:
    """The space made for the task (``task``, else what ``dataset`` declared): ``node`` for node
    classification, ``graph`` for graph classification, else ``tiny``."""
    return DEFAULT_SPACES.get(task or dataset_task(dataset), FALLBACK_SPACE)


def infer_task(obj: Union[Data, list[Data]], source: str) -> TaskInference:
    """One ``Data`` is a node task, a list a graph task; integer labels are classes, float
    ones regression targets (a float node target is refused: no node regression here)."""
    node = isinstance(obj, Data)
    y = obj.y if node else obj[0].y
    if y is None:
        raise DatasetError(f"dataset {source}: {'the graph has no y (node labels)' if node else 'every graph needs y (its label or target)'}")
    integer = not y.is_floating_point()
    shape = "one Data" if node else f"a list of {len(obj)} Data"
    if node and not integer:
        raise DatasetError(f"dataset {source}: one Data with float labels is node regression, which graphnas does not "
                           "train; save integer class labels (or pass --task node_classification if they are whole)")
    task = f"{'node' if node else 'graph'}_{'classification' if integer else 'regression'}"
    return TaskInference(task, f"inferred from {source}: {shape}, {'integer labels' if integer else 'float targets'}")


def check_task_shape(task: str, obj: Union[Data, list[Data]], source: str) -> None:
    """A node task needs one graph, a graph task a list of them."""
    node = isinstance(obj, Data)
    if task.startswith("node_") != node:
        raise DatasetError(f"dataset {source}: task {task} needs {'one Data' if task.startswith('node_') else 'a list of Data'}, "
                           f"the data is {'one Data' if node else f'a list of {len(obj)} Data'}")


def resolve_task(dataset: str, task: Optional[str] = None, data_root: Optional[str | Path] = None,
                 cache_dir: Optional[Path] = None, dataset_args: Optional[dict] = None) -> Optional[TaskInference]:
    """The dataset's task before the search picks its space and references: ``task`` as given,
    a registered dataset's declared task, or what a file's or class's data shows (loaded
    once here, checked as the search will load it). ``None``: a registered dataset that
    declared none."""
    if task is not None:
        check_known_task(task)
        return TaskInference(task, "as given (--task)")
    if dataset in DATASETS:
        declared = dataset_task(dataset)
        return TaskInference(declared, f"declared by dataset {dataset}") if declared else None
    if not any(s.factory.matches(dataset) for s in DATA_SOURCES):
        return None  # a benchmark table's name, or unknown: the load says which
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    root = resolve_data_root(data_root, cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _dataset_lock(dataset, cache_dir):
        return _source_of(dataset, root).load(dataset, dataset_args or {}, root, cache_dir, None).task


def check_known_task(task: str) -> None:
    from graphnas.search_spaces.builder import TASKS

    if task not in TASKS:
        raise DatasetError(f"task {task!r}: expected one of {', '.join(TASKS)}")


# --- safe loading of saved graphs ----------------------------------------------------------

def _pyg_safe_globals() -> list:
    """What a ``torch.save`` of ``Data`` objects (one, or a list) needs beyond tensors:
    PyG's storage classes. Recent PyG registers Data itself for weights-only loading, but
    not these."""
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    return [Data, DataEdgeAttr, DataTensorAttr, GlobalStorage]


def load_graphs(path: Path):
    """``torch.load`` of tensors and ``Data`` objects only: a file that would unpickle
    anything else (code to run) is refused (``pickle.UnpicklingError``), a user's file or
    a cache of ours alike."""
    with torch.serialization.safe_globals(_pyg_safe_globals()):
        return torch.load(path, weights_only=True)


# --- roots and caches -------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def dataset_slug(name: str) -> str:
    """A file or folder name for ``name`` in the cache and in ``runs/``, never a path out of
    them: a registered name or a class's dotted path as it is, a file (``../../w2/t.pt``)
    as its stem plus a short hash of its resolved path (``t-1a2b3c4d``), so two files of
    the same name in different folders differ."""
    if name in DATASETS or (not name.endswith(".pt") and _UNSAFE.search(name) is None and name.strip(".")):
        return name
    path = Path(name).expanduser()
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    stem = _UNSAFE.sub("_", path.stem).strip("._") or "dataset"
    return f"{stem}-{digest}"

def default_cache_dir() -> Path:
    return Path(os.environ.get("GRAPHNAS_CACHE") or Path.home() / ".cache" / "graphnas")


def resolve_data_root(data_root: Optional[str | Path], cache_dir: Path) -> Path:
    if data_root:
        return Path(data_root).expanduser().resolve()
    if os.environ.get("GRAPHNAS_DATA"):
        return Path(os.environ["GRAPHNAS_DATA"]).expanduser().resolve()
    return (cache_dir / "data").resolve()


def working_root(root: Path, cache_dir: Path, subdir: str, dataset: str, expected: str) -> Path:
    """Where PyG may write for ``root/subdir``: the root itself if it is the cache's own
    (PyG may download there), else a copy of its raw files under the cache. A missing
    ``root/subdir/raw`` of another root is an error naming the path and ``expected``."""
    own = (cache_dir / "data").resolve()
    if root == own:
        return root
    raw = root / subdir / "raw"
    if not raw.is_dir():
        raise DatasetError(f"dataset {dataset!r}: raw files not found in {raw} (data root {root}); expected "
                           f"{subdir}/raw/{expected} as PyG lays them out. Known datasets: {', '.join(DATASETS.names())}")
    key = hashlib.sha256(str(root).encode()).hexdigest()[:10]
    work = cache_dir / "prepared" / key
    dst = work / subdir / "raw"
    if dst.is_dir() and _listing(dst) != _listing(raw):
        # the source changed since it was copied (files added to an empty raw/, replaced):
        # copy it again, and drop what PyG processed from the old copy
        log.info("dataset %r: %s differs from its source %s; copying it again", dataset, dst, raw)
        shutil.rmtree(dst)
        shutil.rmtree(dst.with_name("processed"), ignore_errors=True)
    if not dst.is_dir():  # copied aside, then renamed: a reader sees all files or none
        tmp = dst.with_name(f"raw.{os.getpid()}.tmp")
        shutil.copytree(raw, tmp, dirs_exist_ok=True)
        tmp.rename(dst)
    return work


def _listing(folder: Path) -> dict[str, int]:
    """Relative file names and sizes under ``folder``, what PyG processed left out: enough to
    see that a copy is stale."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if p.is_file() and "processed" not in p.relative_to(folder).parts}


def copied_into_cache(source: Path, cache_dir: Path, dataset: str) -> Path:
    """A copy of the folder ``source`` (a dataset class's root outside the cache) under
    ``<cache>/prepared/<path-hash>/``, without what PyG processed there: the class
    processes into the copy and the user's folder is never written. Copied again when the
    source's files change; a missing source is an empty folder the class may fill."""
    source = source.expanduser().resolve()
    key = hashlib.sha256(str(source).encode()).hexdigest()[:10]
    dst = cache_dir.resolve() / "prepared" / key / (source.name or "root")
    if dst.is_dir() and source.is_dir() and _listing(dst) != _listing(source):
        log.info("dataset %r: %s differs from its source %s; copying it again", dataset, dst, source)
        shutil.rmtree(dst)
    if not dst.is_dir() and source.is_dir():  # copied aside, then renamed: a reader sees all files or none
        tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("processed"), dirs_exist_ok=True)
        tmp.rename(dst)
    return dst


def inside(path: Path, folder: Path) -> bool:
    return path.expanduser().resolve().is_relative_to(folder.resolve())


T = TypeVar("T")


def repairing(load: Callable[[], T], folder: Path, cache_dir: Path, dataset: str) -> T:
    """``load()``, and once more after deleting what PyG processed under ``folder`` when it
    fails: a process killed while PyG wrote ``processed/`` leaves a truncated file that
    every later load trips on, and PyG never processes again while the file exists (issue
    43). Only folders of the cache are deleted; elsewhere the error names the folder."""
    try:
        return load()
    except Exception as err:
        processed = sorted(p for p in folder.rglob("processed") if p.is_dir()) if folder.is_dir() else []
        if not processed:
            raise
        if not inside(folder, cache_dir):
            raise DatasetError(f"dataset {dataset!r}: loading {folder} failed ({type(err).__name__}: {err}); if a "
                               f"file of {processed[0]} is half-written, delete that folder") from err
        log.warning("dataset %r: loading failed (%s: %s); deleting %s and processing again", dataset,
                    type(err).__name__, err, ", ".join(map(str, processed)))
        for p in processed:
            shutil.rmtree(p)
        return load()


# --- loaders ----------------------------------------------------------------------------

def _planetoid(name: str) -> Loader:
    def load(root: Path, cache_dir: Path) -> Loaded:
        from torch_geometric.datasets import Planetoid

        raw = root / "Planetoid" / name / "raw"
        work = working_root(root, cache_dir, f"Planetoid/{name}", name.lower(), f"ind.{name.lower()}.*")
        try:
            data = repairing(lambda: Planetoid(str(work / "Planetoid"), name=name)[0], work / "Planetoid" / name,
                             cache_dir, name.lower())
        except Exception as err:  # PyG downloads missing files; offline that fails
            # where PyG worked (its copy, or the cache's own root) as well as the source: the
            # raw files are often fine and the failure is in what was processed from them
            raise DatasetError(f"dataset {name.lower()!r}: PyG could not load {work / 'Planetoid' / name} "
                               f"(raw files from {raw}): {type(err).__name__}: {err}") from err
        return Loaded(Data(x=data.x, edge_index=data.edge_index, y=data.y),
                      from_masks(data.train_mask, data.val_mask, data.test_mask))

    return load


for _name in ("Cora", "CiteSeer", "PubMed"):
    DATASETS.register(_name.lower(), f"Planetoid {_name}, public split (PyG)", task="node_classification")(
        _planetoid(_name))


@DATASETS.register("synthetic", "Embedded contextual SBM: 600 nodes, 5 classes, noisy features "
                   "(no download; an MLP reaches ~0.46 test accuracy, a 2-layer GCN ~0.88)",
                   task="node_classification")
def synthetic(root: Path, cache_dir: Path) -> Loaded:
    return Loaded(*contextual_sbm())


def contextual_sbm(num_nodes: int = 600, num_classes: int = 5, avg_degree: float = 8.0,
                   homophily: float = 0.75, num_features: int = 32, signal: float = 0.25,
                   seed: int = 0) -> tuple[Data, Splits]:
    """A contextual stochastic block model (Deshpande et al. 2018), generated in-process.

    Features are a class centroid scaled by ``signal`` plus unit noise: too noisy for a
    per-node MLP, while averaging over homophilous neighbours recovers the class. Split
    20/20/60 (train/val/test), seeded.
    """
    gen = torch.Generator().manual_seed(seed)
    y = (torch.arange(num_nodes) % num_classes)[torch.randperm(num_nodes, generator=gen)]
    sizes = [int((y == k).sum()) for k in range(num_classes)]
    block = num_nodes / num_classes
    probs = torch.full((num_classes, num_classes), avg_degree * (1 - homophily) / (num_nodes - block))
    probs.fill_diagonal_(avg_degree * homophily / block)
    with torch.random.fork_rng():  # PyG's generator draws from the global RNG
        torch.manual_seed(seed)
        edge_index = stochastic_blockmodel_graph(sizes, probs, directed=False)
    edge_index = torch.argsort(y, stable=True)[edge_index]  # block order -> node ids
    centroids = torch.randn(num_classes, num_features, generator=gen)
    x = signal * centroids[y] + torch.randn(num_nodes, num_features, generator=gen)
    perm = torch.randperm(num_nodes, generator=gen)
    n_train, n_val = int(0.2 * num_nodes), int(0.2 * num_nodes)
    splits = Splits(perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:])
    return Data(x=x, edge_index=edge_index, y=y), splits


@DATASETS.register("triangles", "Embedded graph regression: count the triangles of 600 random graphs "
                   "(no node features: structure only; random walks of length 3 see triangles, 1-WL does not)",
                   task="graph_regression")
def triangles(root: Path, cache_dir: Path) -> Loaded:
    return Loaded(*triangle_graphs())


def triangle_graphs(num_graphs: int = 600, seed: int = 0) -> tuple[list[Data], Splits]:
    """Random graphs (10-30 nodes, edge probability 0.1-0.3) whose target is their number of
    triangles, ``trace(A^3) / 6``; features are constant, so only structure can answer.
    Split 80/10/10, seeded."""
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(num_graphs):
        n = int(torch.randint(10, 31, (1,), generator=gen))
        p = 0.1 + 0.2 * float(torch.rand(1, generator=gen))
        upper = torch.triu(torch.rand(n, n, generator=gen) < p, diagonal=1)
        adj = (upper | upper.T).float()
        edge_index = adj.nonzero().T.contiguous()
        count = torch.trace(adj @ adj @ adj) / 6
        graphs.append(Data(x=torch.ones(n, 1), edge_index=edge_index, y=count.view(1)))
    perm = torch.randperm(num_graphs, generator=gen)
    a, b = int(0.8 * num_graphs), int(0.9 * num_graphs)
    return graphs, Splits(perm[:a].sort().values, perm[a:b].sort().values, perm[b:].sort().values)


TU_DATASETS = {"mutag": "MUTAG", "proteins": "PROTEINS", "enzymes": "ENZYMES", "nci1": "NCI1",
               "ptc_mr": "PTC_MR", "imdb-binary": "IMDB-BINARY"}


MAX_ONE_HOT_DEGREE = 64  # wider than most TU graphs' degrees; IMDB-BINARY's hubs (up to 135) share the last column


def one_hot_degree(g: Data, cap: int) -> Tensor:
    """One-hot in-degree, degrees above ``cap`` in the last column: GIN's features for graphs
    without any. (PyG's OneHotDegree fails on a degree above its maximum instead of capping.)"""
    deg = degree(g.edge_index[1], g.num_nodes, dtype=torch.long).clamp(max=cap)
    return torch.nn.functional.one_hot(deg, cap + 1)


def _tu_features(dataset) -> str:
    parts = [f"{n} {what}{'s' if n > 1 else ''}" for n, what in (
        (dataset.num_node_attributes, "continuous node attribute"), (dataset.num_node_labels, "one-hot node label")) if n]
    return " and ".join(parts) + " (TUDataset, use_node_attr)"


def _tu(name: str) -> Loader:
    def load(root: Path, cache_dir: Path) -> Loaded:
        from torch_geometric.datasets import TUDataset

        work = working_root(root, cache_dir, f"TUDataset/{name}", name.lower(), f"{name}_A.txt etc.")
        # every feature the dataset has: its continuous node attributes (ENZYMES' 18) as well
        # as its one-hot node labels, which are all PyG gives by default
        dataset = repairing(lambda: TUDataset(str(work / "TUDataset"), name=name, use_node_attr=True),
                            work / "TUDataset" / name, cache_dir, name.lower())
        featureless = dataset[0].x is None  # IMDB-BINARY: structure only
        graphs = []
        for g in dataset:
            x = one_hot_degree(g, MAX_ONE_HOT_DEGREE) if featureless else g.x
            graphs.append(Data(x=x.float(), edge_index=g.edge_index, y=g.y,
                               edge_attr=g.edge_attr.float() if g.edge_attr is not None else None))
        meta = {"node_features": f"one-hot degree 0..{MAX_ONE_HOT_DEGREE} (higher clamped): the graphs have no node "
                                 "features (Xu et al.)" if featureless else _tu_features(dataset)}
        return Loaded(graphs, stratified_splits(torch.cat([g.y for g in graphs]), seed=0), meta)

    return load


@DATASETS.register("csl", "CSL (GNN benchmark): 150 circular skip-link graphs, 10 isomorphism classes, "
                   "structure only; seeded stratified split", task="graph_classification")
def csl(root: Path, cache_dir: Path) -> Loaded:
    from torch_geometric.datasets import GNNBenchmarkDataset

    work = working_root(root, cache_dir, "GNNBenchmarkDataset/CSL", "csl", "graphs_Kary_Deterministic_Graphs.pkl")
    dataset = repairing(lambda: GNNBenchmarkDataset(str(work / "GNNBenchmarkDataset"), name="CSL"),
                        work / "GNNBenchmarkDataset" / "CSL", cache_dir, "csl")
    # no node features: every node the same, so only structure (and encodings) can tell
    graphs = [Data(x=torch.ones(g.num_nodes, 1), edge_index=g.edge_index, y=g.y.view(-1)) for g in dataset]
    meta = {"node_features": "constant 1: CSL is told apart by structure (and encodings) only"}
    return Loaded(graphs, stratified_splits(torch.cat([g.y for g in graphs]), seed=0), meta)


for _key, _name in TU_DATASETS.items():
    DATASETS.register(_key, f"TU {_name}, graph classification, seeded stratified 80/10/10 split (PyG)",
                      task="graph_classification")(_tu(_name))


# --- the entry point --------------------------------------------------------------------

def load_dataset(name: str, data_root: Optional[str | Path] = None, cache_dir: Optional[Path] = None,
                 encodings: Optional[dict[str, int]] = None,
                 dataset_args: Optional[dict] = None, feature_norms: Iterable[str] = (),
                 task: Optional[str] = None, split: int = 0) -> DatasetBundle:
    """Load ``name`` and precompute ``encodings`` (``{encoding: k}``) and ``feature_norms``
    (``row``), cached on disk.
    ``name`` is a registered dataset, a ``.pt`` file of ``Data`` objects, or the dotted
    path of a dataset class constructed with ``dataset_args``; ``task`` overrides the task
    a file's or class's data shows (:func:`infer_task`); ``split`` picks one of a dataset's
    fixed splits (``bundle.split_sets``)."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    root = resolve_data_root(data_root, cache_dir)
    # One process at a time prepares a dataset in a cache: PyG writes processed/ in place,
    # and a second process reading it half-written fails (PytorchStreamReader ...).
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _dataset_lock(name, cache_dir):
        bundle = _load_dataset(name, root, cache_dir, encodings, dataset_args, feature_norms, task)
    return choose_split(bundle, split)


def choose_split(bundle: DatasetBundle, split: int) -> DatasetBundle:
    """``bundle`` training on its fixed split number ``split`` (0: the first, or its only one)."""
    if not bundle.split_sets:
        if split != 0:
            raise DatasetError(f"dataset {bundle.name!r} has one split: split {split} applies to datasets with fixed "
                               "splits (the heterophily graphs' 10)")
        return bundle
    if not 0 <= split < len(bundle.split_sets):
        raise DatasetError(f"dataset {bundle.name!r}: split {split} out of range; it has {len(bundle.split_sets)} fixed "
                           f"splits, 0 to {len(bundle.split_sets) - 1}")
    return replace(bundle, splits=bundle.split_sets[split])


def over_splits(bundle: DatasetBundle, count: int, first: int = 0) -> list[DatasetBundle]:
    """``bundle`` on each of its fixed splits ``first .. first + count - 1`` (figures over the
    heterophily graphs' 10 splits, ``graphnas train --splits 10``)."""
    have = len(bundle.split_sets) or 1
    if first + count > have:
        raise DatasetError(f"dataset {bundle.name!r} has {have} fixed split{'s' if have > 1 else ''}: --splits {count} "
                           f"from split {first} asks for splits up to {first + count - 1}")
    return [choose_split(bundle, k) for k in range(first, first + count)]


def _dataset_lock(name: str, cache_dir: Path) -> FileLock:
    return FileLock(cache_dir / f".{hashlib.sha256(name.encode()).hexdigest()[:12]}.lock")


def _source_of(name: str, root: Path) -> DataSource:
    source = next((s.factory for s in DATA_SOURCES if s.factory.matches(name)), None)
    if source is None:
        # --dataset Cora, MUTAG or chameleon: the registered names are lower case and exact
        close = difflib.get_close_matches(name.lower(), DATASETS.names(), n=1, cutoff=0.6)
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS.names())}, "
                           "a .pt file of Data objects, or a dataset class by dotted path "
                           f"(data root searched: {root})" + (f"; did you mean {close[0]!r}?" if close else ""))
    return source


def _load_dataset(name: str, root: Path, cache_dir: Path, encodings: Optional[dict[str, int]],
                  dataset_args: Optional[dict], feature_norms: Iterable[str], task: Optional[str]) -> DatasetBundle:
    if task is not None:
        check_known_task(task)
    if name in DATASETS:
        declared = dataset_task(name)
        if task is not None and task != declared:  # its loader knows its labels; no recasting them
            raise DatasetError(f"dataset {name!r} is {declared or 'of a fixed task'} (registered): --task {task} applies "
                               "to .pt files and dataset classes")
        loaded = DATASETS.get(name)(root, cache_dir)
    else:
        loaded = _source_of(name, root).load(name, dataset_args or {}, root, cache_dir, task)
    from graphnas.evaluators.checks import check_data  # it imports this module

    if isinstance(loaded.data, list):
        meta = {"task": loaded.task.task, **loaded.meta} if loaded.task else loaded.meta
        meta["task"] = meta.get("task") or graph_task_of(loaded.data)
        check_data(name, loaded.data, meta["task"])  # once, before any trial
        bundle = _graph_bundle(name, loaded.data, loaded.splits, **meta)
    else:
        data = loaded.data
        check_data(name, data, "node_classification")
        info = DataInfo(task="node_classification", num_features=data.num_features,
                        num_outputs=int(data.y.max()) + 1, edge_dim=None, deg=degree_histogram(data),
                        num_edges=data.num_edges)
        bundle = DatasetBundle(name, data, info, loaded.splits, split_sets=loaded.split_sets)
    return add_feature_norms(add_encodings(bundle, encodings or {}, cache_dir), feature_norms, cache_dir)


SAMPLE_GRAPHS = 32  # graphs in a bundle's sample batch (model shapes, FLOPs, export)


def _graph_bundle(name: str, graphs: list[Data], splits: Splits, task: Optional[str] = None,
                  metric: Optional[str] = None, **categorical) -> DatasetBundle:
    """Float targets are regression unless the loader says ``graph_multilabel``."""
    train = Batch.from_data_list([graphs[i] for i in splits.train.tolist()])
    edge_dim = graphs[0].edge_attr.size(1) if graphs[0].edge_attr is not None else None
    task = task or graph_task_of(graphs)
    outputs = (graphs[0].y.numel() if task != "graph_classification"
               else int(torch.cat([g.y for g in graphs]).max()) + 1)
    info = DataInfo(task=task, num_features=graphs[0].num_features, num_outputs=outputs, edge_dim=edge_dim,
                    deg=degree_histogram(train), **categorical)
    default_metric = {"graph_regression": "mae", "graph_multilabel": "roc_auc"}.get(task, "accuracy")
    return DatasetBundle(name, sample_batch(graphs, splits), info, splits, graphs=graphs,
                         metric=metric or default_metric)


def graph_task_of(graphs: list[Data]) -> str:
    """What a loader that said nothing holds: float targets are regression, integers classes."""
    return "graph_regression" if graphs[0].y.is_floating_point() else "graph_classification"


def sample_batch(graphs: list[Data], splits: Splits) -> Batch:
    return Batch.from_data_list([graphs[i] for i in splits.train[:SAMPLE_GRAPHS].tolist()])


def degree_histogram(data: Data) -> tuple[int, ...]:
    deg = degree(data.edge_index[1], data.num_nodes, dtype=torch.long)
    return tuple(int(v) for v in torch.bincount(deg))


def add_encodings(bundle: DatasetBundle, encodings: dict[str, int], cache_dir: Path) -> DatasetBundle:
    """Attach each encoding as ``data.<attr>`` of width ``k``, computed once and cached."""
    done = dict(bundle.encodings)
    if bundle.graphs is not None:
        graphs = [g.clone() for g in bundle.graphs]
        for name, k in sorted(encodings.items()):
            if name == "none":
                continue
            attr = ENCODING.get(name).attr
            parts = cached_encoding(bundle.name, graphs, name, k, cache_dir).split([g.num_nodes for g in graphs])
            for g, pe in zip(graphs, parts):
                setattr(g, attr, pe)
            done[name] = k
        return replace(bundle, graphs=graphs, data=sample_batch(graphs, bundle.splits), encodings=done)
    data = bundle.data.clone()
    for name, k in sorted(encodings.items()):
        if name == "none":
            continue
        enc = ENCODING.get(name)
        setattr(data, enc.attr, cached_encoding(bundle.name, data, name, k, cache_dir))
        done[name] = k
    return replace(bundle, data=data, encodings=done)


def add_feature_norms(bundle: DatasetBundle, norms: Iterable[str], cache_dir: Optional[Path]) -> DatasetBundle:
    """Attach the features normalised by each of ``norms`` (``row``: PyG's
    ``NormalizeFeatures``, each node's features summing to 1) as ``data.x_row``, computed
    once per dataset and cached like encodings (not cached without ``cache_dir``).
    Integer (embedded) features are refused."""
    from graphnas.search_spaces.builder import FEATURE_NORM_ATTRS, precomputed_feature_norms

    norms = sorted(precomputed_feature_norms(norms))  # auto brings row, which it may be
    if not norms:
        return bundle
    if bundle.info.x_cardinalities is not None:
        raise DatasetError(f"dataset {bundle.name!r} has integer (embedded) node features: feature_norm "
                           f"{', '.join(norms)} applies to float features")
    graphs = [g.clone() for g in bundle.graphs] if bundle.graphs is not None else None
    data = bundle.data.clone() if graphs is None else None
    computed: dict[str, Tensor] = {"none": _raw_x(bundle)}
    for norm in sorted(norms, key=lambda n: n == "auto"):  # auto last: it is one of the others
        attr = FEATURE_NORM_ATTRS[norm]
        if norm == "auto":
            x = computed[auto_feature_norm(bundle)]
        else:
            x = computed[norm] = cached_features(bundle.name, graphs if graphs is not None else data, norm, cache_dir)
        if graphs is None:
            setattr(data, attr, x)
            continue
        for g, part in zip(graphs, x.split([g.num_nodes for g in graphs])):
            setattr(g, attr, part)
    if graphs is None:
        return replace(bundle, data=data)
    return replace(bundle, graphs=graphs, data=sample_batch(graphs, bundle.splits))


def auto_feature_norm(bundle: DatasetBundle) -> str:
    """What ``feature_norm: auto`` is for this dataset, decided once on all its node
    features (``search_spaces.builder.resolve_feature_norm``): row for non-negative
    integer features (bag-of-words counts, binary), none for signed or real ones."""
    from graphnas.search_spaces.builder import resolve_feature_norm

    return resolve_feature_norm("auto", _raw_x(bundle))


def _raw_x(bundle: DatasetBundle) -> Tensor:
    return bundle.data.x if bundle.graphs is None else torch.cat([g.x for g in bundle.graphs])


def cached_features(dataset: str, data: Union[Data, list[Data]], norm: str, cache_dir: Optional[Path]) -> Tensor:
    """``[total nodes, F]``: the node features under ``norm``, per graph for a list."""
    from torch_geometric.transforms import NormalizeFeatures

    parts = data if isinstance(data, list) else [data]
    if cache_dir is None:
        return torch.cat([NormalizeFeatures()(Data(x=g.x.clone())).x for g in parts])
    h = hashlib.sha256(graph_hash(data).encode())
    for g in parts:
        h.update(g.x.cpu().numpy().tobytes())
    path = Path(cache_dir) / "features" / f"{dataset_slug(dataset)}-{norm}-{h.hexdigest()[:12]}.pt"
    if path.is_file():
        return load_graphs(path)
    x = torch.cat([NormalizeFeatures()(Data(x=g.x.clone())).x for g in parts])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(x, tmp)
    tmp.replace(path)
    return x


def graph_hash(data: Union[Data, list[Data]]) -> str:
    h = hashlib.sha256()
    for g in data if isinstance(data, list) else [data]:
        h.update(str(g.num_nodes).encode())
        h.update(g.edge_index.cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def cached_encoding(dataset: str, data: Union[Data, list[Data]], name: str, k: int, cache_dir: Path) -> Tensor:
    """``[total nodes, k]``; for a list of graphs, computed per graph and concatenated."""
    path = Path(cache_dir) / "encodings" / f"{dataset_slug(dataset)}-{name}-k{k}-{graph_hash(data)}.pt"
    if path.is_file():
        return load_graphs(path)
    compute = ENCODING.get(name).compute
    pe = torch.cat([compute(g, k) for g in data]) if isinstance(data, list) else compute(data, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per writer: two may race
    torch.save(pe, tmp)
    tmp.replace(path)  # atomic: parallel workers never read a half-written file
    return pe
