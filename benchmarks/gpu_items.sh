#!/usr/bin/env bash
# The GPU items of issues 42 and 45 as one prepared script, for a lent GPU machine; from the
# repository root:
#
#     DATA_ROOT=DIR bash benchmarks/gpu_items.sh      # DIR holds Planetoid/, TUDataset/, heterophily/
#
# 1. benchmarks/gpu_check.sh: the venv, `pytest -m cuda`, Cora and MUTAG searches on cuda and cpu
#    (trials per minute against the CPU);
# 2. benchmarks/scale.py --device cuda at 10k, 100k and 1M nodes, graphnas (bf16 autocast) against
#    plain PyG, then graphnas in fp32 (--fp32): bf16 against fp32, the 1M-node figures;
# 3. benchmarks/heterophily.py for Platonov et al.'s GAT-sep and GT-sep on chameleon_filtered,
#    squirrel_filtered and actor: a 5-epoch probe each, then the largest plan that fits
#    PLATONOV_MIN minutes (10 splits x 1000 epochs, their paper's protocol, first), into
#    $OUT/heterophily_gpu.json (merge into benchmarks/results/heterophily.json by hand, with the
#    device named).
# Every step runs even when one before it failed; the exit status says whether all passed.
set -uo pipefail
OUT=${OUT:-$(mktemp -d -t gpu_items.XXXXXX)}
export OUT
DATA_ROOT=${DATA_ROOT:-../shared/datasets}
PLATONOV_MIN=${PLATONOV_MIN:-3}
FAILED=()
step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "gpu_check.sh"
DATA_ROOT=$DATA_ROOT bash benchmarks/gpu_check.sh || FAILED+=(gpu_check)
# shellcheck disable=SC1091
. .venv/bin/activate

step "scale.py --device cuda"
python benchmarks/scale.py --device cuda --threads 4 --results "$OUT/scale_cuda.json" 2>&1 | tee "$OUT/scale_cuda.log" \
    || FAILED+=(scale-cuda)
step "scale.py --device cuda --fp32 (graphnas without bf16)"
python benchmarks/scale.py --device cuda --fp32 --threads 4 --results "$OUT/scale_cuda_fp32.json" 2>&1 \
    | tee "$OUT/scale_cuda_fp32.log" || FAILED+=(scale-cuda-fp32)

step "heterophily.py: Platonov's designs"
python benchmarks/heterophily.py --only platonov_gat_sep,platonov_gt_sep --data-root "$DATA_ROOT" \
    --platonov-budget-min "$PLATONOV_MIN" --runs "$OUT/heterophily_runs" --results "$OUT/heterophily_gpu.json" \
    2>&1 | tee "$OUT/heterophily_gpu.log" || FAILED+=(heterophily)
rm -rf "$OUT/heterophily_runs"/*/split*/seed*.pt  # weights: not needed back

step "done"
if ((${#FAILED[@]})); then echo "FAILED: ${FAILED[*]}"; exit 1; fi
echo "all steps passed"
