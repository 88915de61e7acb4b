"""Export an architecture, rebuild the exact model, retrain over seeds, deploy as pt2/ONNX."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from graphnas.evaluators import TrainConfig, load_dataset
from graphnas.nas import Search, SearchConfig
from graphnas.results import ExportError, export_record, load_model, read_export, write_export
from graphnas.results.export import export_program
from graphnas.results.retrain import check_compatible, retrain
from graphnas.search_spaces import Architecture, DataInfo, LayerArch, SearchSpace, build_model, model_inputs, preset_names
from tests.search_spaces.test_builder import with_encodings

INFO = DataInfo(task="node_classification", num_features=16, num_outputs=3, edge_dim=4, deg=(0, 4, 6, 3))


@pytest.mark.parametrize("name", preset_names())
def test_export_then_rebuild_is_the_same_model(name, tmp_path, graph_batch):
    arch = SearchSpace.preset(name).sample(np.random.default_rng(1))
    torch.manual_seed(0)
    original = build_model(arch, INFO).eval()
    path = write_export({"architecture": json.loads(arch.to_json()), "data_info": INFO.__dict__}, tmp_path / "a.json")
    torch.save(original.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(123)  # a different initialisation, overwritten by the weights
    rebuilt = load_model(path, weights=tmp_path / "w.pt")
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in original.parameters())
    data = with_encodings(graph_batch)
    data.batch = None  # one node-level graph
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(**model_inputs(data, arch)), original(**model_inputs(data, arch)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cache_dir):
    d = tmp_path_factory.mktemp("export") / "run"
    Search(SearchConfig(space="tiny", run_dir=str(d), cache_dir=str(cache_dir), trials=4, strategy="random",
                        train=TrainConfig(epochs=10, patience=5, latency_repeats=1))).run()
    return d


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_export_record_from_a_run(run_dir):
    record = export_record(run_dir)
    best = json.loads((run_dir / "best_arch.json").read_text())
    assert record["run"]["trial"] == best["trial"] and record["architecture"] == best["architecture"]
    assert record["data_info"]["num_features"] == 32 and record["dataset"] == "synthetic"
    assert record["figures"]["flops"] == best["flops"] and "torch" in record["versions"]
    front = json.loads((run_dir / "pareto.json").read_text())["trials"]
    assert export_record(run_dir, pareto=0)["run"]["trial"] == front[0]["trial"]
    assert export_record(run_dir, trial=1)["run"]["trial"] == 1
    with pytest.raises(ExportError, match="no trial 99"):
        export_record(run_dir, trial=99)
    with pytest.raises(ExportError, match="out of range; the front has"):
        export_record(run_dir, pareto=len(front))


@pytest.mark.slow
def test_retrain_over_two_seeds(run_dir, tmp_path, cache_dir):
    path = write_export(export_record(run_dir), tmp_path / "arch.json")
    arch, info, _ = read_export(path)
    bundle = load_dataset("synthetic", cache_dir=cache_dir, encodings={arch.encoding: arch.encoding_dim})
    check_compatible(arch, info, bundle)
    report, note = retrain(arch, bundle, TrainConfig(epochs=10, patience=5, device="cpu"), seeds=2,
                           out_dir=tmp_path / "model", fmt="pt2")
    figures = json.loads((tmp_path / "model" / "figures.json").read_text())
    tests = [r.test_metric for r in report.results]
    assert figures["test_metric"]["mean"] == pytest.approx(np.mean(tests))
    assert figures["test_metric"]["std"] == pytest.approx(np.std(tests, ddof=1))
    w0, w1 = (torch.load(tmp_path / "model" / f"seed{s}.pt") for s in (0, 1))
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)  # different seeds, different weights
    model = load_model(path, weights=tmp_path / "model" / "seed0.pt")
    program = torch.export.load(tmp_path / "model" / "model.pt2").module()
    inputs = {k: v for k, v in model_inputs(bundle.data, arch).items() if v is not None}
    with torch.no_grad():
        torch.testing.assert_close(program(**inputs), model(**inputs), atol=1e-4, rtol=1e-4)
    assert note


def test_retrain_refuses_another_dataset_shape(cache_dir):
    arch = Architecture(space="s", hidden_dim=8, num_layers=1, dropout=0, lr=0.1, weight_decay=0,
                        layers=({"mpnn": "gcn"},))
    with pytest.raises(ExportError, match="exported for num_features=16, dataset 'synthetic' has num_features=32"):
        check_compatible(arch, INFO, load_dataset("synthetic", cache_dir=cache_dir))


def gcn_arch() -> Architecture:
    return Architecture(space="s", hidden_dim=16, num_layers=2, dropout=0.5, lr=0.01, weight_decay=0, residual=False,
                        layers=tuple(LayerArch(mpnn="gcn", norm="none") for _ in range(2)))


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_pt2_export_has_dynamic_sizes(tmp_path, small_graph, graph_batch):
    model = build_model(gcn_arch(), INFO).eval()
    note = export_program(model, {"x": small_graph.x, "edge_index": small_graph.edge_index}, tmp_path / "m.pt2")
    assert note == "dynamic node and edge counts"
    program = torch.export.load(tmp_path / "m.pt2").module()
    with torch.no_grad():  # a graph of another size runs through the same program
        torch.testing.assert_close(program(x=graph_batch.x, edge_index=graph_batch.edge_index),
                                   model(x=graph_batch.x, edge_index=graph_batch.edge_index), atol=1e-5, rtol=1e-4)


@pytest.mark.slow  # a full search or several: over 2 s on 2 cores
def test_dense_attention_exports_with_a_fixed_size_and_says_so(tmp_path, small_graph):
    arch = gcn_arch().model_copy(update={"layers": (LayerArch(mpnn="gcn", attention="full", heads=2, norm="none"),) * 2})
    note = export_program(build_model(arch, INFO), {"x": small_graph.x, "edge_index": small_graph.edge_index},
                          tmp_path / "m.pt2")
    assert note.startswith(f"fixed to {small_graph.num_nodes} nodes")


@pytest.mark.slow
def test_onnx_export_matches_onnxruntime(tmp_path, small_graph, graph_batch):
    ort = pytest.importorskip("onnxruntime")
    model = build_model(gcn_arch(), INFO).eval()
    export_program(model, {"x": small_graph.x, "edge_index": small_graph.edge_index}, tmp_path / "m.onnx", "onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    out = session.run(None, {"x": graph_batch.x.numpy(), "edge_index": graph_batch.edge_index.numpy()})[0]
    with torch.no_grad():
        expected = model(x=graph_batch.x, edge_index=graph_batch.edge_index).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-4)
