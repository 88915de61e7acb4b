"""The CUDA paths: training on the GPU, bf16 autocast, FLOPs equal to the CPU count, a DARTS
step. Marked ``cuda`` (``pytest -m cuda`` selects them) and skipped without a GPU."""
from __future__ import annotations

import math

import pytest
import torch
from torch_geometric import seed_everything

from graphnas.evaluators import TrainConfig, evaluate, flops_of, load_dataset
from graphnas.search_spaces import Architecture, SearchSpace, build_model, model_inputs

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda")


def arch(mpnn: str = "gcn", attention: str = "none", layers: int = 2, norm: str = "batch") -> Architecture:
    return Architecture(space="cuda-test", hidden_dim=32, num_layers=layers, dropout=0.5, lr=0.01,
                        weight_decay=5e-4, layers=tuple({"mpnn": mpnn, "attention": attention, "norm": norm,
                                                         "heads": 2} for _ in range(layers)))


@pytest.fixture(scope="module")
def synthetic(cache_dir):
    return load_dataset("synthetic", cache_dir=cache_dir)


def test_training_on_cuda_reports_the_device_a_sane_metric_and_gpu_memory(synthetic):
    result = evaluate(arch("gcn"), synthetic, TrainConfig(epochs=100, patience=30, device="cuda"))
    assert result.device.startswith("cuda")
    assert math.isfinite(result.val_metric) and math.isfinite(result.test_metric)
    # a 2-layer GCN reaches about 0.88 test accuracy on the CPU; an MLP about 0.46, chance 0.2
    assert 0.7 < result.test_metric <= 1.0 and 0.7 < result.val_metric <= 1.0
    total_mib = torch.cuda.get_device_properties(CUDA).total_memory / 2**20
    assert 0 < result.peak_memory_mib < total_mib  # CUDA max allocated, not the process's RSS
    assert result.flops > 0 and result.latency_ms > 0 and 0 <= result.best_epoch < result.epochs


def test_bf16_autocast_on_and_off_both_train(synthetic):
    results = {amp: evaluate(arch("sage"), synthetic, TrainConfig(epochs=80, patience=80, device="cuda", amp=amp))
               for amp in (True, False)}
    for amp, result in results.items():
        assert math.isfinite(result.val_metric) and 0.6 < result.test_metric <= 1.0, (amp, result)
    assert abs(results[True].test_metric - results[False].test_metric) < 0.1  # bf16 costs little accuracy
    # autocast really runs the model in bf16 (the evaluator casts logits to float for the loss)
    model = build_model(arch("sage"), synthetic.info).to(CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(**model_inputs(synthetic.data.to(CUDA), arch("sage")))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


@pytest.mark.parametrize("mpnn, attention", [
    ("gcn", "none"), ("sage", "none"), ("gin", "none"), ("gat", "none"),  # MPNN only: same aten ops on both
    ("gcn", "full"),  # CPU attention kernel counted by our formula, the CUDA kernels by PyTorch's: must agree
])
def test_flops_counted_on_cuda_equal_the_cpu_count(synthetic, mpnn, attention):
    a = arch(mpnn, attention, norm="none")
    seed_everything(0)
    model = build_model(a, synthetic.info)
    cpu = flops_of(model, **model_inputs(synthetic.data, a))
    gpu = flops_of(model.to(CUDA), **model_inputs(synthetic.data.to(CUDA), a))
    assert cpu > 0 and gpu == cpu


def test_darts_supernet_steps_on_cuda(synthetic):
    from graphnas.nas.architect import AlphaSearch, bilevel_batches
    from graphnas.nas.darts import DartsConfig
    from graphnas.nas.supernet import Supernet

    seed_everything(0)
    space = SearchSpace.from_dict({
        "name": "t", "global": {"hidden_dim": 32, "num_layers": 2, "dropout": 0.2, "lr": 0.01,
                                "weight_decay": 5e-4, "residual": False},
        "layers": {"mpnn": ["gcn", "sage", "mlp"], "attention": ["none", "full"], "norm": "none", "heads": 2}})
    net = Supernet(space, synthetic.info).to(CUDA)
    net.measure_flops(model_inputs(synthetic.data.to(CUDA), net.base))
    assert all(f.device.type == "cuda" and f.max() > 0 for f in net.flops.values())
    before = [a.detach().clone() for a in net.arch_parameters()]
    steps = bilevel_batches(synthetic, net.base, CUDA, 0.4, seed=0)
    rows = AlphaSearch(net, DartsConfig(epochs=3), cost_weight=0.5).run(steps)
    after = net.arch_parameters()
    assert all(a.device.type == "cuda" and torch.isfinite(a).all() for a in after)
    assert all(not torch.equal(a, b) for a, b in zip(after, before))
    assert rows and all(0 <= r["weight"] <= 1 for r in rows)
    assert len(net.derive(keep_none=True).layers) == 2
