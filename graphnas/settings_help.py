"""What each setting of a search means: one text for the CLI's ``--help``, the pydantic fields of
``SearchConfig``, ``TrainConfig`` and ``DartsConfig`` (their ``description``) and the Python API's
docstrings (``graphnas.search``). Plain strings, no imports: the CLI reads them at start-up, before
it imports the engine (torch, PyG)."""
from __future__ import annotations

# key: a SearchConfig field, "train.FIELD" (TrainConfig) or "darts.FIELD" (DartsConfig)
SETTINGS: dict[str, str] = {
    "space": (
        "Preset name or path to a space YAML file [default: the dataset task's space: node for node "
        "classification, graph for graph classification, else tiny (graphnas spaces)]."
    ),
    "dataset": "Dataset name, a .pt file of Data objects, or a dataset class by dotted path.",
    "task": (
        "The task of a .pt file or dataset class: node_classification | graph_classification | "
        "graph_regression | graph_multilabel [default: inferred: one Data is a node task, a list a "
        "graph task; integer labels classification, float ones regression]."
    ),
    "strategy": (
        "auto | tpe | random | nsga2 | evolution | local | predictor (black-box), darts | gdas | "
        "darts+tpe (differentiable) [default: auto: the predictor, from the knowledge store]."
    ),
    "objectives": "Comma list of metric, flops, params, latency.",
    "trials": "Trial budget, counting finished trials of a resumed run.",
    "timeout": (
        "Wall-clock budget of the whole search in seconds, confirmation included: a trial running at "
        "the deadline stops at its epoch's end, and a candidate estimated not to fit the time left is"
        " not trained."
    ),
    "seed": "Seed of the sampler and of every training run.",
    "run_dir": "Run directory [default: runs/<space>-<dataset>-<time>].",
    "storage": "Optuna storage URL [default: sqlite:///<run-dir>/study.db].",
    "backend": "local | ray: run trials as Ray Tune trials (pip install 'graphnas[ray]').",
    "ray_address": (
        "--backend ray: join this cluster (auto | ray://HOST:PORT) [default: start a local Ray sized "
        "to the machine]."
    ),
    "cpus_per_trial": "--backend ray: CPUs per trial.",
    "gpus_per_trial": "--backend ray: GPUs per trial, fractions allowed.",
    "evaluator": (
        "train (train every candidate) | nas-bench-graph (answer from NAS-Bench-Graph's tables; "
        "--space nas_bench_graph)."
    ),
    "pruner": (
        "auto | none | median | asha | hyperband: stop hopeless trials early (multi-objective "
        "searches: median or asha, on the metric) [default: auto: asha, successive halving at epochs "
        "10, 30, 90, when candidates train 30 epochs or more; else none]."
    ),
    "workers": (
        "Local worker processes sharing the study (a journal-file storage unless --storage names "
        "PostgreSQL/MySQL)."
    ),
    "threads": (
        "Torch threads per trial, recorded in config.yaml so that a resumed run computes the same "
        "numbers [default: 1, which beside another process beat every core's thread many times over "
        "(benchmarks/threads.py); --workers N uses more cores]."
    ),
    "data_root": "Dataset root (PyG layout) [default: $GRAPHNAS_DATA or the cache].",
    "cache_dir": "Cache for processed data and encodings [default: $GRAPHNAS_CACHE or ~/.cache/graphnas].",
    "references": (
        "Comma list of zoo designs run first as trials tagged reference (zoo:gat,zoo:gcn), or none "
        "[default: the zoo entries of the dataset's task that the space holds]."
    ),
    "confirm": (
        "After the budget, train the top K trials by validation with 2 more seeds; the best "
        "architecture is the one of best mean validation [default: 3 for 20 trials or more, else 0]."
    ),
    "confirm_folds": (
        "Graph tasks: confirm the top trials on K stratified folds of the training and validation "
        "graphs instead of on more seeds (test stays held out) [default: 0, seeds]."
    ),
    "confirm_neighbours": (
        "Add up to M unseen one-choice neighbours of the best trial to the confirmed trials, those "
        "whose choice did best across the search first [default: 0]."
    ),
    "protocol": (
        "With --folds K: xu (every trial is a K-fold CV, Xu et al.) | errica (a search inside every "
        "outer fold, its best retrained 3 times and tested on the fold: Errica et al.'s fair "
        "protocol)."
    ),
    "knowledge": (
        "Knowledge store of earlier searches (an Optuna storage URL): a new search starts from the "
        "closest ones, a finished one is added; none turns transfer off [default: $GRAPHNAS_KNOWLEDGE"
        " or sqlite:///~/.cache/graphnas/knowledge.db]."
    ),
    "darts.cost_weights": "darts/gdas: comma list of FLOPs penalty weights lambda, one search each.",
    "darts.epochs": "darts/gdas: supernet epochs.",
    "darts.alpha_lr": "darts/gdas: Adam lr of the architecture parameters.",
    "darts.second_order": "darts: unrolled (second-order) architecture gradient [default: first-order].",
    "darts.top_k": "darts+tpe: candidates kept per operator choice.",
    "darts.keep_none": (
        "darts/gdas: may the argmax pick 'none' without a FLOPs penalty [default: skip, as DARTS; "
        "kept when lambda > 0]."
    ),
    "train.trial_timeout": (
        "Stop a trial that trains longer than this many seconds (all its folds) at the end of its "
        "epoch; it is recorded as failed and the search goes on."
    ),
    "train.epochs": "Maximum training epochs per trial.",
    "train.patience": "Early-stopping patience in epochs.",
    "train.folds": (
        "Graph datasets: stratified k-fold cross-validation, the trial's figures are means over folds"
        " (1: one split)."
    ),
    "train.split": (
        "Which of the dataset's fixed splits to train on (the heterophily graphs have 10) [default: "
        "0]."
    ),
    "train.sample_above_nodes": "Node tasks: graphs with more nodes train on NeighborLoader mini-batches.",
    "train.fanouts": (
        "Sampled training: comma list of in-neighbours per hop, -1 = all; the last repeats for deeper"
        " models."
    ),
    "train.node_batch_size": "Sampled training: seed nodes per mini-batch.",
    "train.metric": "Override the dataset's metric (accuracy, macro_f1, roc_auc, average_precision, mae).",
    "train.device": "auto | cpu | cuda | cuda:N.",
}


def about(key: str) -> str:
    """The text of one setting (``"trials"``, ``"train.epochs"``, ``"darts.top_k"``)."""
    return SETTINGS[key]


def settings_section(prefixes: tuple[str, ...] = ("", "train.")) -> str:
    """The settings as a docstring section: one entry per setting whose key starts with one of
    ``prefixes`` ("": SearchConfig's own), named as a keyword argument takes it: SearchConfig's
    and TrainConfig's by their name, DartsConfig's as ``darts.NAME`` (``darts={"NAME": ...}``)."""
    out = []
    for key, text in SETTINGS.items():
        prefix, _, name = key.rpartition(".")
        if (prefix + "." if prefix else "") in prefixes:
            out.append(f"    {name if prefix in ('', 'train') else key}: {text}")
    return "\n".join(out)
