"""How well the predictor strategy's surrogate ranks a NAS-Bench-Graph dataset from a few
of its cells, by encoding and by model (issue 13: why pubmed's regret at 30 queries stays
above 0.6x random's).

For each training-set size N and repeat r: N cells drawn at random (seed r) from the
dataset's table, a surrogate fitted on their validation accuracy, then asked for every cell
of the space. Printed, mean over the repeats: the Spearman correlation of the prediction
with the table over all cells, and the regret (best validation accuracy minus the best of
them, in points) of the 20 cells it predicts best; beside it, the regret of 20 random cells.
The search itself sees only neighbours of its best trials, so this is a diagnostic of the
surrogate, not of the search (``search_quality.py`` measures that).

Surrogates (each an ensemble of the strategy's ``MLPEnsemble`` unless named otherwise):
* ``one-hot``: the strategy's encoding without knowledge (one column per choice and value);
* ``one-hot + sources``: with knowledge, as the default strategy fits it: one more column
  per source dataset, its rank score of the cell (the shipped knowledge of the other
  datasets; the target's table is never read for it);
* ``one-hot + paths``: plus the cell's paths from input to output (skips removed), counted
  as consecutive operator pairs, and the paths' lengths: a labelling-invariant encoding
  (BANANAS's path encoding, compacted);
* ``pre-trained on sources``: first fitted to the sources' pooled prior over every cell,
  then fine-tuned on the N cells;
* ``random forest`` and ``gaussian process`` (scikit-learn) on the one-hot encoding.

Then two ceilings, with no N: the top-20 regret of a ridge regression and of the ensemble
fitted on every cell of the table (in-sample: what the one-hot encoding could say of the
top with all the data there is), and the expected regret of the best of 20 cells drawn at
random from the best cell's topology (a search that knew the topology, and no more).

    python benchmarks/surrogate_fit.py [--dataset pubmed] [--sizes 20,30,60] [--repeats 12]
    python benchmarks/surrogate_fit.py --dataset pubmed --sizes ""   # the ceilings alone
"""
from __future__ import annotations

import argparse
import functools
import time

import numpy as np
from scipy.stats import spearmanr

TOP = 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="pubmed")
    parser.add_argument("--sizes", default="20,30,60")
    parser.add_argument("--repeats", type=int, default=12)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    y, encodings, prior, links = _problem(args.dataset)
    surrogates = {name: _fit_mlp for name in encodings} | {
        "pre-trained on sources": _fit_pretrained(encodings["one-hot"], prior),
        "random forest": _fit_forest, "gaussian process": _fit_gp}
    best = y.max()
    print(f"{args.dataset}: {len(y):,} cells; {args.repeats} repeats per size")
    print(f"{'N':>4} {'surrogate':26} {'spearman':>9} {'top-20 regret':>14} {'random 20':>10}")
    for n in map(int, filter(None, args.sizes.split(","))):  # --sizes "": the ceilings alone
        for name, fit in surrogates.items():
            x = encodings.get(name, encodings["one-hot"])
            rho, regret, random_regret = [], [], []
            for r in range(args.repeats):
                rng = np.random.default_rng(r)
                train = rng.choice(len(y), n, replace=False)
                predicted = fit(x[train], y[train], x, r)
                rho.append(spearmanr(predicted, y).correlation)
                regret.append(best - y[np.argsort(-predicted)[:TOP]].max())
                random_regret.append(best - y[rng.choice(len(y), TOP, replace=False)].max())
            print(f"{n:4d} {name:26} {np.mean(rho):9.3f} {np.mean(regret):14.2f} {np.mean(random_regret):10.2f}",
                  flush=True)
    _print_ceilings(y, encodings["one-hot"], links)
    print(f"{time.perf_counter() - start:.0f} s")


def _print_ceilings(y: np.ndarray, one_hot: np.ndarray, links: np.ndarray) -> None:
    from sklearn.linear_model import Ridge

    from graphnas.nas.strategies import MLPEnsemble, PredictorSearch

    best = y.max()
    fitted = {"ridge": Ridge(alpha=1.0).fit(one_hot, y).predict(one_hot),
              "ensemble": MLPEnsemble.fit(one_hot, y, PredictorSearch.members, seed=0, steps=1000)
              .predict(one_hot).mean(0)}
    for name, predicted in fitted.items():
        print(f" all {name + ', in-sample':26} {spearmanr(predicted, y).correlation:9.3f} "
              f"{best - y[np.argsort(-predicted)[:TOP]].max():14.2f}")
    topology, regrets = _best_topology_regrets(y, links)
    print(f"   - {'20 random cells of ' + topology:26} {'':9} {_expected_min(regrets, TOP):14.2f}  "
          f"({len(regrets):,} cells)")


def _best_topology_regrets(y: np.ndarray, links: np.ndarray) -> tuple[str, np.ndarray]:
    """The topology (``links``) of the best cell, and the regret of each cell on it."""
    topology = links[int(np.argmax(y))]
    return topology, y.max() - y[links == topology]


def _expected_min(values: np.ndarray, n: int) -> float:
    """The expected minimum of ``n`` of ``values`` drawn without replacement: the i-th
    smallest is the minimum with probability C(M - i, n - 1) / C(M, n) (i from 1)."""
    from scipy.special import comb

    ordered, m = np.sort(values), len(values)
    chances = comb(m - np.arange(1, m + 1), n - 1) / comb(m, n)
    return float(ordered @ chances)


def _problem(dataset: str):
    """The validation accuracy in points of the cells of ``dataset``'s table, their
    encodings, the sources' pooled prior of each (the knowledge's mean rank score), and
    each one's topology (``links``)."""
    from graphnas.evaluators.nas_bench_graph import _first_labellings
    from graphnas.nas.knowledge import NAS_BENCH_GRAPH_FINGERPRINTS, Origin, transfer_for
    from graphnas.nas.strategies import PredictorSearch
    from nas_bench_graph import light_read
    from graphnas.search_spaces import SearchSpace

    space = SearchSpace.preset("nas_bench_graph")
    table = light_read(dataset)
    known = [(params, table[h]["valid_perf"]) for h, (params, _) in _first_labellings(space).items() if h in table]
    cells, y = [params for params, _ in known], 100 * np.array([value for _, value in known])
    transfer = transfer_for(NAS_BENCH_GRAPH_FINGERPRINTS[dataset], Origin(None, space, dataset))
    plain, informed = PredictorSearch(space, 0, 1), PredictorSearch(space, 0, 1, transfer=transfer)
    for strategy in (plain, informed):
        for params in cells:
            strategy._add_columns(params)
    one_hot, with_sources = plain._encode(cells), informed._encode(cells)
    prior = with_sources[:, one_hot.shape[1]:].mean(1)  # the columns after the one-hot: one per source
    encodings = {"one-hot": one_hot, "one-hot + sources": with_sources,
                 "one-hot + paths": np.hstack([one_hot, np.stack([_path_features(p) for p in cells])])}
    return y, encodings, prior, np.array([params["links"] for params in cells])


@functools.cache
def _tokens() -> list[str]:
    """The path tokens: the input, the space's operators but skip (not on a path), the output."""
    from graphnas.evaluators.nas_bench_graph import OPS

    return ["in"] + [o for o in OPS if o != "skip"] + ["out"]


def _path_features(params: dict) -> np.ndarray:
    """Counts of consecutive (token, token) pairs over the cell's input-to-output paths, and
    of the paths' lengths. Node i+1 reads node ``links[i]`` (0: the input); nodes no other
    reads are summed into the output, so each such node ends one path."""
    links = [int(v) for v in params["links"].split("-")]
    ops = [params[k] for k in sorted(k for k in params if k != "links")]
    tokens = _tokens()
    pairs, lengths = np.zeros((len(tokens), len(tokens))), np.zeros(len(links) + 1)
    for leaf in set(range(1, len(links) + 1)) - set(links):
        path, node = [], leaf
        while node:
            path.append(ops[node - 1])
            node = links[node - 1]
        path = ["in"] + [o for o in reversed(path) if o != "skip"] + ["out"]
        for a, b in zip(path, path[1:]):
            pairs[tokens.index(a), tokens.index(b)] += 1
        lengths[len(path) - 2] += 1
    return np.concatenate([pairs.ravel(), lengths])


def _fit_mlp(x, y, everything, seed: int) -> np.ndarray:
    from graphnas.nas.strategies import PredictorSearch, MLPEnsemble

    return MLPEnsemble.fit(x, y, PredictorSearch.members, seed=seed).predict(everything).mean(0)


def _fit_pretrained(one_hot: np.ndarray, prior: np.ndarray):
    """A fit that starts from an ensemble trained on the prior over every cell."""
    from graphnas.nas.strategies import PredictorSearch, MLPEnsemble

    base = MLPEnsemble.fit(one_hot, prior, PredictorSearch.members, seed=0, steps=500)

    def fit(x, y, everything, seed: int) -> np.ndarray:
        return MLPEnsemble.fit(x, y, PredictorSearch.members, seed, steps=100, start=base).predict(everything).mean(0)

    return fit


def _fit_forest(x, y, everything, seed: int) -> np.ndarray:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(200, max_features=0.3, random_state=seed).fit(x, y).predict(everything)


def _fit_gp(x, y, everything, seed: int) -> np.ndarray:
    import warnings

    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kernel bounds reached on a few repeats
        gp = GaussianProcessRegressor(ConstantKernel() * RBF(3.0) + WhiteKernel(), normalize_y=True,
                                      random_state=seed)
        return gp.fit(x, y).predict(everything)


if __name__ == "__main__":
    main()
