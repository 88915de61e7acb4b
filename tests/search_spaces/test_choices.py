"""The choices that express the published designs: each is in the Architecture JSON (and
its id), changes the built model, and is refused with a clear error where it cannot apply."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch_geometric import nn as gnn

from graphnas.evaluators.cost import measure_cost
from graphnas.evaluators.training import LR_SCHEDULES, OPTIMIZERS, _optimizer
from graphnas.search_spaces import Architecture, DataInfo, SearchSpace, SpaceError, build_model
from graphnas.search_spaces.architecture import canonical_fixes
from graphnas.search_spaces.zoo import zoo_entry

INFO = DataInfo("node_classification", num_features=20, num_outputs=3)
BASE = dict(space="s", hidden_dim=16, num_layers=2, dropout=0.5, lr=0.01, weight_decay=5e-4, residual=False)


def arch(layers=({"mpnn": "gat", "heads": 4}, {"mpnn": "gat", "heads": 4}), **kw) -> Architecture:
    return Architecture(**{**BASE, "layers": tuple(layers), **kw})


def convs(model):
    return [m for m in model.modules() if isinstance(m, gnn.MessagePassing)]


def space(**sections) -> SearchSpace:
    raw = {"name": "t", "global": {"hidden_dim": 16, "num_layers": 2, **sections.get("global", {})},
           "layers": {"mpnn": ["gcn", "gat"], "heads": 4, **sections.get("layers", {})}}
    return SearchSpace.from_dict(raw, "t.yaml")


def refused(match: str, **kw) -> None:
    with pytest.raises(ValidationError, match=match):
        arch(**kw)


def test_new_choices_are_in_the_json_and_the_id():
    a = arch(input_projection=False, head="last_layer", input_dropout=0.2, attention_dropout=0.3,
             feature_norm="row", optimizer="adam", layers=({"mpnn": "gat", "heads": 4, "activation": "elu",
                                                          "head_merge": "mean"}, {"mpnn": "gat", "norm": "none",
                                                          "activation": "identity"}))
    data = json.loads(a.to_json())
    for key, value in dict(input_projection=False, head="last_layer", input_dropout=0.2, attention_dropout=0.3,
                           feature_norm="row", optimizer="adam", jk="none").items():
        assert data[key] == value
    assert data["layers"][0]["activation"] == "elu" and data["layers"][0]["head_merge"] == "mean"
    assert Architecture.from_json(a.to_json()) == a
    ids = {arch().arch_id, arch(optimizer="adam").arch_id, arch(feature_norm="row").arch_id,
           arch(attention_dropout=0.3).arch_id, arch(input_dropout=0.1).arch_id, arch(jk="max").arch_id}
    assert len(ids) == 6


def test_defaults_keep_the_ids_architectures_had_before_the_choices():
    old = arch()
    data = json.loads(old.to_json())
    for key in ("input_projection", "head", "input_dropout", "attention_dropout", "feature_norm", "optimizer", "jk",
                "lr_schedule"):
        del data[key]
    for layer in data["layers"]:
        del layer["activation"], layer["head_merge"]
    assert Architecture.model_validate(data).arch_id == old.arch_id
    # the id this draw of the tiny preset had before these choices existed
    assert SearchSpace.preset("tiny").sample(np.random.default_rng(0)).arch_id == "393071fc1bc3"


def test_input_projection_false_feeds_the_raw_features_to_the_first_mpnn():
    projected, raw = build_model(arch(), INFO), build_model(arch(input_projection=False), INFO)
    assert isinstance(projected.input, torch.nn.Linear) and raw.input is None
    assert convs(raw)[0].in_channels == 20 and convs(projected)[0].in_channels == 16
    x, ei = torch.randn(10, 20), torch.randint(0, 10, (2, 30))
    assert measure_cost(raw, 1, x=x, edge_index=ei).flops != measure_cost(projected, 1, x=x, edge_index=ei).flops
    with pytest.raises(ValidationError, match="layer0.attention='full': the first layer reads the raw features"):
        arch(input_projection=False, layers=({"mpnn": "gcn", "attention": "full"}, {"mpnn": "gcn"}))


def test_last_layer_as_classifier_outputs_the_classes():
    model = build_model(arch(head="last_layer", layers=({"mpnn": "gcn"}, {"mpnn": "gcn", "norm": "none",
                                                                          "activation": "identity"})), INFO)
    assert model.head is None and convs(model)[-1].out_channels == 3
    assert model(torch.randn(10, 20), torch.randint(0, 10, (2, 30))).shape == (10, 3)
    refused("layer1.ffn=True: the last layer is the classifier",
            head="last_layer", layers=({"mpnn": "gcn"}, {"mpnn": "gcn", "ffn": True, "norm": "none", "activation": "identity"}))
    refused("jk='cat': the last layer is the classifier", head="last_layer", jk="cat",
            layers=({"mpnn": "gcn"}, {"mpnn": "gcn", "norm": "none", "activation": "identity"}))


def test_attention_dropout_reaches_attention_operators_only():
    model = build_model(arch(attention_dropout=0.6, layers=({"mpnn": "gat", "heads": 4}, {"mpnn": "gcn"})), INFO)
    gat, gcn = convs(model)
    assert gat.dropout == 0.6 and not hasattr(gcn, "dropout")
    assert build_model(arch(), INFO).body.layers[0].local.conv.dropout == 0.0
    refused("attention_dropout=0.6: applies to operators with attention coefficients .* the layers use mpnn gcn, gcn",
            attention_dropout=0.6, layers=({"mpnn": "gcn"}, {"mpnn": "gcn"}))
    with pytest.raises(SpaceError, match="global.attention_dropout: applies to operators with attention coefficients"):
        SearchSpace.from_dict({"name": "t", "global": {"attention_dropout": [0.0, 0.5]}, "layers": {"mpnn": ["gcn", "sage"]}})


def test_input_dropout_is_separate_from_hidden_dropout():
    assert build_model(arch(input_dropout=0.1), INFO).input_dropout == 0.1
    assert build_model(arch(), INFO).input_dropout == 0.5
    assert arch(input_dropout=0.5).input_dropout is None  # the same model as no separate input dropout
    refused("input_dropout", input_dropout=1.5)


def test_activation_per_layer():
    model = build_model(arch(layers=({"mpnn": "gat", "heads": 4, "activation": "elu"},
                                     {"mpnn": "gat", "heads": 4, "activation": "prelu"})), INFO)
    assert isinstance(model.body.layers[0].act, torch.nn.ELU) and isinstance(model.body.layers[1].act, torch.nn.PReLU)
    with pytest.raises(SpaceError, match=r"layers.activation\[1\]: expected one of: elu, gelu, identity, leaky_relu, "
                                         r"prelu, relu, tanh, got 'swish'"):
        space(layers={"activation": ["relu", "swish"]})


def test_heads_concatenated_or_averaged():
    concat = build_model(arch(layers=({"mpnn": "gat", "heads": 4, "head_merge": "concat"}, {"mpnn": "gcn"})), INFO)
    mean = build_model(arch(layers=({"mpnn": "gat", "heads": 4, "head_merge": "mean"}, {"mpnn": "gcn"})), INFO)
    assert (concat.body.layers[0].local.conv.out_channels, concat.body.layers[0].local.conv.concat) == (4, True)
    assert (mean.body.layers[0].local.conv.out_channels, mean.body.layers[0].local.conv.concat) == (16, False)
    refused("layer1.head_merge='mean': applies to multi-head MPNNs", layers=({"mpnn": "gat", "heads": 4},
                                                                           {"mpnn": "gcn", "head_merge": "mean"}))
    refused("concatenated heads need heads \\(3\\) to divide hidden_dim \\(16\\)",
            layers=({"mpnn": "gat", "heads": 3, "head_merge": "concat"}, {"mpnn": "gcn"}))
    with pytest.raises(SpaceError, match="layers.head_merge: applies to multi-head MPNNs"):
        SearchSpace.from_dict({"name": "t", "layers": {"mpnn": ["gcn", "sage"], "head_merge": ["concat", "mean"]}})


def test_row_normalised_features_are_read_from_the_precomputed_copy(cache_dir):
    from graphnas.evaluators import load_dataset
    from graphnas.evaluators.datasets import DatasetError
    from graphnas.search_spaces import model_inputs

    bundle = load_dataset("synthetic", cache_dir=cache_dir, feature_norms={"row"})
    x_row = bundle.data.x_row
    assert torch.allclose(x_row[x_row.sum(-1) != 0].sum(-1), torch.ones(1), atol=1e-5)
    inputs = model_inputs(bundle.data, arch(feature_norm="row"))
    assert inputs["x"] is x_row and model_inputs(bundle.data, arch())["x"] is bundle.data.x
    assert any((cache_dir / "features").iterdir())  # cached once per dataset
    from dataclasses import replace

    from graphnas.evaluators.datasets import add_feature_norms
    with pytest.raises(DatasetError, match="integer \\(embedded\\) node features: feature_norm row"):
        add_feature_norms(replace(bundle, info=replace(bundle.info, x_cardinalities=(3,))), {"row"}, None)
    with pytest.raises(SpaceError, match="global.feature_norm: expected one of: none, row, auto, got 'l2'"):
        space(**{"global": {"feature_norm": "l2"}})


def test_optimizer_adam_or_adamw():
    for name, cls in OPTIMIZERS.items():
        a = arch(optimizer=name)
        assert type(_optimizer(build_model(a, INFO), a, None)) is cls
    assert (OPTIMIZERS["adam"], OPTIMIZERS["adamw"]) == (torch.optim.Adam, torch.optim.AdamW)
    refused("optimizer", optimizer="sgd")


def test_lr_schedule_constant_step_or_cosine():
    model = build_model(arch(), INFO)
    lrs = {}
    for name in ("constant", "step", "cosine"):
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        schedule = LR_SCHEDULES[name](opt, 100)
        seen = []
        for _ in range(100):  # stepped once per epoch, as train_model does
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            if schedule is not None:
                schedule.step()
        lrs[name] = seen
    assert set(lrs["constant"]) == {0.01}
    assert lrs["step"][49] == 0.01 and lrs["step"][50] == pytest.approx(0.005)  # GIN: halved every 50 epochs
    assert lrs["cosine"][50] == pytest.approx(0.005) and lrs["cosine"][99] < 1e-5
    assert arch(lr_schedule="step").arch_id != arch().arch_id
    refused("lr_schedule", lr_schedule="linear")
    with pytest.raises(SpaceError, match="global.lr_schedule: expected one of: constant, step, cosine, got 'linear'"):
        space(**{"global": {"lr_schedule": "linear"}})


def test_jumping_knowledge_combines_the_layers():
    cat = build_model(arch(jk="cat"), INFO)
    assert isinstance(cat.body.jk, gnn.JumpingKnowledge) and cat.head.in_features == 32
    assert build_model(arch(jk="max"), INFO).head.in_features == 16
    assert cat(torch.randn(10, 20), torch.randint(0, 10, (2, 30))).shape == (10, 3)
    refused("jk='cat' reads every layer's output", jk="cat", sparsity={"layers": 0.5})
    with pytest.raises(ValidationError, match="jk: a NAS-Bench-Graph cell"):
        arch(jk="cat", links=(0, 1))


def test_space_sets_choices_that_cannot_apply_so_one_model_has_one_id():
    node = SearchSpace.preset("node")
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = node.sample(rng)  # validated: no architecture that breaks a rule is drawn
        assert node.contains(a)
        if a.head == "last_layer":
            assert a.layers[-1].activation == "identity" and a.layers[-1].norm == "none"
        assert canonical_fixes(a) == []
        if all(layer.mpnn not in ("gat", "gatv2") for layer in a.layers):
            assert a.attention_dropout == 0.0


def test_zoo_gat_through_the_node_space_is_the_zoo_model():
    node, gat = SearchSpace.preset("node"), zoo_entry("gat").architecture
    params = node.trial_params(gat)
    rebuilt = node.build(lambda key, choice: params.get(key, choice.values()[0]))
    assert rebuilt.model_dump(exclude={"space", "space_version"}) == gat.model_dump(exclude={"space", "space_version"})


def test_param_keys_parse_and_spell_every_form():
    from graphnas.search_spaces.param_key import ParamKey, layer_key

    for name, key in (("layer2.mpnn", ParamKey("mpnn", layer=2)), ("hidden_dim", ParamKey("hidden_dim")),
                      ("sparsity.edge_keep", ParamKey("edge_keep", sparsity=True)), ("layer10.heads", ParamKey("heads", 10))):
        assert ParamKey.parse(name) == key and str(key) == name
    assert layer_key(0, "attention") == "layer0.attention"
    assert ParamKey.parse("layerx.mpnn") == ParamKey("layerx.mpnn")  # not a layer key: kept whole
