#!/usr/bin/env bash
# GPU check, for a machine with one CUDA GPU; run from the repository root:
#
#     bash benchmarks/gpu_check.sh
#
# 1. makes .venv if it is missing (reusing a CUDA torch installed system-wide, else
#    `pip install torch`) and installs the package with its test extras;
# 2. runs the CUDA-marked tests (`pytest -m cuda`);
# 3. runs a 10-trial `graphnas search` (tiny space) on Cora and on MUTAG, each once with
#    --device cuda and once with --device cpu;
# 4. prints the training time per trial on cuda versus cpu and the peak GPU memory, read
#    from each run's trials.csv (train_time_s, peak_memory_mib).
#
# Everything printed also goes to $OUT/gpu_check.log when OUT is set (else to the work
# folder), with the runs' trials.csv, summary.md and config.yaml and the pytest report.
# About 3-5 minutes on an H200 with 16 cores (plus the install). Settings (environment):
#   EPOCHS=50 TRIALS=10 DATASETS="cora mutag" EXTRAS=test
#   DATA_ROOT (else $GRAPHNAS_DATA, $GRAPHNAS_TEST_DATA, ../shared/datasets, ./shared/datasets)
# The run exits non-zero if the tests or a search failed; every step runs regardless.
set -euo pipefail

EPOCHS=${EPOCHS:-50}
TRIALS=${TRIALS:-10}
DATASETS=${DATASETS:-"cora mutag"}
EXTRAS=${EXTRAS:-test}
# Fail fast where the machine is offline (pip retries 5 times per request; images may set a 180 s timeout).
export PIP_DEFAULT_TIMEOUT=30 PIP_RETRIES=1
WORK=$(mktemp -d -t gpu_check.XXXXXX)
LOG_DIR=${OUT:-$WORK}
mkdir -p "$LOG_DIR"
exec > >(tee -a "$LOG_DIR/gpu_check.log") 2>&1
TEE_PID=$!
trap 'exec 1>&- 2>&-; wait "$TEE_PID" 2>/dev/null || true' EXIT  # let tee finish the log
FAILED=()

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "machine"
echo "repository: $(pwd)   work folder: $WORK   log: $LOG_DIR/gpu_check.log"
echo "cores: $(nproc)   python3: $(python3 --version 2>&1)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi not found"

step "virtual environment"
if [[ ! -x .venv/bin/python ]]; then
    if python3 -c "import torch, sys; print('system torch', torch.__version__, 'cuda', torch.cuda.is_available()); sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        echo "reusing the system-wide CUDA torch: venv with --system-site-packages"
        python3 -m venv --system-site-packages .venv
    else
        echo "no CUDA torch importable system-wide: plain venv, pip install torch (the default Linux wheel is a CUDA build)"
        python3 -m venv .venv
        .venv/bin/python -m pip install 'torch>=2.4,<2.15'  # pyproject's range
    fi
else
    echo ".venv exists: using it as it is"
fi
# shellcheck disable=SC1091
. .venv/bin/activate
TORCH=$(python -c "import torch; print(torch.__version__)")
# Pin the torch we have, so that installing the package never swaps it for another build.
echo "torch==$TORCH" > "$WORK/constraints.txt"
if ! python -m pip install -c "$WORK/constraints.txt" -e ".[$EXTRAS]"; then
    echo "WARNING: pip install -e '.[$EXTRAS]' failed (offline? torch $TORCH outside pyproject's range?);"
    echo "         installing the package alone, without build isolation, plus pytest"
    python -m pip install --no-build-isolation -c "$WORK/constraints.txt" -e . pytest \
        || python -m pip install --no-build-isolation --no-deps -e .
    EXTRAS=""
fi
python - <<'EOF'
import sys, torch
import torch_geometric, optuna, pytest  # noqa: F401  (fail here, clearly, if the install is incomplete)
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), torch_geometric {torch_geometric.__version__}, "
      f"optuna {optuna.__version__}, pytest {pytest.__version__}")
if not torch.cuda.is_available():
    sys.exit("torch.cuda.is_available() is False in .venv: this check needs a CUDA build of torch and a GPU")
print("device:", torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
EOF

step "pytest -m cuda"
# Without the test extras (ray, rdkit, ...) other test modules may not import: collect the CUDA file only.
TESTS=(tests)
if [[ -z "$EXTRAS" ]]; then TESTS=(tests/test_cuda.py); fi
if ! python -m pytest -m cuda -p no:cacheprovider -rs --junitxml "$LOG_DIR/pytest_cuda.xml" "${TESTS[@]}"; then
    FAILED+=("pytest -m cuda")
fi

step "data"
DATA_ROOT=${DATA_ROOT:-}
for root in "${GRAPHNAS_DATA:-}" "${GRAPHNAS_TEST_DATA:-}" ../shared/datasets ./shared/datasets; do
    if [[ -z "$DATA_ROOT" && -n "$root" && -d "$root/Planetoid/Cora/raw" ]]; then DATA_ROOT=$root; fi
done
if [[ -z "$DATA_ROOT" ]]; then
    echo "WARNING: no data root with Planetoid/Cora/raw found (set DATA_ROOT): the embedded datasets stand in"
    echo "         for Cora and MUTAG: synthetic (node task) and triangles (graph task)"
    DATASETS="synthetic triangles"
    DATA_ROOT=$WORK/data
fi
echo "data root: $DATA_ROOT   datasets: $DATASETS"
CACHE=$WORK/cache
# Process the datasets once, outside the timed searches.
for ds in $DATASETS; do
    python -c "import sys; from evaluators import load_dataset; load_dataset(sys.argv[1], sys.argv[2], sys.argv[3])" \
        "$ds" "$DATA_ROOT" "$CACHE"
done

RUNS=$WORK/runs
mkdir -p "$RUNS"
for ds in $DATASETS; do
    for dev in cuda cpu; do
        step "graphnas search --dataset $ds --device $dev ($TRIALS trials, $EPOCHS epochs)"
        start=$(date +%s.%N)
        if graphnas search --space tiny --dataset "$ds" --trials "$TRIALS" --epochs "$EPOCHS" --patience "$EPOCHS" \
                --seed 0 --device "$dev" --run-dir "$RUNS/$ds-$dev" --data-root "$DATA_ROOT" --cache-dir "$CACHE" --quiet; then
            status=ok
        else
            status=failed
            FAILED+=("search $ds $dev")
        fi
        wall=$(python -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
        printf '%s\t%s\t%s\t%s\n' "$ds" "$dev" "$wall" "$status" >> "$RUNS/walls.tsv"
        echo "$status in $wall s"
        if [[ -n "${OUT:-}" ]]; then
            mkdir -p "$OUT/runs/$ds-$dev"
            for f in trials.csv summary.md config.yaml; do
                if [[ -f "$RUNS/$ds-$dev/$f" ]]; then cp "$RUNS/$ds-$dev/$f" "$OUT/runs/$ds-$dev/"; fi
            done
        fi
    done
done

step "time per trial, cuda versus cpu"
python - "$RUNS" "$EPOCHS" <<'EOF'
import sys
from pathlib import Path

import pandas as pd

runs, epochs = Path(sys.argv[1]), int(sys.argv[2])
walls = pd.read_csv(runs / "walls.tsv", sep="\t", names=["dataset", "device", "wall_s", "status"])
rows = []
for ds in walls["dataset"].unique():
    frames = {}
    for dev in ("cuda", "cpu"):
        path = runs / f"{ds}-{dev}" / "trials.csv"
        if not path.is_file():
            print(f"{ds} {dev}: no trials.csv")
            continue
        f = pd.read_csv(path)
        frames[dev] = f
        for _, bad in f[f["state"] != "COMPLETE"].iterrows():
            print(f"{ds} {dev}: trial {bad['trial']} {bad['state']}: {bad.get('error')}")
        done = f[f["state"] == "COMPLETE"]
        wall = float(walls[(walls.dataset == ds) & (walls.device == dev)]["wall_s"].iloc[-1])
        rows.append({"dataset": ds, "device": dev, "complete": f"{len(done)}/{len(f)}", "wall s": wall,
                     "median train s/trial": done["train_time_s"].median(),
                     "mean train s/trial": done["train_time_s"].mean(),
                     "median ms/epoch": 1e3 * done["train_time_s"].median() / epochs,
                     "best val": done["val_metric"].max(),
                     "peak MiB median": done["peak_memory_mib"].median(),
                     "peak MiB max": done["peak_memory_mib"].max()})
    if set(frames) == {"cuda", "cpu"}:
        # Same seed, so the sampler's start-up trials propose the same architectures on both devices.
        keep = ["trial", "arch_id", "num_layers", "hidden_dim", "layer0.mpnn", "layer0.attention", "train_time_s",
                "val_metric", "peak_memory_mib"]
        pair = frames["cuda"][keep].merge(frames["cpu"][["arch_id", "train_time_s", "val_metric"]],
                                          on="arch_id", suffixes=("_cuda", "_cpu")).drop_duplicates("arch_id")
        pair["cpu/cuda"] = pair["train_time_s_cpu"] / pair["train_time_s_cuda"]
        print(f"\n{ds}: the same architectures on both devices ({len(pair)}); peak_memory_mib is CUDA max allocated")
        print(pair.round(3).to_string(index=False))
print("\n(peak MiB: CUDA max allocated on cuda, the process's resident set on cpu)")
table = pd.DataFrame(rows)
print(table.round(3).to_string(index=False))
for ds in table["dataset"].unique():
    t = table[table.dataset == ds].set_index("device")
    if {"cuda", "cpu"} <= set(t.index):
        print(f"{ds}: median training time per trial cpu / cuda = "
              f"{t.loc['cpu', 'median train s/trial'] / t.loc['cuda', 'median train s/trial']:.1f}x, "
              f"peak GPU memory {t.loc['cuda', 'peak MiB max']:.0f} MiB (max over trials)")
EOF

step "done"
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader || true
if ((${#FAILED[@]})); then
    echo "FAILED: ${FAILED[*]}"
    exit 1
fi
echo "all steps passed"
