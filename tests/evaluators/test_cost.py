"""FLOPs = 2 x multiply-adds, forward; checked against hand counts for GCN, GIN, attention."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torch_geometric.data import Batch

from graphnas.evaluators.cost import flops_of, latency_ms, measure_cost, params_of
from graphnas.search_spaces.operators import ATTENTION, MPNN, OpContext

C = 16


def op_flops(kind, name, data, heads=1):
    op = {"mpnn": MPNN, "attention": ATTENTION}[kind].get(name)(OpContext(channels=C, heads=heads))
    return flops_of(op, x=data.x, edge_index=data.edge_index, batch=getattr(data, "batch", None))


def test_flop_counter_alone_misses_message_passing(small_graph):
    # The reason for our formulas: torch's counter sees only the linear layer of GCN.
    op = MPNN.get("gcn")(OpContext(channels=C))
    counter = FlopCounterMode(display=False)
    with counter:
        op(small_graph.x, small_graph.edge_index)
    n = small_graph.num_nodes
    assert counter.get_total_flops() == 2 * n * C * C


def test_gcn_flops(small_graph):
    n, e = small_graph.num_nodes, small_graph.edge_index.size(1) + small_graph.num_nodes  # + self-loops
    # linear 2NC^2, aggregation 2EC (one multiply-add per edge and channel), degree sum 2E
    assert op_flops("mpnn", "gcn", small_graph) == 2 * n * C * C + 2 * e * C + 2 * e


def test_gin_flops(small_graph):
    n, e = small_graph.num_nodes, small_graph.edge_index.size(1)
    # sum aggregation 2EC, then a two-layer MLP C -> C -> C
    assert op_flops("mpnn", "gin", small_graph) == 2 * e * C + 2 * 2 * n * C * C


def test_gat_flops_include_the_softmax_reductions(small_graph):
    n, e = small_graph.num_nodes, small_graph.edge_index.size(1) + small_graph.num_nodes  # + self-loops
    heads = 2
    # linear 2NC^2; softmax over in-edges: a max and a sum reduction of E x H scores (2EH each);
    # weighted aggregation of E x C messages 2EC
    assert op_flops("mpnn", "gat", small_graph, heads=heads) == 2 * n * C * C + 2 * 2 * e * heads + 2 * e * C


def test_max_pooling_counts_its_reduction(graph_batch):
    from graphnas.search_spaces.operators import POOLING

    class Pool(torch.nn.Module):
        def forward(self, x, batch):
            return POOLING.get("max")(x, batch)

    assert flops_of(Pool(), x=graph_batch.x, batch=graph_batch.batch) == 2 * graph_batch.x.numel()


def test_mlp_and_skip_flops(small_graph):
    assert op_flops("mpnn", "mlp", small_graph) == 2 * small_graph.num_nodes * C * C
    assert op_flops("mpnn", "skip", small_graph) == 0


def test_full_attention_flops_single_graph(small_graph):
    n = small_graph.num_nodes
    projections = 2 * n * C * 3 * C + 2 * n * C * C
    # scores Q K^T and weighted sum A V: 2 * 2 * H * N^2 * (C / H)
    assert op_flops("attention", "full", small_graph, heads=2) == projections + 4 * n * n * C


def test_full_attention_flops_count_padding(graph_batch: Batch):
    n, b = graph_batch.num_nodes, graph_batch.num_graphs
    longest = int(torch.bincount(graph_batch.batch).max())
    projections = 2 * n * C * 3 * C + 2 * n * C * C
    node_count = 2 * n  # to_dense_batch counts nodes per graph with a scatter-add of N ones
    assert op_flops("attention", "full", graph_batch, heads=4) == (projections + node_count
                                                                   + 4 * b * longest ** 2 * C)


def test_attention_forms_are_ordered_by_cost():
    # On a larger graph quadratic attention must cost more than the linear and local forms.
    from tests.conftest import random_graph

    g = random_graph(400, 1600, C, 4, seed=0)
    full = op_flops("attention", "full", g, heads=2)
    performer = op_flops("attention", "performer", g, heads=2)
    masked = op_flops("attention", "masked", g, heads=2)
    assert full > performer > 0 and full > masked > 0


@pytest.mark.parametrize("kind,name", [("mpnn", n) for n in MPNN.names()] + [("attention", n) for n in ATTENTION.names()])
def test_every_operator_can_be_counted(kind, name, graph_batch):
    flops = op_flops(kind, name, graph_batch, heads=2)
    assert flops == 0 if name in ("skip", "none") else flops >= 2 * graph_batch.num_nodes * C * C


def test_params_latency_and_cost(small_graph):
    op = MPNN.get("gcn")(OpContext(channels=C))
    assert params_of(op) == C * C + C
    assert latency_ms(op, repeats=3, x=small_graph.x, edge_index=small_graph.edge_index) > 0
    cost = measure_cost(op, 2, x=small_graph.x, edge_index=small_graph.edge_index)
    assert cost.flops > 2 * small_graph.num_nodes * C * C and cost.params == C * C + C
    assert op.training  # measuring restores the mode
