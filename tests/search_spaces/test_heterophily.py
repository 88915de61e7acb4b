"""Issue 42: the modern node designs (Luo et al. 2024, Platonov et al. 2023) are expressed
exactly: each zoo entry has the parameters of the same model written here in plain PyG /
torch, Luo's layer computes what the reference's forward computes, old architectures keep
their ids, and a space or zoo file with a key written twice is refused."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch_geometric import nn as gnn

from graphnas.search_spaces import Architecture, DataInfo, SearchSpace, build_model
from graphnas.search_spaces.builder import precomputed_feature_norms, resolve_feature_norm
from graphnas.search_spaces.schema import SpaceError
from graphnas.search_spaces.zoo import zoo_entries, zoo_entry

CHAMELEON = DataInfo("node_classification", num_features=2325, num_outputs=5)
SQUIRREL = DataInfo("node_classification", num_features=2089, num_outputs=5)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class PlainLuo(nn.Module):
    """LUOyk1999/tunedGNN medium_graph/model.py's MPNNs, without its unused modules:
    ``x = dropout(relu(norm(conv(x) + lin(x))))`` per layer, then a linear head."""

    def __init__(self, conv, f, c, out, layers, res, norm, dropout):
        super().__init__()
        widths = [f] + [c] * layers
        self.convs = nn.ModuleList(conv(widths[i], c) for i in range(layers))
        self.lins = nn.ModuleList(nn.Linear(widths[i], c) for i in range(layers)) if res else None
        self.norms = nn.ModuleList(nn.BatchNorm1d(c) for _ in range(layers)) if norm == "batch" else None
        self.pred, self.dropout = nn.Linear(c, out), dropout

    def forward(self, x, edge_index):
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index) + (self.lins[i](x) if self.lins is not None else 0)
            x = self.norms[i](x) if self.norms is not None else x
            x = nn.functional.dropout(torch.relu(x), self.dropout, self.training)
        return self.pred(x)


def plain_luo(name: str, arch: Architecture, info: DataInfo, bias: bool = True) -> PlainLuo:
    conv = {"gcn": gnn.GCNConv, "sage": gnn.SAGEConv,
            "gat": lambda i, o: gnn.GATConv(i, o, heads=1, add_self_loops=False, bias=bias)}[name]
    return PlainLuo(conv, info.num_features, arch.hidden_dim, info.num_outputs, arch.num_layers,
                    arch.residual == "linear", arch.layers[0].norm, arch.dropout)


@pytest.mark.parametrize("dataset,info", [("chameleon_filtered", CHAMELEON), ("squirrel_filtered", SQUIRREL)])
@pytest.mark.parametrize("name", ["gcn", "sage", "gat"])
def test_luo_entries_have_the_parameters_of_the_reference_model(name, dataset, info):
    arch = zoo_entry(f"luo_{name}").architecture_for(dataset)
    plain = plain_luo(name, arch, info)
    assert count(build_model(arch, info)) == count(plain)
    if name == "gat":  # the reference's GATConv has no bias: documented in the entry
        assert count(plain) - count(plain_luo(name, arch, info, bias=False)) == arch.num_layers * arch.hidden_dim


def test_luo_gcn_computes_the_reference_forward():
    """Squirrel's setting (linear skip, BatchNorm): the same weights give the same logits."""
    torch.manual_seed(0)
    info = DataInfo("node_classification", num_features=12, num_outputs=5)
    arch = zoo_entry("luo_gcn").architecture_for("squirrel_filtered").model_copy(update={"hidden_dim": 16})
    model, plain = build_model(arch, info).eval(), plain_luo("gcn", arch, info).eval()
    for i, layer in enumerate(model.body.layers):
        plain.convs[i].load_state_dict(layer.local.conv.state_dict())
        plain.lins[i].load_state_dict(layer.skip.state_dict())
        layer.local_norm.norm.module.running_mean.normal_()
        plain.norms[i].load_state_dict(layer.local_norm.norm.module.state_dict())
    plain.pred.load_state_dict(model.head.state_dict())
    x, edge_index = torch.randn(30, 12), torch.randint(0, 30, (2, 90))
    torch.testing.assert_close(model(x, edge_index), plain(x, edge_index))


def plain_platonov(info: DataInfo, c: int, blocks: int, heads: int, kind: str) -> nn.Module:
    """yandex-research/heterophilous-graphs model.py/modules.py's parameters: input and
    output Linear, a LayerNorm per residual module and at the end, and each module's own."""
    def ffn(i):
        return nn.Sequential(nn.Linear(i, c), nn.Linear(c, c))
    modules = []
    for _ in range(blocks):
        if kind == "gat_sep":
            modules.append(nn.ModuleList([nn.LayerNorm(c), nn.Linear(c, c), nn.Linear(c, heads),
                                          nn.Linear(c, heads, bias=False), ffn(2 * c)]))
        else:  # GT-sep: q, k, v, out(2c -> c); then the FFN module
            modules.append(nn.ModuleList([nn.LayerNorm(c), *(nn.Linear(c, c) for _ in range(3)), nn.Linear(2 * c, c)]))
            modules.append(nn.ModuleList([nn.LayerNorm(c), ffn(c)]))
    return nn.ModuleList([nn.Linear(info.num_features, c), *modules, nn.LayerNorm(c), nn.Linear(c, info.num_outputs)])


@pytest.mark.parametrize("name,blocks", [("gat_sep", 5), ("gt_sep", 5)])
def test_platonov_entries_have_the_parameters_of_the_reference_model(name, blocks):
    arch = zoo_entry(f"platonov_{name}").architecture
    assert count(build_model(arch, CHAMELEON)) == count(plain_platonov(CHAMELEON, 512, blocks, 8, name))


def test_the_platonov_stack_is_pre_norm_and_ends_in_a_norm():
    torch.manual_seed(0)
    info = DataInfo("node_classification", num_features=12, num_outputs=5)
    arch = zoo_entry("platonov_gt_sep").architecture.model_copy(update={"hidden_dim": 16})
    model = build_model(arch, info).eval()
    x, edge_index = torch.randn(30, 12), torch.randint(0, 30, (2, 90))
    h = model.input_act(model.input(x))
    for layer in model.body.layers:
        h = h + layer.local(layer.local_norm(h), edge_index)
    torch.testing.assert_close(model(x, edge_index), model.head(model.body.out_norm(h)))


def test_the_default_node_space_holds_every_node_zoo_entry_as_published():
    node = SearchSpace.preset("node")
    for entry in zoo_entries("node_classification"):
        for dataset in [None, *entry.datasets]:
            assert node.contains(entry.architecture_for(dataset)), (entry.name, dataset)
    planetoid = SearchSpace.preset("planetoid")
    assert planetoid.contains(zoo_entry("gcn").architecture) and not planetoid.contains(zoo_entry("luo_gcn").architecture)


# ids from before issue 42 (commit 6f441ae): stored run directories and exports name them
OLD_IDS = {"gcn": "41b5e4726926", "gat": "8e631e772042", "sage": "34218b7f4d49", "dagnn": "fa6fb8ea91a7",
           "gin": "10a9509e97d3", "graphgps": "d2d4734bf452", "darts_gt": "51797caf8e2b"}


def test_architectures_from_before_keep_their_ids_and_residual_true_false_still_reads():
    for name, arch_id in OLD_IDS.items():
        arch = zoo_entry(name).architecture
        if arch.feature_norm == "auto":  # the entry follows the data now (issue 46); the design it was keeps its id
            arch = arch.model_copy(update={"feature_norm": "row"})
        assert arch.arch_id == arch_id
        old_json = json.loads(arch.to_json())
        old_json["residual"] = old_json["residual"] == "identity"  # as written before
        for key in ("layer_form", "input_activation"):
            del old_json[key]
        assert Architecture.model_validate(old_json).arch_id == arch_id
    gcn = zoo_entry("gcn").architecture
    assert gcn.residual == "none"
    assert gcn.model_copy(update={"residual": "linear"}).arch_id != gcn.arch_id


def test_a_space_written_with_true_false_holds_and_enqueues_the_same_architectures(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nglobal: {residual: [false, true]}\nlayers: {mpnn: gcn}\n")
    space = SearchSpace.from_yaml(path)
    arch = Architecture(space="s", hidden_dim=64, num_layers=2, dropout=0.0, lr=0.01, weight_decay=0.0,
                        residual="identity", layers=[{"mpnn": "gcn"}] * 2)
    assert space.contains(arch) and space.trial_params(arch) == {"residual": True}
    assert not space.contains(arch.model_copy(update={"residual": "linear"}))


def test_feature_norm_auto_is_row_for_counts_and_none_for_signed_features():
    assert resolve_feature_norm("auto", torch.tensor([[0.0, 2.0], [1.0, 0.0]])) == "row"
    assert resolve_feature_norm("auto", torch.tensor([[0.5, -1.0]])) == "none"
    assert resolve_feature_norm("auto", torch.tensor([[0.5, 1.0]])) == "none"  # real-valued
    assert resolve_feature_norm("row", torch.tensor([[-1.0]])) == "row"
    assert precomputed_feature_norms({"auto", "none"}) == {"auto", "row"}  # x_auto is x_row or x


def test_a_duplicated_key_in_a_space_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("name: s\nglobal:\n  hidden_dim: 16\n  num_layers: 2\n  hidden_dim: 32\n")
    with pytest.raises(SpaceError, match=r"space.yaml: duplicate key 'hidden_dim' at lines 3 and 5"):
        SearchSpace.from_yaml(path)


def test_a_duplicated_key_in_a_zoo_file_is_refused(monkeypatch):
    from graphnas.search_spaces import zoo
    from graphnas.search_spaces.schema import DuplicateKeyError, load_yaml

    with pytest.raises(DuplicateKeyError, match="duplicate key 'dropout' at lines 2 and 3"):
        load_yaml("architecture:\n  dropout: 0.5\n  dropout: 0.6\n")
    assert load_yaml("a: {b: 1}\nc: 2\n") == {"a": {"b": 1}, "c": 2}
    assert "load_yaml" in zoo.zoo_entry.__wrapped__.__code__.co_names
