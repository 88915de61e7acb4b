"""Activation functions applied after each layer's MPNN (GraphNAS searches this choice)."""
from __future__ import annotations

from torch import nn

from graphnas.search_spaces.operators.base import ACTIVATION

ACTIVATION.register("relu", "ReLU")(nn.ReLU)
ACTIVATION.register("elu", "ELU (alpha 1), GAT's activation")(nn.ELU)
ACTIVATION.register("leaky_relu", "LeakyReLU, negative slope 0.01")(nn.LeakyReLU)
ACTIVATION.register("prelu", "PReLU: one learned negative slope per layer")(nn.PReLU)
ACTIVATION.register("gelu", "GELU")(nn.GELU)
ACTIVATION.register("tanh", "tanh")(nn.Tanh)
ACTIVATION.register("identity", "No activation (a linear layer)")(nn.Identity)
