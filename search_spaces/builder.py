"""``build_model(arch, data_info)``: turn an :class:`Architecture` into an ``nn.Module``.

Two bodies share one encoder and one head:

* a GraphGPS-style stack (Rampasek et al. 2022): per layer, a local MPNN branch and an
  optional global attention branch, each with residual and norm, summed, then an optional
  FFN. Like PyG's ``GPSConv(channels, conv)`` a layer receives its built operators (from an
  :class:`OperatorBuilder`, the hook DARTS' supernet fills with mixed operations); written
  here rather than with ``GPSConv`` itself because GPSConv's attention is fixed to its own
  two forms and cannot take our registered attention operators. The
  first layer may read the raw features (``input_projection=False``), the last may be the
  classifier (``head="last_layer"``), and jumping knowledge may combine the layers: with
  both of the first two the stack is exactly Kipf & Welling's GCN or Velickovic et al.'s GAT.
* a NAS-Bench-Graph cell when ``arch.links`` is set.
"""
from __future__ import annotations

import re

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from graphnas.search_spaces.architecture import Architecture, LayerArch, residual_name
from graphnas.search_spaces.operators import ACTIVATION, ATTENTION, ENCODING, MPNN, NORM, POOLING, OpContext
from graphnas.search_spaces.operators.attention import takes_kv
from graphnas.search_spaces.operators.pyg import explain_utils, gnn
from graphnas.search_spaces.sparsity import EdgeSparsifier, Gates, WeightSparsifier

if TYPE_CHECKING:
    from torch_geometric.data import Data

# feature_norm -> the attribute of Data that holds the features so normalised (computed
# once per dataset by evaluators.datasets.add_feature_norms)
# where a dataset keeps each normalisation's features, computed once per dataset (evaluators.datasets);
# ``x_auto`` is the one ``auto`` resolved to for that dataset, decided once on all its features
FEATURE_NORM_ATTRS = {"row": "x_row", "auto": "x_auto"}


def resolve_feature_norm(norm: str, x: Tensor) -> str:
    """``auto`` for these features: ``row`` where they are non-negative integers (counts or
    binary: bag-of-words, one-hot), the features row normalisation was made for; ``none``
    for signed or real-valued ones (row-normalising signed features can flip their sign and
    blow up near-zero sums; 7 or 10 numeric columns lose their scale). Other values as given."""
    if norm != "auto":
        return norm
    x = x.float()
    counts = x.numel() > 0 and bool((x >= 0).all()) and bool((x == x.round()).all())
    return "row" if counts else "none"


def precomputed_feature_norms(norms) -> set[str]:
    """The feature normalisations a dataset must precompute for architectures with these
    ``feature_norm`` values (``auto`` may need ``row``)."""
    norms = set(norms)
    return (norms | ({"row"} if "auto" in norms else set())) - {"none"}
TASKS = ("node_classification", "graph_classification", "graph_regression", "graph_multilabel")


@dataclass(frozen=True)
class DataInfo:
    """What the model must know about the data.

    Attributes:
        task: one of ``TASKS``.
        num_features: node feature width.
        num_outputs: classes (classification) or targets (regression).
        edge_dim: edge feature width, ``None`` without edge features.
        deg: in-degree histogram of the training graphs (``deg[i]`` nodes of degree ``i``).
        x_cardinalities: for integer (categorical) node features, the number of values of
            each column (molecules: atom type, chirality, ...); embedded, not projected.
        edge_cardinalities: the same for integer edge features (bond type, ...).
        num_edges: edges of the one graph of a node task (learned edge masks need it).
        node_features: what the node features are where the loader made them (graphs
            without node features: one-hot degree); ``None``: the dataset's own.
    """

    task: str
    num_features: int
    num_outputs: int
    edge_dim: Optional[int] = None
    deg: tuple[int, ...] = (0, 1)
    x_cardinalities: Optional[tuple[int, ...]] = None
    edge_cardinalities: Optional[tuple[int, ...]] = None
    num_edges: Optional[int] = None
    node_features: Optional[str] = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    @property
    def graph_level(self) -> bool:
        return self.task != "node_classification"


class CategoricalEncoder(nn.Module):
    """OGB's AtomEncoder/BondEncoder idea for any integer features: one embedding table per
    column, summed. Shapes: ``[N, len(cardinalities)]`` (long) -> ``[N, channels]``."""

    def __init__(self, cardinalities: tuple[int, ...], channels: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, channels) for n in cardinalities)

    def forward(self, x: Tensor) -> Tensor:
        return sum(table(x[:, i].long()) for i, table in enumerate(self.tables))


_CONCAT = {"auto": None, "concat": True, "mean": False}


def layer_context(layer: LayerArch, channels: int, edge_dim: Optional[int], deg: Tensor,
                  attention_dropout: float = 0.0, head_sparsity: float = 0.0,
                  in_channels: Optional[int] = None, dropout: float = 0.0) -> tuple[OpContext, OpContext]:
    """The contexts a layer's MPNN and its attention form are built from. Their
    ``dropout`` is the model's attention dropout; :func:`for_operator` keeps it only for an
    operator that declares ``attention_dropout``."""
    ctx = OpContext(channels=channels, heads=layer.heads, edge_dim=edge_dim, deg=deg, dropout=attention_dropout,
                    top_m=layer.top_m, head_sparsity=head_sparsity, in_channels=in_channels,
                    concat=_CONCAT[layer.head_merge], hidden_dropout=dropout)
    return ctx, replace(ctx, in_channels=None, concat=None)


def for_operator(registry, name: str, ctx: OpContext) -> OpContext:
    """``ctx`` with its attention dropout kept only for an operator registered with
    ``attention_dropout``: on CPU, dropout on SDPA weights forces its math kernel
    (measured 7x slower on Cora), a cost only the forms that ask for it should pay."""
    return ctx if name in registry and registry.entry(name).can("attention_dropout") else replace(ctx, dropout=0.0)


class AttentionBranch(nn.Module):
    """The global branch of a stack layer: ``norm(skip + dropout(attn(h, kv)))``, with
    ``kv`` passed only to a form that takes its keys and values from it (``takes_kv``).
    Shapes: ``h, kv [N, C]`` -> ``[N, C]``."""

    def __init__(self, attn: nn.Module, norm: nn.Module, dropout: float, takes_kv: bool) -> None:
        super().__init__()
        self.attn, self.norm = attn, norm
        self.dropout, self.takes_kv = dropout, takes_kv

    def forward(self, h: Tensor, kv: Tensor, skip: Tensor | int, edge_index: Tensor,
                edge_attr: Optional[Tensor], batch: Optional[Tensor]) -> Tensor:
        extra = {"kv": kv} if self.takes_kv else {}
        glob = self.attn(h, edge_index, edge_attr, batch, **extra)
        return self.norm(skip + F.dropout(glob, self.dropout, self.training), batch)

    def dataflow(self) -> str:
        kv = ", kv=kv" if self.takes_kv else ""
        return (f"returns norm(skip + dropout(attn(h, edge_index, edge_attr, batch{kv}), p={self.dropout}), batch) "
                "(skip: h with a residual, else 0)")


class KVSource(nn.Module):
    """What an attention form that ``takes_kv`` reads its keys and values from: the layer
    input (``features``) or the layer's MPNN output (``mpnn``). Shapes: ``h, local [N, C]``
    -> ``[N, C]``."""

    def __init__(self, source: str) -> None:
        super().__init__()
        if source not in ("features", "mpnn"):
            raise ValueError(f"kv_source must be features or mpnn, got {source!r}")
        self.source = source

    def forward(self, h: Tensor, local: Tensor) -> Tensor:
        return local if self.source == "mpnn" else h

    def dataflow(self) -> str:
        return "returns local (the MPNN output)" if self.source == "mpnn" else "returns h (the layer input)"


class OperatorBuilder:
    """How the operators of a model are built from its architecture: the hook of
    :func:`build_model`. This one builds the chosen operators; DARTS' supernet
    (:mod:`nas.supernet`) builds a mixed operation where a choice is searched. Each method
    is given the layer's index, so that a builder can tell the layers apart."""

    def mpnn(self, layer_index: int, name: str, ctx: OpContext) -> nn.Module:
        """The layer's MPNN (a cell node's operator, the classifier layer's MPNN)."""
        return MPNN.get(name)(for_operator(MPNN, name, ctx))

    def attention(self, layer_index: int, name: str, ctx: OpContext, norm: str,
                  dropout: float) -> Optional[nn.Module]:
        """The layer's global branch (:class:`AttentionBranch`), ``None`` without attention."""
        if name == "none":
            return None
        attn = ATTENTION.get(name)(for_operator(ATTENTION, name, ctx))
        return AttentionBranch(attn, NORM.get(norm)(ctx.channels), dropout, takes_kv(name))

    def kv_source(self, layer_index: int, name: str, attention: str) -> Optional[nn.Module]:
        """What the attention reads its keys and values from; ``None``: the layer input."""
        if name != "mpnn":
            return None
        if attention == "none" or not takes_kv(attention):
            raise ValueError(f"kv_source='mpnn' needs an attention form that takes keys and values from the "
                             f"MPNN (kv_from_mpnn), got attention={attention!r}")
        return KVSource(name)


CHOSEN_OPERATORS = OperatorBuilder()


class GPSLayer(nn.Module):
    """One stack layer, built from its operators as PyG's ``GPSConv(channels, conv)``:
    ``local`` the MPNN, ``attention`` the global branch (``None``: none), ``kv_source`` what
    the attention reads its keys and values from (``None``: the layer input), ``skip`` the
    linear map of a ``linear`` residual. ``form`` places norm, activation, dropout and
    residual around the MPNN (:data:`search_spaces.architecture.LayerForm`): ``gps``
    (GraphGPS, with the attention and FFN branches), ``conv_norm_act`` (Luo et al. 2024)
    or ``pre_norm`` (Platonov et al. 2023). Shapes: ``h [N, in_channels or C]`` -> ``[N, C]``;
    an ``identity`` residual needs the width unchanged (a first layer on raw features has none)."""

    def __init__(self, channels: int, local: nn.Module, attention: Optional[nn.Module] = None,
                 kv_source: Optional[nn.Module] = None, *, act: nn.Module, norm: Callable[[int], nn.Module],
                 ffn: bool, dropout: float, residual: str, form: str = "gps",
                 in_channels: Optional[int] = None) -> None:
        super().__init__()
        if form != "gps" and (attention is not None or ffn):
            raise ValueError(f"layer_form={form!r} wraps the MPNN alone: no attention or FFN branch")
        self.form, self.residual = form, residual
        self.local = local
        self.act = act
        # pre_norm normalises the layer input (its width), the others the output
        self.local_norm = norm(in_channels or channels if form == "pre_norm" else channels)
        self.skip = nn.Linear(in_channels or channels, channels) if residual == "linear" else None
        self.attention = attention
        self.kv_source = kv_source
        self.ffn = (nn.Sequential(nn.Linear(channels, 2 * channels), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(2 * channels, channels)) if ffn else None)
        self.ffn_norm = norm(channels) if ffn else None
        self.dropout = dropout

    def _skip(self, h: Tensor) -> Tensor | int:
        return self.skip(h) if self.skip is not None else h if self.residual == "identity" else 0

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor],
                batch: Optional[Tensor]) -> Tensor:
        skip = self._skip(h)
        if self.form == "conv_norm_act":
            out = self.local_norm(self.local(h, edge_index, edge_attr, batch) + skip, batch)
            return F.dropout(self.act(out), self.dropout, self.training)
        if self.form == "pre_norm":
            local = self.act(self.local(self.local_norm(h, batch), edge_index, edge_attr, batch))
            return skip + F.dropout(local, self.dropout, self.training)
        local = self.act(self.local(h, edge_index, edge_attr, batch))
        out = self.local_norm(skip + F.dropout(local, self.dropout, self.training), batch)
        if self.attention is not None:
            kv = h if self.kv_source is None else self.kv_source(h, local)
            out = out + self.attention(h, kv, skip, edge_index, edge_attr, batch)
        if self.ffn is not None:
            out = self.ffn_norm(out + F.dropout(self.ffn(out), self.dropout, self.training), batch)
        return out

    def dataflow(self) -> str:
        """The forward in words, for the export's ``model`` section."""
        p = self.dropout
        skip = {"identity": "h", "linear": "skip(h)"}.get(self.residual, "0")
        plus = "" if skip == "0" else f"{skip} + "
        end = "; returns out (dropout is off in eval mode; norms that ignore batch take x alone)"
        if self.form == "conv_norm_act":
            added = "" if skip == "0" else f" + {skip}"
            return f"out = dropout(act(local_norm(local(h, edge_index, edge_attr, batch){added}, batch)), p={p})" + end
        if self.form == "pre_norm":
            return f"out = {plus}dropout(act(local(local_norm(h, batch), edge_index, edge_attr, batch)), p={p})" + end
        steps = ["local = act(local(h, edge_index, edge_attr, batch))",
                 f"out = local_norm({plus}dropout(local, p={p}), batch)"]
        if self.attention is not None:
            kv = "h" if self.kv_source is None else "kv_source(h, local)"
            steps.append(f"out = out + attention(h, kv={kv}, skip={skip}, edge_index, edge_attr, batch)")
        if self.ffn is not None:
            steps.append(f"out = ffn_norm(out + dropout(ffn(out), p={p}), batch)")
        return "; ".join(steps) + end


def stack_layer(index: int, layer: LayerArch, channels: int, dropout: float, edge_dim: Optional[int],
                deg: Tensor, residual: str = "identity", head_sparsity: float = 0.0, in_channels: Optional[int] = None,
                attention_dropout: float = 0.0, operators: OperatorBuilder = CHOSEN_OPERATORS,
                form: str = "gps") -> GPSLayer:
    """Layer ``index`` of a stack: its operators from ``operators``, then the layer."""
    local_ctx, ctx = layer_context(layer, channels, edge_dim, deg, attention_dropout, head_sparsity, in_channels,
                                   dropout)
    local = operators.mpnn(index, layer.mpnn, local_ctx)
    attention = operators.attention(index, layer.attention, ctx, layer.norm, dropout)
    kv = operators.kv_source(index, layer.kv_source, layer.attention)  # refuses mpnn without a form that takes it
    residual = residual_name(residual)
    if residual == "identity" and local_ctx.in_width != channels:
        residual = "none"  # the width changes (raw features in): nothing to add the input to
    return GPSLayer(channels, local, attention, kv, act=ACTIVATION.get(layer.activation)(),
                    norm=NORM.get(layer.norm), ffn=layer.ffn, dropout=dropout, residual=residual, form=form,
                    in_channels=in_channels)


class ClassifierLayer(nn.Module):
    """A last layer that is the classifier (``head="last_layer"``): its MPNN alone, from the
    model width to the outputs, heads averaged (GAT's output layer). Shapes: ``h [N, C_in]``
    -> ``[N, num_outputs]``."""

    def __init__(self, local: nn.Module) -> None:
        super().__init__()
        self.local = local

    @staticmethod
    def build(index: int, layer: LayerArch, in_channels: int, out_channels: int, edge_dim: Optional[int],
              deg: Tensor, attention_dropout: float = 0.0,
              operators: OperatorBuilder = CHOSEN_OPERATORS) -> "ClassifierLayer":
        layer = layer.model_copy(update={"head_merge": "mean" if layer.heads > 1 else "auto"})
        ctx, _ = layer_context(layer, out_channels, edge_dim, deg, attention_dropout, in_channels=in_channels)
        return ClassifierLayer(operators.mpnn(index, layer.mpnn, ctx))

    def dataflow(self) -> str:
        return "returns local(h, edge_index, edge_attr, batch): the logits, no activation, norm or residual"

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor],
                batch: Optional[Tensor]) -> Tensor:
        return self.local(h, edge_index, edge_attr, batch)


class LayerStack(nn.Module):
    """The layers in order, optionally combined by jumping knowledge (``arch.jk``, PyG's
    ``JumpingKnowledge``). With layer sparsity, each layer's update is scaled by a learned
    gate, ``h + g (layer(h) - h)``, until :meth:`harden` removes the layers that lost (a
    removed layer is the identity). ``out_channels`` is the width of what it returns."""

    def __init__(self, arch: Architecture, edge_dim: Optional[int], deg: Tensor,
                 in_channels: Optional[int] = None, num_outputs: Optional[int] = None,
                 operators: OperatorBuilder = CHOSEN_OPERATORS) -> None:
        super().__init__()
        sparsity, c, last = arch.sparsity_targets, arch.hidden_dim, arch.num_layers - 1
        layers = []
        for i, layer in enumerate(arch.layers):
            width_in = in_channels if i == 0 else None
            if arch.head == "last_layer" and i == last:
                layers.append(ClassifierLayer.build(i, layer, width_in or c, num_outputs, edge_dim, deg,
                                                    arch.attention_dropout, operators))
            else:
                layers.append(stack_layer(i, layer, c, arch.dropout, edge_dim, deg, arch.residual, sparsity.heads,
                                          width_in, arch.attention_dropout, operators, arch.layer_form))
        self.layers = nn.ModuleList(layers)
        # A pre-norm stack adds every layer's update to an unnormalised stream: it ends in a
        # norm (the last layer's kind), as Platonov et al.'s and pre-LN transformers do.
        self.out_norm = NORM.get(arch.layers[-1].norm)(c) if arch.layer_form == "pre_norm" else None
        self.gates = Gates(len(self.layers), sparsity.layers) if sparsity.layers > 0 and len(self.layers) > 1 else None
        self.jk = None if arch.jk == "none" else gnn.JumpingKnowledge(arch.jk)
        self.out_channels = (num_outputs if arch.head == "last_layer"
                             else c * arch.num_layers if arch.jk == "cat" else c)

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor],
                batch: Optional[Tensor]) -> Tensor:
        gates = self.gates() if self.gates is not None else None
        outs = []
        for i, layer in enumerate(self.layers):
            out = layer(h, edge_index, edge_attr, batch)
            h = out if gates is None else h + gates[i] * (out - h)
            outs.append(h)
        if self.out_norm is not None:
            return self.out_norm(h, batch)
        return h if self.jk is None else self.jk(outs)

    def dataflow(self) -> str:
        step = "h = h + gates()[i] * (layers[i](h, ...) - h)" if self.gates is not None else "h = layers[i](h, edge_index, edge_attr, batch)"
        out = "h" if self.jk is None else f"jk([h after each layer]) (mode {self.jk.mode!r})"
        if self.out_norm is not None:
            out = "out_norm(h, batch)"
        return f"for i in 0..{len(self.layers) - 1}: {step}; returns {out}"

    def harden(self) -> None:
        if self.gates is not None:
            self.layers = nn.ModuleList(self.layers[i] for i in self.gates.keep().tolist())
            self.gates = None


class Cell(nn.Module):
    """NAS-Bench-Graph cell: node ``i`` applies its operator to node ``links[i]``'s output
    (0 = the cell input); outputs of nodes that feed no other node are summed."""

    def __init__(self, arch: Architecture, edge_dim: Optional[int], deg: Tensor,
                 operators: OperatorBuilder = CHOSEN_OPERATORS) -> None:
        super().__init__()
        assert arch.links is not None
        self.links = arch.links
        self.leaves = [i + 1 for i in range(arch.num_layers) if (i + 1) not in arch.links]
        self.ops = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        for i, layer in enumerate(arch.layers):
            # NAS-Bench-Graph drops GAT's coefficients with the model's dropout
            ctx = OpContext(arch.hidden_dim, layer.heads, edge_dim, deg, arch.dropout)
            self.ops.append(operators.mpnn(i, layer.mpnn, ctx))
            self.norms.append(NORM.get(layer.norm)(arch.hidden_dim))
            self.acts.append(ACTIVATION.get(layer.activation)())
        self.dropout = arch.dropout
        self.out_channels = arch.hidden_dim

    def dataflow(self) -> str:
        return (f"states = [h]; for i in 0..{len(self.ops) - 1}: states.append(dropout(acts[i](norms[i]("
                f"ops[i](states[links[i]], edge_index, edge_attr, batch), batch)), p={self.dropout})) with links = "
                f"{list(self.links)}; returns the sum of states {self.leaves} (the nodes that feed no other)")

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor],
                batch: Optional[Tensor]) -> Tensor:
        states = [h]
        for op, norm, act, src in zip(self.ops, self.norms, self.acts, self.links):
            out = act(norm(op(states[src], edge_index, edge_attr, batch), batch))
            states.append(F.dropout(out, self.dropout, self.training))
        return torch.stack([states[i] for i in self.leaves]).sum(0)


class GraphModel(nn.Module):
    """Encoder -> body (stack or cell) -> node or graph head.

    ``forward(x [N, F], edge_index [2, E], edge_attr [E, D] | None, batch [N] | None,
    pe [N, k] | None)`` returns ``[N, out]`` for node tasks and ``[B, out]`` for graph tasks.
    """

    def __init__(self, arch: Architecture, info: DataInfo, edge_features: Optional[bool] = None,
                 operators: OperatorBuilder = CHOSEN_OPERATORS) -> None:
        super().__init__()
        c = arch.hidden_dim
        self.arch = arch
        self.graph_level = info.graph_level
        self.dropout = arch.dropout
        self.input_dropout = arch.dropout if arch.input_dropout is None else arch.input_dropout
        self.categorical_x = info.x_cardinalities is not None
        # Integer features are always embedded; float features are projected to the model
        # width, or read by the first layer itself (input_projection=False), with the
        # encoding then concatenated to them rather than added.
        self.input = (CategoricalEncoder(info.x_cardinalities, c) if self.categorical_x
                      else nn.Linear(info.num_features, c) if arch.input_projection else None)
        self.encoding = None if arch.encoding == "none" else ENCODING.get(arch.encoding)(arch.encoding_dim, c)
        self.input_act = (ACTIVATION.get(arch.input_activation)() if arch.input_activation != "identity"
                          and self.input is not None else None)
        # Edge features are embedded only for a model with a layer that reads them (or when
        # the caller says so: a supernet whose candidates may): otherwise the embedding
        # would be trained by nothing and counted as parameters.
        edges = bool(info.edge_dim) and (reads_edge_features(arch) if edge_features is None else edge_features)
        self.edge_input = (None if not edges else CategoricalEncoder(info.edge_cardinalities, c)
                           if info.edge_cardinalities else nn.Linear(info.edge_dim, c))
        edge_dim = c if edges else None
        deg = torch.tensor(info.deg, dtype=torch.long)
        if arch.links is not None:
            self.body = Cell(arch, edge_dim, deg, operators)
        else:
            width_in = None if self.input is not None else info.num_features + (c if self.encoding is not None else 0)
            self.body = LayerStack(arch, edge_dim, deg, width_in, info.num_outputs, operators)
        self.pool = POOLING.get(arch.pooling) if info.graph_level else None
        self.pooling = arch.pooling if info.graph_level else None  # the pool's name, for the export
        w = self.body.out_channels
        self.head = (None if arch.head == "last_layer"
                     else nn.Sequential(nn.Linear(w, c), nn.ReLU(), nn.Linear(c, info.num_outputs))
                     if info.graph_level else nn.Linear(w, info.num_outputs))
        sparsity = arch.sparsity_targets
        self.edge_sparsifier = (EdgeSparsifier(sparsity.edges, sparsity.edge_method, info.num_edges)
                                if sparsity.edges > 0 else None)
        # Not a submodule: the parametrizations it registers live in the body's linears.
        self._weights = WeightSparsifier(self.body, sparsity.weights) if sparsity.weights > 0 else None

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None, pe: Optional[Tensor] = None) -> Tensor:
        h = self.embed(x, pe)
        e = self.edge_input(edge_attr) if self.edge_input is not None and edge_attr is not None else None
        if self.edge_sparsifier is not None:
            edge_index, e = self.edge_sparsifier(edge_index, e, h.size(0), self.body)
        h = self.body(h, edge_index, e, batch)
        if self.pool is not None:
            if batch is None:
                batch = h.new_zeros(h.size(0), dtype=torch.long)
            h = self.pool(h, batch)
        return h if self.head is None else self.head(h)

    def dataflow(self) -> str:
        """The forward in words, for the export's ``model`` section."""
        enc = f"encoding(pe) (pe: the {self.arch.encoding!r} columns of the data)" if self.encoding is not None else None
        if self.input is None:
            steps = [f"h = dropout(x, p={self.input_dropout})" + (f", concatenated with {enc}" if enc else "")]
        else:
            read = "input(x) (one embedding per integer column, summed)" if self.categorical_x else \
                f"input(dropout(x, p={self.input_dropout}))"
            steps = [f"h = {read}" + (f" + {enc}" if enc else ""), f"h = dropout(h, p={self.dropout})"]
            if self.input_act is not None:
                steps.append("h = input_act(h)")
        if self.edge_input is not None:
            steps.append("edge_attr = edge_input(edge_attr)")
        if self.edge_sparsifier is not None:
            steps.append("edges = edge_sparsifier(edge_index, edge_attr) (the kept edges, after training)")
        steps.append("h = body(h, edge_index, edge_attr, batch)")
        if self.pool is not None:
            steps.append(f"h = global_{self.pooling}_pool(h, batch) (PyG; one row per graph)")
        if self.head is not None:
            steps.append("returns head(h)")
        else:
            steps.append("returns h (the last layer is the classifier)")
        return "; ".join(steps)

    def embed(self, x: Tensor, pe: Optional[Tensor]) -> Tensor:
        """What the first layer reads: the projected (or embedded) features plus the
        encoding, or the raw features and the encoding side by side."""
        if self.encoding is not None and pe is None:
            raise ValueError(f"architecture uses encoding {self.arch.encoding!r} but no pe was given")
        if self.input is None:
            h = F.dropout(x, self.input_dropout, self.training)
            return h if self.encoding is None else torch.cat([h, self.encoding(pe)], dim=-1)
        h = self.input(x) if self.categorical_x else self.input(F.dropout(x, self.input_dropout, self.training))
        if self.encoding is not None:
            h = h + self.encoding(pe)
        # Dropout on the first layer's input as on every later layer's: without it the
        # projection fed the first MPNN undropped (Cora, 2 x GCN: validation 0.788 -> 0.796).
        h = F.dropout(h, self.dropout, self.training)
        return h if self.input_act is None else self.input_act(h)  # after the dropout, as Platonov et al.

    # --- sparsification (search_spaces.sparsity) ---------------------------------------------
    def soft_gates(self) -> list[Gates]:
        """Edge, head and layer gates still being learned."""
        return [m for m in self.modules() if isinstance(m, Gates)]

    @property
    def has_soft_masks(self) -> bool:
        return bool(self.soft_gates()) or self._weights is not None

    def mask_penalty(self) -> Tensor | float:
        """Sum over soft dimensions of how far each one's mean gate is above its keep ratio."""
        terms = [g.penalty() for g in self.soft_gates()]
        if self._weights is not None:
            terms.append(self._weights.penalty())
        return sum(terms) if terms else 0.0

    def harden(self) -> None:
        """Make every mask hard and remove what it drops: weights first (their masks
        survive the head slicing), then, innermost first, heads, layers and edges."""
        if self._weights is not None:  # soft until now; hard weight masks need no sparsifier
            self._weights.harden()
            self._weights = None
        for module in reversed(list(self.modules())):
            if module is not self and hasattr(module, "harden"):
                module.harden()
        if self.edge_sparsifier is not None and self.edge_sparsifier.method == "learned":
            explain_utils.clear_masks(self.body)  # the learned edge gates no longer scale messages

    def load_trained_state(self, state: dict[str, Tensor]) -> None:
        """Load the state dict of a trained model of this architecture. A sparsified one is
        hardened in training: harden this fresh one first, which gives it the pruned shapes
        (how many edges, heads and layers survive follows from the targets alone), then the
        state says which: the kept edges, the weights, and the zeros of pruned weights. A
        state saved before hardening (soft gates in it) loads as it is."""
        soft_state = any(key.endswith(("logits", "scores")) for key in state)  # saved before hardening
        if self.has_soft_masks and not soft_state:
            self.harden()
        # PyG's Linear also saves a parametrized weight as computed (``weight``), beside
        # the parametrization's own ``original``: that copy has no place to load into.
        masked = {f"{name}.weight" for name, m in self.named_modules() if parametrize.is_parametrized(m, "weight")}
        state = _renamed_branch_keys(state)
        # States saved before unread edge features stopped being embedded hold that embedding
        unread = "edge_input." if self.edge_input is None else None
        self.load_state_dict({k: v for k, v in state.items()
                              if k not in masked and not (unread and k.startswith(unread))})
        for module in self.modules():
            mask = getattr(module, "weight_mask", None)
            if isinstance(mask, Tensor):
                mask.copy_((module.weight != 0).to(mask.dtype))


# A stack layer's attention and its norm were the layer's own ``attn`` and ``attn_norm``
# before the global branch became a module (``attention``): states saved then load as now.
_OLD_BRANCH_KEY = re.compile(r"^(body\.layers\.\d+)\.(attn|attn_norm)\.")


def _renamed_branch_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    def rename(key: str) -> str:
        return _OLD_BRANCH_KEY.sub(lambda m: f"{m[1]}.attention.{'norm' if m[2] == 'attn_norm' else 'attn'}.", key)
    return {rename(k): v for k, v in state.items()}


def build_model(arch: Architecture, info: DataInfo, edge_features: Optional[bool] = None,
                operators: OperatorBuilder = CHOSEN_OPERATORS) -> GraphModel:
    """A freshly initialised model for ``arch`` on data described by ``info``; edge features
    are embedded when a layer reads them, or as ``edge_features`` says. ``operators``
    builds the layers' operators (DARTS' supernet passes one that builds mixed operations)."""
    return GraphModel(arch, info, edge_features, operators)


def reads_edge_features(arch: Architecture) -> bool:
    """Does a layer's operator read ``edge_attr`` (``edge_features`` at registration)?"""
    return any(MPNN.entry(layer.mpnn).can("edge_features")
               or (layer.attention != "none" and ATTENTION.entry(layer.attention).can("edge_features"))
               for layer in arch.layers)


def model_inputs(data: Data, arch: Architecture) -> dict[str, Any]:
    """Keyword arguments of ``GraphModel.forward`` taken from a PyG ``Data``/``Batch``."""
    pe = None
    if arch.encoding != "none":
        attr = ENCODING.get(arch.encoding).attr
        pe = getattr(data, attr, None)
        if pe is None:
            raise ValueError(f"data has no precomputed {attr!r} for encoding {arch.encoding!r}; "
                             "load it through evaluators.datasets with the space's encodings")
        if pe.size(1) < arch.encoding_dim:
            raise ValueError(f"precomputed {attr!r} has {pe.size(1)} columns, architecture needs "
                             f"encoding_dim={arch.encoding_dim}")
    x = data.x
    norm = arch.feature_norm  # auto: resolved once per dataset into x_auto (evaluators.datasets)
    if norm == "auto" and getattr(data, FEATURE_NORM_ATTRS["auto"], None) is None:
        norm = resolve_feature_norm(norm, data.x)  # data from elsewhere (a user's, a test's): decided on it
    if norm != "none":
        x = getattr(data, FEATURE_NORM_ATTRS[norm], None)
        if x is None:
            raise ValueError(f"data has no precomputed {FEATURE_NORM_ATTRS[norm]!r} for feature_norm "
                             f"{arch.feature_norm!r}; load it through evaluators.datasets with the space's feature norms "
                             "(search_spaces.builder.precomputed_feature_norms)")
    return {"x": x, "edge_index": data.edge_index, "edge_attr": getattr(data, "edge_attr", None),
            "batch": getattr(data, "batch", None), "pe": pe}
