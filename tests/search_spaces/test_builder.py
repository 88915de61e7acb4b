"""build_model: every preset builds and runs on node-level and graph-level data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphnas.search_spaces import Architecture, DataInfo, SearchSpace, build_model, model_inputs, preset_names
from graphnas.search_spaces.builder import Cell


def with_encodings(data, k: int = 16):
    from graphnas.search_spaces.operators import ENCODING

    data = data.clone()
    for name in ("lap_pe", "rwse", "degree"):
        setattr(data, ENCODING.get(name).attr, torch.rand(data.num_nodes, k))
    data.x_row = data.x.abs() / data.x.abs().sum(-1, keepdim=True)  # what feature_norm: row reads
    return data


@pytest.mark.parametrize("name", preset_names())
@pytest.mark.parametrize("task", ["node_classification", "graph_classification", "graph_regression"])
def test_presets_build_and_run(name, task, graph_batch):
    space = SearchSpace.preset(name)
    data = with_encodings(graph_batch)
    info = DataInfo(task=task, num_features=16, num_outputs=3, edge_dim=4, deg=(0, 4, 6, 3),
                    num_edges=data.edge_index.size(1) if task == "node_classification" else None)
    rng = np.random.default_rng(0)
    for _ in range(3):
        arch = space.sample(rng)
        arch = arch.model_copy(update={"num_layers": min(arch.num_layers, 3),
                                       "layers": arch.layers[:3]}) if arch.links is None else arch
        if arch.sparsity is not None and task != "node_classification":  # learned edges need one graph
            arch = arch.model_copy(update={"sparsity": arch.sparsity.model_copy(update={"edge_method": "teddy"})})
        model = build_model(arch, info)
        out = model(**model_inputs(data, arch))
        rows = data.num_nodes if task == "node_classification" else data.num_graphs
        assert out.shape == (rows, 3)
        out.sum().backward()
        assert torch.isfinite(out).all()


def test_cell_sums_the_leaves():
    arch = SearchSpace.preset("nas_bench_graph").sample(np.random.default_rng(0))
    arch = arch.model_copy(update={"links": (0, 0, 1, 2)})
    cell = build_model(arch, DataInfo("node_classification", 4, 2)).body
    assert isinstance(cell, Cell) and cell.leaves == [3, 4]
    arch = arch.model_copy(update={"links": (0, 1, 2, 3)})
    assert build_model(arch, DataInfo("node_classification", 4, 2)).body.leaves == [4]


def test_model_inputs_requires_precomputed_encoding(small_graph):
    arch = Architecture(space="s", hidden_dim=8, num_layers=1, dropout=0, lr=0.1, weight_decay=0,
                        encoding="rwse", encoding_dim=4, layers=({"mpnn": "gcn"},))
    with pytest.raises(ValueError, match="no precomputed 'rwse'"):
        model_inputs(small_graph, arch)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="task must be one of"):
        DataInfo(task="link_prediction", num_features=3, num_outputs=2)


def test_a_layer_receives_its_built_operators_and_old_states_still_load(small_graph):
    """A stack layer is built from the operators its builder hands it (``GPSLayer(channels,
    local, attention, kv_source)``); a state saved when the attention and its norm were the
    layer's own ``attn`` and ``attn_norm`` loads into today's ``attention.attn``/``.norm``."""
    from graphnas.search_spaces.builder import AttentionBranch, GPSLayer, KVSource, OperatorBuilder

    arch = Architecture(space="s", hidden_dim=8, num_layers=2, dropout=0.0, lr=0.1, weight_decay=0,
                        layers=({"mpnn": "gcn", "attention": "kv_from_mpnn", "kv_source": "mpnn"},
                                {"mpnn": "sage", "attention": "full"}))
    info = DataInfo("node_classification", 16, 3)

    class Counting(OperatorBuilder):
        seen: list = []

        def mpnn(self, layer_index, name, ctx):
            self.seen.append((layer_index, name))
            return super().mpnn(layer_index, name, ctx)

    torch.manual_seed(0)
    model = build_model(arch, info, operators=Counting()).eval()
    assert Counting.seen == [(0, "gcn"), (1, "sage")]
    first, second = model.body.layers
    assert isinstance(first, GPSLayer) and isinstance(first.attention, AttentionBranch)
    assert isinstance(first.kv_source, KVSource) and first.kv_source.source == "mpnn" and second.kv_source is None
    old_state = {k.replace(".attention.attn.", ".attn.").replace(".attention.norm.", ".attn_norm."): v
                 for k, v in model.state_dict().items()}
    assert any(".attn_norm." in k for k in old_state) and not any(".attention." in k for k in old_state)
    fresh = build_model(arch, info).eval()
    fresh.load_trained_state(old_state)
    inputs = model_inputs(small_graph, arch)
    torch.testing.assert_close(fresh(**inputs), model(**inputs), rtol=0, atol=0)
