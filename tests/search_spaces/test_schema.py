"""Space files: validation errors name the file, the field path and the valid values."""
from __future__ import annotations

import numpy as np
import optuna
import pytest

from graphnas.search_spaces import Architecture, SearchSpace, SpaceError, preset_names


def write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_yaml(path)
    message = str(info.value)
    assert str(path) in message  # every error names the file
    return message


def test_unknown_operator_names_path_and_registered_names(tmp_path):
    msg = error_of(tmp_path, "name: s\nlayers:\n  mpnn: [gcn, gat, sage, gcnn]\n")
    assert "layers.mpnn[3]" in msg and "'gcnn'" in msg
    from graphnas.search_spaces.operators import MPNN

    assert f"expected one of: {', '.join(MPNN.names())}, got 'gcnn'" in msg and "gatedgcn, gatv2, gcn" in msg


def test_unknown_attention_and_encoding(tmp_path):
    msg = error_of(tmp_path, "name: s\nglobal:\n  encoding: [none, lappe]\nlayers:\n  attention: flash\n")
    assert "global.encoding[1]" in msg and "degree, lap_pe, lap_pe_signnet, none, rwse" in msg
    assert "layers.attention: expected one of: agent, flow, full, gated, kv_from_mpnn, linear, masked, none, " in msg
    assert "performer, polynormer, sgformer, softplus, topm, got 'flash'" in msg


def test_empty_list_is_refused(tmp_path):
    msg = error_of(tmp_path, "name: s\nlayers:\n  mpnn: []\n")
    assert "layers.mpnn" in msg and "at least 1 item" in msg


def test_inverted_range_is_refused(tmp_path):
    msg = error_of(tmp_path, "name: s\nglobal:\n  num_layers: {low: 5, high: 2}\n")
    assert "global.num_layers" in msg and "inverted range: low=5 is greater than high=2" in msg


def test_log_range_needs_positive_low(tmp_path):
    assert "log-scaled range needs low > 0" in error_of(
        tmp_path, "name: s\nglobal:\n  lr: {low: 0.0, high: 0.1, log: true}\n")


def test_unknown_field_is_refused(tmp_path):
    msg = error_of(tmp_path, "name: s\nglobal:\n  hiden_dim: [32]\n")
    assert "global.hiden_dim: unknown field" in msg


def test_value_types_are_checked(tmp_path):
    msg = error_of(tmp_path, "name: s\nglobal:\n  hidden_dim: [32, big]\n  dropout: 1.5\n"
                             "  lr: 1e-3\nlayers:\n  ffn: [yes-please]\n")
    assert "global.hidden_dim[1]: expected an integer >= 1, got 'big'" in msg
    assert "global.dropout: expected a number in [0.0, 1.0)" in msg
    assert "global.lr: expected a number in (0.0, inf], got '1e-3'" in msg  # YAML reads 1e-3 as a string
    assert "layers.ffn[0]: expected true or false" in msg


def test_range_on_a_name_field_is_refused(tmp_path):
    msg = error_of(tmp_path, "name: s\nlayers:\n  mpnn: {low: 1, high: 3}\n")
    assert "layers.mpnn: a range is not allowed here" in msg


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpaceError, match="space file not found"):
        SearchSpace.from_yaml(tmp_path / "nope.yaml")
    assert "not valid YAML" in error_of(tmp_path, "name: [unclosed\n")


def test_links_must_match_depth(tmp_path):
    msg = error_of(tmp_path, "name: s\nglobal:\n  num_layers: 3\n  links: [[0, 0, 1, 2]]\n")
    assert "global.links" in msg and "num_layers" in msg


@pytest.mark.parametrize("name", preset_names())
def test_presets_are_valid_and_sample_inside(name):
    space = SearchSpace.preset(name)
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert space.contains(space.sample(rng))


def test_preset_sizes():
    nbg = SearchSpace.preset("nas_bench_graph")
    assert nbg.labelled_size() == 9 * 9 ** 4
    assert nbg.size() == 26206  # distinct cells by the benchmark's own valid_hash
    assert SearchSpace.preset("nas_bench_graph_proteins").size() == 2021  # its 5 ops
    # tiny: hidden 2 x encoding 2 x sum over depth 1..3 of (5 mpnn x 2 attention)^depth
    assert SearchSpace.preset("tiny").size() == 4 * sum(10 ** d for d in (1, 2, 3))
    assert set(preset_names()) >= {"tiny", "gps", "nas_bench_graph", "darts_gt"}


SMALL = {"name": "small", "global": {"hidden_dim": [16, 32], "num_layers": [1, 2]},
         "layers": {"mpnn": ["gcn", "gat"], "heads": {"choices": [1, 2], "tied": True}}}


def test_size_counts_every_distinct_architecture():
    space = SearchSpace.from_dict(SMALL)
    # hidden 2 x (depth 1: heads 2 x mpnn 2 + depth 2: heads 2 x mpnn 2^2)
    assert space.size() == 2 * (2 * 2 + 2 * 4) == 24
    rng = np.random.default_rng(0)
    seen = {space.sample(rng).arch_id for _ in range(2000)}
    # heads do nothing in a layer of GCN without attention: those labellings are one model,
    # one id (depth 1: gat x 2 heads + gcn; depth 2: 3 pairs with a gat x 2 heads + gcn-gcn)
    assert len(seen) == 2 * ((2 + 1) + (3 * 2 + 1)) == 20


def test_tied_choices_are_equal_across_layers():
    space = SearchSpace.from_dict({**SMALL, "global": {"num_layers": 4}})
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(50)]
    assert all(len({l.heads for l in a.layers}) == 1 for a in archs)
    assert any(len({l.mpnn for l in a.layers}) > 1 for a in archs)  # free: differs per layer
    gat = [l.model_copy(update={"mpnn": "gat"}) for l in archs[0].layers]  # heads apply to every layer
    mixed = archs[0].model_copy(update={"layers": (gat[0].model_copy(update={"heads": 1}),
                                                   *[l.model_copy(update={"heads": 2}) for l in gat[1:]])})
    assert not space.contains(mixed)
    # where a layer never reads its heads (GCN without attention), its value breaks no tie
    unread = mixed.model_copy(update={"layers": (mixed.layers[0].model_copy(update={"mpnn": "gcn"}), *mixed.layers[1:])})
    assert space.contains(unread)


def test_suggest_respects_ties():
    space = SearchSpace.from_dict({**SMALL, "global": {"num_layers": 3}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        arch = space.suggest(trial)
        assert "heads" in trial.params and "layer0.heads" not in trial.params
        assert len({l.heads for l in arch.layers}) == 1 and "layer2.mpnn" in trial.params


def test_links_refuse_branches_the_cell_lacks(tmp_path):
    msg = error_of(tmp_path, "name: s\nglobal:\n  num_layers: 2\n  links: [[0, 1]]\n"
                             "layers:\n  attention: [none, full]\n")
    assert "layers.attention: must be 'none' (fixed) in a space with links" in msg


def test_contains_rejects_values_outside():
    space = SearchSpace.preset("tiny")
    arch = space.sample(np.random.default_rng(0))
    assert not space.contains(arch.model_copy(update={"hidden_dim": 48}))
    assert not space.contains(arch.model_copy(update={"lr": 0.5}))
    bad_layer = arch.layers[0].model_copy(update={"mpnn": "pna"})
    assert not space.contains(arch.model_copy(update={"layers": (bad_layer, *arch.layers[1:])}))


def test_suggest_uses_named_optuna_parameters():
    space = SearchSpace.preset("tiny")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = space.suggest(trial)
    assert space.contains(arch)
    assert {"hidden_dim", "num_layers", "lr", "layer0.mpnn", "layer0.attention"} <= set(trial.params)
    assert trial.params["layer0.mpnn"] == arch.layers[0].mpnn


def test_suggest_link_patterns():
    space = SearchSpace.preset("nas_bench_graph")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = space.suggest(trial)
    assert arch.links is not None and trial.params["links"] == "-".join(map(str, arch.links))


def test_architecture_json_round_trip_and_stable_id():
    arch = SearchSpace.preset("gps").sample(np.random.default_rng(3))
    again = Architecture.from_json(arch.to_json())
    assert again == arch and again.arch_id == arch.arch_id
    import json
    shuffled = json.dumps(dict(reversed(list(json.loads(arch.to_json()).items()))))
    assert Architecture.from_json(shuffled).arch_id == arch.arch_id
    assert arch.model_copy(update={"dropout": arch.dropout + 0.01}).arch_id != arch.arch_id
    with pytest.raises(Exception, match="frozen"):
        arch.hidden_dim = 3


def test_architecture_rejects_inconsistent_depth():
    with pytest.raises(ValueError, match="num_layers=2 but 1 layers"):
        Architecture(space="s", hidden_dim=8, num_layers=2, dropout=0, lr=0.1, weight_decay=0,
                     layers=({"mpnn": "gcn"},))
