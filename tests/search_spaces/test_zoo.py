"""The zoo: every entry builds, and has exactly the parameters of the same model written in
plain PyG here (the published shapes: GCN on Cora 23,063, GAT on Cora 92,373)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric import nn as gnn

from graphnas.search_spaces import DataInfo, SearchSpace, build_model
from graphnas.search_spaces.zoo import ZooError, zoo_entries, zoo_entry, zoo_names

CORA = DataInfo("node_classification", num_features=1433, num_outputs=7)
CITESEER = DataInfo("node_classification", num_features=3703, num_outputs=6)
MUTAG = DataInfo("graph_classification", num_features=7, num_outputs=2, edge_dim=4)
PEPTIDES_LIKE = DataInfo("graph_multilabel", num_features=9, num_outputs=10, edge_dim=3)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def plain_gcn(info: DataInfo) -> nn.Module:
    return nn.ModuleList([gnn.GCNConv(info.num_features, 16), gnn.GCNConv(16, info.num_outputs)])


def plain_gat(info: DataInfo) -> nn.Module:
    return nn.ModuleList([gnn.GATConv(info.num_features, 8, heads=8, dropout=0.6),
                          gnn.GATConv(64, info.num_outputs, heads=1, concat=False, dropout=0.6)])


def plain_sage(info: DataInfo) -> nn.Module:
    return nn.ModuleList([gnn.SAGEConv(info.num_features, 64), gnn.SAGEConv(64, info.num_outputs)])


def plain_gin(info: DataInfo) -> nn.Module:
    """GIN-0: four GINConv(MLP with BatchNorm), eps 0, BatchNorm after each, sum pooling of
    the concatenated layer outputs, MLP readout."""
    c = 32
    convs = [gnn.GINConv(gnn.MLP([info.num_features if i == 0 else c, c, c], norm="batch_norm"), train_eps=False)
             for i in range(4)]
    norms = [gnn.BatchNorm(c) for _ in range(4)]
    readout = nn.Sequential(nn.Linear(4 * c, c), nn.ReLU(), nn.Linear(c, info.num_outputs))
    return nn.ModuleList([*convs, *norms, readout])  # GIN reads no edge features: none are embedded


def plain_graphgps(info: DataInfo) -> nn.Module:
    """GraphGPS with PyG's GPSConv: GatedGCN local, 4-head attention, BatchNorm, FFN."""
    c = 96
    layers = [gnn.GPSConv(c, gnn.ResGatedGraphConv(c, c, edge_dim=c), heads=4, norm="batch_norm") for _ in range(4)]
    return nn.ModuleList([nn.Linear(info.num_features, c), nn.Linear(16, c), nn.Linear(info.edge_dim, c), *layers,
                          nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, info.num_outputs))])


def plain_darts_gt(info: DataInfo) -> nn.Module:
    """Per layer: GINEConv keys/values into a TransformerConv (edge features, root weight),
    BatchNorm on both branches, FFN with BatchNorm."""
    c = 64
    def layer():
        return nn.ModuleList([gnn.GINEConv(gnn.MLP([c, c, c], norm=None), train_eps=True, edge_dim=c),
                              gnn.TransformerConv(c, c // 4, heads=4, edge_dim=c, root_weight=True),
                              gnn.BatchNorm(c), gnn.BatchNorm(c), gnn.BatchNorm(c),
                              nn.Sequential(nn.Linear(c, 2 * c), nn.Linear(2 * c, c))])
    return nn.ModuleList([nn.Linear(info.num_features, c), nn.Linear(16, c), nn.Linear(info.edge_dim, c),
                          *(layer() for _ in range(4)),
                          nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, info.num_outputs))])


def plain_dagnn(info: DataInfo) -> nn.Module:
    """A per-node MLP (F -> 64 -> C), then weightless propagation scored by one Linear(C, 1)
    (PyG has no DAGNN layer: its parameters are these)."""
    return nn.ModuleList([nn.Linear(info.num_features, 64), nn.Linear(64, info.num_outputs),
                          nn.Linear(info.num_outputs, 1)])


def _luo(name: str):
    from tests.search_spaces.test_heterophily import plain_luo

    return lambda info: plain_luo(name, zoo_entry(f"luo_{name}").architecture, info)


def _platonov(name: str, blocks: int):
    from tests.search_spaces.test_heterophily import plain_platonov

    return lambda info: plain_platonov(info, 512, blocks, 8, name)


CHAMELEON = DataInfo("node_classification", num_features=2325, num_outputs=5)
HETEROPHILY = {"luo_gcn": (_luo("gcn"), [CHAMELEON]), "luo_sage": (_luo("sage"), [CHAMELEON]),
               "luo_gat": (_luo("gat"), [CHAMELEON]), "platonov_gat_sep": (_platonov("gat_sep", 5), [CHAMELEON]),
               "platonov_gt_sep": (_platonov("gt_sep", 5), [CHAMELEON])}
PLAIN = {**HETEROPHILY, "dagnn": (plain_dagnn, [CORA, CITESEER]), "gcn": (plain_gcn, [CORA, CITESEER]), "gat": (plain_gat, [CORA, CITESEER]), "sage": (plain_sage, [CORA]),
         "gin": (plain_gin, [MUTAG]), "graphgps": (plain_graphgps, [PEPTIDES_LIKE]),
         "darts_gt": (plain_darts_gt, [MUTAG])}


def test_every_entry_has_a_plain_pyg_twin_here():
    assert set(zoo_names()) == set(PLAIN)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_entry_builds_with_the_parameters_of_its_plain_pyg_model(name):
    plain, infos = PLAIN[name]
    entry = zoo_entry(name)
    for info in infos:
        model = build_model(entry.architecture, info)
        assert count(model) == count(plain(info)), (name, info.num_features)


def test_published_shapes():
    assert count(build_model(zoo_entry("gcn").architecture, CORA)) == 23_063
    assert count(build_model(zoo_entry("gat").architecture, CORA)) == 92_373


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_entry_runs_forward(name, small_graph, graph_batch):
    entry = zoo_entry(name)
    data = small_graph if entry.task == "node_classification" else graph_batch
    info = DataInfo(entry.task, num_features=16, num_outputs=3, edge_dim=4)
    model = build_model(entry.architecture, info).eval()
    pe = torch.randn(data.num_nodes, entry.architecture.encoding_dim)
    out = model(data.x, data.edge_index, data.edge_attr, getattr(data, "batch", None), pe=pe)
    assert out.shape == (data.num_nodes if entry.task == "node_classification" else data.num_graphs, 3)


def test_entries_hold_source_protocol_and_figures():
    for entry in zoo_entries():
        assert entry.source.paper and entry.source.table
        assert entry.protocol.epochs >= 1
        assert all(0 < v < 100 for v in entry.published.values())
    assert zoo_entry("gat").published == {"cora": 83.0, "citeseer": 72.5}
    assert zoo_entry("gin").protocol.folds == 10


def test_unknown_entry_lists_the_zoo():
    with pytest.raises(ZooError, match="unknown zoo entry 'gatt'; the zoo has: dagnn, darts_gt, gat, gcn"):
        zoo_entry("zoo:gatt")


def test_node_space_holds_gcn_gat_and_dagnn():
    node = SearchSpace.preset("node")
    for name in ("gcn", "gat", "dagnn"):
        assert node.contains(zoo_entry(name).architecture)
        params = node.trial_params(zoo_entry(name).architecture)
        rebuilt = node.build(lambda key, choice: params.get(key, choice.values()[0]))
        assert build_model(rebuilt, CORA).state_dict().keys() == build_model(zoo_entry(name).architecture, CORA).state_dict().keys()
        assert count(build_model(rebuilt, CORA)) == count(build_model(zoo_entry(name).architecture, CORA))


def test_graph_space_holds_gin():
    assert SearchSpace.preset("graph").contains(zoo_entry("gin").architecture)


def test_an_entry_takes_the_settings_its_source_publishes_per_dataset(tmp_path):
    from graphnas.nas import Search, SearchConfig
    from graphnas.search_spaces.zoo import ZooEntry

    dagnn = zoo_entry("dagnn")
    citeseer = dagnn.architecture_for("CiteSeer")
    assert (citeseer.dropout, citeseer.weight_decay) == (0.5, 0.02)
    assert dagnn.architecture_for("cora") == dagnn.architecture  # no settings of its own: the entry's
    assert citeseer.layers == dagnn.architecture.layers and SearchSpace.preset("node").contains(citeseer)
    search = Search(SearchConfig(dataset="citeseer", run_dir=str(tmp_path / "r")))  # the reference trial is CiteSeer's
    assert [e.architecture_for("citeseer") for e in search.references if e.name == "dagnn"] == [citeseer]
    with pytest.raises(ValueError, match="datasets.cora: 'layers' is not a global choice"):
        ZooEntry.model_validate({**dagnn.model_dump(), "datasets": {"cora": {"layers": []}}})
