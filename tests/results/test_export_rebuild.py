"""Issue 15: an export explains its model well enough to rebuild it in plain PyG.

The rebuild below reads only the export's ``model`` section: it constructs each torch or
PyG module from its ``class`` and ``args``, loads the trained weights by its path, and
runs the forward that each graphnas module's ``forward`` text and ``settings`` describe.
It never calls ``build_model``. One architecture per preset; it must match the model's
parameter count and, given the weights, its outputs.
"""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from graphnas.results.export import explain
from graphnas.search_spaces import Architecture, DataInfo, SearchSpace, build_model, preset_names

NODE_PRESETS = {"tiny", "node", "nas_bench_graph"}
# What the rebuild below covers: PyG's own operators and graphnas' thin wrappers of them.
REBUILT_ATTENTION = {"none", "masked", "kv_from_mpnn"}
REBUILT_ENCODINGS = {"none", "lap_pe", "rwse", "degree"}
# graphnas' own message passing (DAGNN's propagation, Platonov et al.'s -sep layers): their
# export gives a forward text, not PyG args
UNREBUILT_MPNN = {"dagnn", "gat_sep", "gt_sep", "feedforward"}
N, E, F_IN, K_PE = 14, 40, 6, 16


def _pick(preset: str) -> Architecture:
    """The first sampled member of the preset (seeds 0, 1, ...) that the rebuild covers."""
    space = SearchSpace.preset(preset)
    for seed in range(500):
        arch = space.sample(np.random.default_rng(seed))
        if (arch.sparsity_targets.dense and arch.encoding in REBUILT_ENCODINGS
                and all(layer.attention in REBUILT_ATTENTION and layer.mpnn not in UNREBUILT_MPNN for layer in arch.layers)):
            return arch
    raise AssertionError(f"no member of {preset} that the rebuild covers in 500 samples")


def _info(preset: str) -> DataInfo:
    if preset in NODE_PRESETS:
        return DataInfo("node_classification", F_IN, 3, deg=(0, 3, 5, 4, 2))
    return DataInfo("graph_classification", F_IN, 2, edge_dim=4, deg=(0, 3, 5, 4, 2))


def _inputs(info: DataInfo) -> dict:
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, N, (2, E), generator=gen)
    graph = info.graph_level
    return {"x": torch.randn(N, F_IN, generator=gen), "edge_index": edge_index,
            "edge_attr": torch.randn(E, 4, generator=gen) if graph else None,
            "batch": torch.tensor([0] * 7 + [1] * 7) if graph else None,
            "pe": torch.randn(N, K_PE, generator=gen)}


class Rebuild:
    """A person's rebuild from the ``model`` section: modules by path, weights by prefix."""

    def __init__(self, section: dict, state: dict, info: dict) -> None:
        self.entries = {e["path"]: e for e in section["modules"]}
        self.section, self.state, self.info = section, state, info
        self.built: dict[str, torch.nn.Module] = {}

    def has(self, path: str) -> bool:
        return path in self.entries

    def cls(self, path: str) -> str:
        return self.entries[path]["class"].rsplit(".", 1)[1]

    def settings(self, path: str) -> dict:
        return self.entries[path].get("settings", {})

    def own(self, path: str, name: str) -> torch.Tensor:
        assert name in self.entries[path]["own_parameters"]
        return self.state[f"{path}.{name}"]

    def module(self, path: str) -> torch.nn.Module:
        """The torch or PyG module at ``path``, built from its class and args, weights loaded."""
        if path not in self.built:
            module = self._construct(path)
            prefix = f"{path}."
            module.load_state_dict({k[len(prefix):]: v for k, v in self.state.items() if k.startswith(prefix)})
            self.built[path] = module.eval()
        return self.built[path]

    def _construct(self, path: str) -> torch.nn.Module:
        entry = self.entries[path]
        module_name, class_name = entry["class"].rsplit(".", 1)
        cls = getattr(importlib.import_module(module_name), class_name)
        args = entry["args"]
        if "modules" in args:  # Sequential, ModuleList
            return cls(*[self._construct(f"{path}.{m['module']}") for m in args["modules"]])
        kwargs = {}
        for key, value in args.items():
            if isinstance(value, dict) and "module" in value:
                value = self._construct(f"{path}.{value['module']}")
            elif isinstance(value, dict) and "data_info" in value:
                value = torch.tensor(self.info[value["data_info"]])
            kwargs[key] = value
        return cls(**kwargs)

    def parameters(self) -> int:
        """Parameters of the built modules, and of the graphnas modules' own (``own_parameters``)."""
        built = sum(p.numel() for m in self.built.values() for p in m.parameters())
        own = sum(int(np.prod(shape)) for e in self.entries.values() if "args" not in e
                  for shape in e.get("own_parameters", {}).values())
        return built + own

    # --- the forward each graphnas module's text describes --------------------------------
    def model(self, x, edge_index, edge_attr, batch, pe):
        assert self.section["class"].endswith("GraphModel")
        h = self.module("input")(x) if self.has("input") else x
        if self.has("encoding"):
            enc = self.module("encoding.lin")(pe[:, : self.settings("encoding")["k"]])
            h = h + enc if self.has("input") else torch.cat([h, enc], dim=-1)
        if self.has("input_act"):  # after the input dropout, off in eval
            h = self.module("input_act")(h)
        if self.has("edge_input") and edge_attr is not None:
            edge_attr = self.module("edge_input")(edge_attr)
        else:
            edge_attr = None
        body = self.cls("body")
        h = self.cell(h, edge_index, edge_attr, batch) if body == "Cell" else self.stack(h, edge_index, edge_attr, batch)
        pooling = self.section_settings().get("pooling")
        if pooling is not None:
            h = {"mean": global_mean_pool, "add": global_add_pool, "max": global_max_pool}[pooling](h, batch)
        return self.module("head")(h) if self.has("head") else h

    def section_settings(self) -> dict:
        return self.section.get("settings", {})

    def stack(self, h, edge_index, edge_attr, batch):
        outs, i = [], 0
        while self.has(f"body.layers.{i}"):
            path = f"body.layers.{i}"
            h = self.gps_layer(path, h, edge_index, edge_attr, batch) if self.cls(path) == "GPSLayer" \
                else self.operator(f"{path}.local", h, edge_index, edge_attr)
            outs.append(h)
            i += 1
        if self.has("body.out_norm"):  # a pre_norm stack ends in a norm
            return self.norm("body.out_norm", h, batch)
        return self.module("body.jk")(outs) if self.has("body.jk") else h

    def gps_layer(self, path, h, edge_index, edge_attr, batch):
        s = self.settings(path)
        skip = {"identity": h, "linear": self.module(f"{path}.skip")(h) if s["residual"] == "linear" else None}.get(
            s["residual"], 0)
        act = self.module(f"{path}.act")
        if s["form"] == "conv_norm_act":  # dropout(act(local_norm(local(h) + skip))): dropout is off in eval
            return act(self.norm(f"{path}.local_norm", self.operator(f"{path}.local", h, edge_index, edge_attr) + skip,
                                 batch))
        if s["form"] == "pre_norm":
            return skip + act(self.operator(f"{path}.local", self.norm(f"{path}.local_norm", h, batch), edge_index,
                                            edge_attr))
        local = act(self.operator(f"{path}.local", h, edge_index, edge_attr))
        out = self.norm(f"{path}.local_norm", skip + local, batch)
        if self.has(f"{path}.attention"):
            kv_from_local = self.has(f"{path}.kv_source") and self.settings(f"{path}.kv_source")["source"] == "mpnn"
            kv = local if kv_from_local else h
            branch = f"{path}.attention"
            out = out + self.norm(f"{branch}.norm", skip + self.attention(f"{branch}.attn", h, kv, edge_index, edge_attr), batch)
        if self.has(f"{path}.ffn"):
            out = self.norm(f"{path}.ffn_norm", out + self.module(f"{path}.ffn")(out), batch)
        return out

    def cell(self, h, edge_index, edge_attr, batch):
        s = self.settings("body")
        states = [h]
        for i, src in enumerate(s["links"]):
            out = self.operator(f"body.ops.{i}", states[src], edge_index, edge_attr)
            states.append(self.module(f"body.acts.{i}")(self.norm(f"body.norms.{i}", out, batch)))
        return torch.stack([states[j] for j in s["leaves"]]).sum(0)

    def operator(self, path, x, edge_index, edge_attr):
        """The graphnas wrappers around an MPNN: _Conv (conv or a linear), _GINE."""
        kind = self.cls(path)
        if kind == "_GINE":
            if "default_edge" in self.entries[path].get("own_parameters", {}):
                edge_attr = x.new_zeros(edge_index.size(1), x.size(1)) + self.own(path, "default_edge")
            return self.module(f"{path}.conv")(x, edge_index, edge_attr)
        assert kind == "_Conv", kind
        inner = f"{path}.conv"
        if self.cls(inner) == "_Identity":
            return x
        if self.cls(inner) == "_NodeLinear":
            return self.module(f"{inner}.lin")(x)
        if self.cls(inner) == "_LinearThenPropagate":
            return self.module(f"{inner}.prop")(self.module(f"{inner}.lin")(x), edge_index)
        conv = self.module(inner)
        uses = self.settings(path)["uses_edge_attr"] and edge_attr is not None
        return conv(x, edge_index, edge_attr) if uses else conv(x, edge_index)

    def attention(self, path, x, kv, edge_index, edge_attr):
        kind, conv = self.cls(path), self.module(f"{path}.conv")
        pair = (kv, x) if kind == "KVFromMPNNAttention" else x
        uses = self.settings(path)["uses_edge_attr"] and edge_attr is not None
        return conv(pair, edge_index, edge_attr) if uses else conv(pair, edge_index)

    def norm(self, path, x, batch):
        inner = self.module(f"{path}.norm")
        return inner(x, batch) if self.settings(path)["takes_batch"] else inner(x)


@pytest.mark.parametrize("preset", preset_names())
def test_a_plain_pyg_rebuild_from_the_exports_model_section_matches(preset):
    torch.manual_seed(0)
    arch, info = _pick(preset), _info(preset)
    model = build_model(arch, info).eval()
    with torch.no_grad():  # give BatchNorm running statistics that are not the defaults
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    section = json.loads(json.dumps(explain(arch, info, {})["model"]))  # as read from the file
    inputs = _inputs(info)
    rebuild = Rebuild(section, model.state_dict(), {"deg": list(info.deg)})
    with torch.no_grad():
        expected = model(**inputs)
        got = rebuild.model(**inputs)
    assert rebuild.parameters() == sum(p.numel() for p in model.parameters()) == section["parameters"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_choices_that_do_not_apply_are_left_out_and_the_id_stays():
    base = {"space": "s", "hidden_dim": 16, "num_layers": 2, "dropout": 0.1, "lr": 0.01, "weight_decay": 0.0}
    arch = Architecture(**base, layers=({"mpnn": "gcn", "heads": 4, "top_m": 3},
                                        {"mpnn": "gat", "heads": 4, "attention": "topm", "top_m": 3}))
    shown = arch.applied_dump()["layers"]
    assert "heads" not in shown[0] and "top_m" not in shown[0] and "kv_source" not in shown[0]
    assert shown[1]["heads"] == 4 and shown[1]["top_m"] == 3 and "kv_source" not in shown[1]
    again = Architecture.model_validate(arch.applied_dump())
    assert again.arch_id == arch.arch_id
    # the same model with the unused choices at their defaults is the same architecture
    plain = Architecture(**base, layers=({"mpnn": "gcn"}, {"mpnn": "gat", "heads": 4, "attention": "topm", "top_m": 3}))
    assert plain.arch_id == arch.arch_id
    assert Architecture(**base, layers=({"mpnn": "gat", "heads": 4}, {"mpnn": "gcn"})).arch_id != \
        Architecture(**base, layers=({"mpnn": "gat", "heads": 2}, {"mpnn": "gcn"})).arch_id


@pytest.mark.parametrize("name,dataset", [("luo_gcn", "squirrel_filtered"), ("luo_gat", "chameleon_filtered")])
def test_the_classic_layer_form_with_a_linear_skip_rebuilds_from_the_export(name, dataset):
    """Issue 42: conv_norm_act layers, their linear skips and BatchNorm, read from the export."""
    from graphnas.search_spaces.zoo import zoo_entry

    torch.manual_seed(0)
    arch = zoo_entry(name).architecture_for(dataset).model_copy(update={"hidden_dim": 16})
    info = _info("node")
    model = build_model(arch, info).eval()
    section = json.loads(json.dumps(explain(arch, info, {})["model"]))
    inputs = _inputs(info)
    rebuild = Rebuild(section, model.state_dict(), {"deg": list(info.deg)})
    with torch.no_grad():
        torch.testing.assert_close(rebuild.model(**inputs), model(**inputs), rtol=1e-5, atol=1e-5)
    assert rebuild.parameters() == sum(p.numel() for p in model.parameters())
