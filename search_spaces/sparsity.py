"""Sparsification masks over four dimensions (GTSP: Liu et al., "Exploring Sparsity in
Graph Transformers", 2024): graph edges, attention heads, layers and weights.

Each dimension has a soft mask first: a sigmoid gate per edge, head, layer or weight
(logits start at ``INIT_LOGIT``, gates near 1), trained with the model under a penalty
that pushes the mean gate of the dimension down to its keep ratio (``mask_penalty``).
``harden`` then keeps exactly the top ``1 - target`` fraction, edges, heads and layers by
their accumulated importance ``|g dL/dg|`` (:class:`Gates`), weights by ``|W g|``, and
really removes the rest: edges leave ``edge_index``, heads leave the q/k/v and output
projections, layers leave the stack, and weights are zeroed under a fixed mask. Edges
can instead be scored in one shot by TEDDY (Seo et al., ICLR 2024), from degrees alone,
before any training.

FLOPs and parameters of pruned weights are counted as sparse products (2 per non-zero
multiply-add, non-zeros only; :mod:`evaluators.cost`), as the graph-lottery-ticket papers
report MACs. A dense kernel still runs them: weight sparsity lowers counted FLOPs and
parameters, not latency. The other three dimensions lower all three.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from graphnas.search_spaces.operators.pyg import explain_utils, gnn, utils

INIT_LOGIT = 3.0  # sigmoid(3) = 0.95: every part starts almost fully on


def keep_count(total: int, target: float) -> int:
    """How many of ``total`` parts survive removing a ``target`` fraction (at least one)."""
    return max(1, total - int(round(target * total)))


class Gates(nn.Module):
    """``n`` sigmoid gates with a target fraction to remove; ``keep()`` the surviving indices.

    The penalty pushes every gate of a dimension alike, so the gates' values alone rank
    parts poorly (measured on Cora: after 30 epochs all four layer gates were equal to three
    decimals). What the loss says about each part is kept instead: every training forward
    accumulates the first-order estimate of the loss change from closing the gate,
    ``|g dL/dg|`` (head importance of Michel et al. 2019, Taylor pruning of Molchanov et
    al. 2019), and ``keep()`` ranks by it (by the logits before any training)."""

    def __init__(self, n: int, target: float) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.full((n,), INIT_LOGIT))
        self.target = target
        self.register_buffer("importance", torch.zeros(n), persistent=False)

    def forward(self) -> Tensor:
        gates = self.logits.sigmoid()
        if gates.requires_grad:
            gates.register_hook(lambda grad: self.importance.add_((gates.detach() * grad).abs()))
        return gates

    def penalty(self) -> Tensor:
        """Zero once the mean gate is down to the keep ratio; linear above it (not seen by
        the importance: it is the same for every part)."""
        return torch.relu(self.logits.sigmoid().mean() - (1 - self.target))

    def keep(self) -> Tensor:
        k = keep_count(len(self.logits), self.target)
        score = self.importance if bool(self.importance.any()) else self.logits.detach()
        return torch.argsort(score, descending=True, stable=True)[:k].sort().values  # ties: earlier first


# --- edges ------------------------------------------------------------------------------------

def teddy_scores(edge_index: Tensor, num_nodes: int) -> Tensor:
    """TEDDY's edge scores (Seo et al. 2024, eq. for the edge-wise score): with degrees
    ``d``, a node's aggregated inverse-sqrt degree ``g(v) = (1/d_v) sum_{u in N(v)} d_u^-1/2``,
    and ``score(u, v) = g(u)/d_u * g(v)/d_v``: edges between low-degree nodes score high and
    are kept. Self-loops get the highest score (TEDDY never prunes them). Shape ``[E]``."""
    row, col = edge_index
    deg = utils.degree(col, num_nodes, dtype=torch.float)
    inv = deg.reciprocal().nan_to_num(0.0, posinf=0.0)
    g = utils.scatter(deg.rsqrt().nan_to_num(0.0, posinf=0.0)[row], col, dim_size=num_nodes, reduce="mean")
    score = g[row] * inv[row] * g[col] * inv[col]
    loops = row == col
    if loops.any():
        score = score.masked_fill(loops, float(score.max()) + 1.0)
    return score


class EdgeSparsifier(nn.Module):
    """Removes a ``target`` fraction of edges before the layers.

    ``learned``: one gate logit per edge of the single graph of a node task (``num_edges``
    of them); while soft, PyG's explainability masks scale every message of every
    MessagePassing layer by its edge's gate (as GNNExplainer's do: a degree normalisation,
    GCN's, still counts the edge); once hard, the dropped edges are gone.
    ``teddy``: the lowest-scoring edges of each forward's graph are dropped (a batch of
    graphs is ranked together).

    ``forward(edge_index [2, E], edge_attr [E, D] | None, num_nodes, layers)`` returns the
    kept ``edge_index``/``edge_attr``."""

    def __init__(self, target: float, method: str, num_edges: Optional[int]) -> None:
        super().__init__()
        if method == "learned" and not num_edges:
            raise ValueError("sparsity.edge_method 'learned' learns a gate per edge of one fixed graph (node "
                             "tasks); for graph-level tasks use edge_method: teddy")
        self.target, self.method = target, method
        self.gates = Gates(num_edges, target) if method == "learned" else None
        self.register_buffer("kept", None)

    def forward(self, edge_index: Tensor, edge_attr: Optional[Tensor], num_nodes: int,
                layers: nn.Module) -> tuple[Tensor, Optional[Tensor]]:
        if self.method == "teddy":
            scores = teddy_scores(edge_index, num_nodes)
            keep = torch.topk(scores, keep_count(scores.numel(), self.target)).indices.sort().values
        elif self.gates is not None:  # soft
            if edge_index.size(1) != self.gates.logits.numel():
                raise ValueError(f"learned edge masks were built for {self.gates.logits.numel()} edges, the graph "
                                 f"has {edge_index.size(1)}: learned edges need the full graph of a node task, "
                                 "not sampled mini-batches (use edge_method: teddy)")
            explain_utils.set_masks(layers, self.gates(), edge_index, apply_sigmoid=False)
            return edge_index, edge_attr
        else:
            keep = self.kept
        return edge_index[:, keep], edge_attr[keep] if edge_attr is not None else None

    def harden(self) -> None:
        """Keep the edges whose gates won (the caller clears the layers' message masks)."""
        if self.gates is not None:
            self.kept = self.gates.keep()
            self.gates = None


# --- heads and layers ---------------------------------------------------------------------------

def slice_linear(lin: nn.Linear, rows: Optional[Tensor] = None, cols: Optional[Tensor] = None) -> nn.Linear:
    """A new Linear with the given output rows / input columns of ``lin``, keeping its
    pruning mask if it has one."""
    weight, mask = lin.weight.detach(), getattr(lin, "weight_mask", None)
    if rows is not None:
        weight, mask = weight[rows], (mask[rows] if mask is not None else None)
    if cols is not None:
        weight, mask = weight[:, cols], (mask[:, cols] if mask is not None else None)
    out = nn.Linear(weight.size(1), weight.size(0), bias=lin.bias is not None).to(weight.device)
    with torch.no_grad():
        out.weight.copy_(weight)
        if lin.bias is not None:
            out.bias.copy_(lin.bias.detach() if rows is None else lin.bias.detach()[rows])
    if mask is not None:
        apply_weight_mask(out, mask)
    return out


def apply_weight_mask(lin: nn.Module, mask: Tensor) -> None:
    """Zero the weights where ``mask`` is 0 and keep them zero in later training (their
    gradient is masked; a fresh Adam then never moves them, decoupled decay keeps 0 at 0).
    The mask is a non-persistent buffer ``weight_mask``: it marks the layer as pruned for
    the cost counter, and state dicts stay plain (PyG's Linear saves ``weight`` only, so a
    reparametrization such as ``torch.nn.utils.prune``'s could not be reloaded)."""
    mask = mask.to(lin.weight.dtype)
    with torch.no_grad():
        lin.weight.mul_(mask)
    lin.register_buffer("weight_mask", mask, persistent=False)
    lin.weight.register_hook(lambda grad: grad * lin.weight_mask)  # the buffer follows .to(device)


def pruned_weights(module: nn.Module) -> int:
    """How many entries of ``module``'s weight :func:`apply_weight_mask` has zeroed (0 if none)."""
    mask = getattr(module, "weight_mask", None)
    return mask.numel() - int(mask.count_nonzero()) if isinstance(mask, Tensor) else 0


def head_rows(heads: Tensor, head_dim: int, blocks: int = 1, width: Optional[int] = None) -> Tensor:
    """Rows of a projection laid out as ``[blocks, H, head_dim]`` that belong to ``heads``."""
    width = width if width is not None else 0
    per_head = (heads[:, None] * head_dim + torch.arange(head_dim, device=heads.device)).reshape(-1)
    return torch.cat([b * width + per_head for b in range(blocks)])


# --- weights ------------------------------------------------------------------------------------

class SoftWeightMask(nn.Module):
    """Parametrization ``W -> W * sigmoid(scores)``, one learned score per weight (UGS's
    weight mask, Chen et al. 2021)."""

    def __init__(self, shape: torch.Size) -> None:
        super().__init__()
        self.scores = nn.Parameter(torch.full(shape, INIT_LOGIT))

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.scores.sigmoid()


def prunable_linears(module: nn.Module) -> list[nn.Module]:
    """The 2-D weight matrices pruned by weight sparsity: every ``nn.Linear`` and PyG
    ``Linear`` inside ``module`` (the layer stack: MPNNs, attention, FFNs; the input
    encoder and the output head are never pruned)."""
    return [m for m in module.modules() if isinstance(m, (nn.Linear, gnn.Linear))
            and isinstance(getattr(m, "weight", None), Tensor) and m.weight.dim() == 2]


class WeightSparsifier:
    """Soft weight masks on the prunable linears of ``module``, hardened by one global
    threshold on ``|W * gate|`` so that exactly a ``target`` fraction of all their
    weights is zero."""

    def __init__(self, module: nn.Module, target: float) -> None:
        self.target = target
        self.linears = prunable_linears(module)
        for lin in self.linears:
            parametrize.register_parametrization(lin, "weight", SoftWeightMask(lin.weight.shape))

    def penalty(self) -> Tensor:
        gates = torch.cat([lin.parametrizations.weight[0].scores.sigmoid().reshape(-1) for lin in self.linears])
        return torch.relu(gates.mean() - (1 - self.target))

    def harden(self) -> None:
        importance = [lin.weight.detach().abs() for lin in self.linears]  # |W * gate|
        flat = torch.cat([i.reshape(-1) for i in importance])
        dropped = torch.zeros_like(flat, dtype=torch.bool)
        dropped[torch.argsort(flat)[:flat.numel() - keep_count(flat.numel(), self.target)]] = True
        start = 0
        for lin, imp in zip(self.linears, importance):
            mask = ~dropped[start:start + imp.numel()].view_as(imp)
            start += imp.numel()
            parametrize.remove_parametrizations(lin, "weight", leave_parametrized=False)
            apply_weight_mask(lin, mask)


def prunable_weight_stats(module: nn.Module) -> tuple[int, int]:
    """(zeros, total) over the prunable weights of ``module`` as they are used."""
    weights = [lin.weight.detach() for lin in prunable_linears(module)]
    return sum(int((w == 0).sum()) for w in weights), sum(w.numel() for w in weights)
