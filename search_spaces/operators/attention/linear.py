"""``linear``: kernelised linear attention with the elu+1 feature map (Katharopoulos et al.
2020, "Transformers are RNNs")."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from graphnas.search_spaces.operators.attention._dense import DenseAttention
from graphnas.search_spaces.operators.base import ATTENTION
from graphnas.search_spaces.operators.pyg import performer


class LinearAttention(DenseAttention):
    """``out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j))`` with
    ``phi = elu + 1``: softmax's exp replaced by a positive feature map, so the key-value
    summary is formed once per graph and the N x N matrix never is.

    Cost: O(N D^2) per head. FLOPs (beyond the ``2 N C 4C`` projections): ``2 L D D`` for
    ``K'^T V``, ``2 L D D`` for ``Q' (K'^T V)`` and ``2 L D`` for the normaliser, per head
    and padded graph (L = the batch's largest graph)."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, **kw) -> Tensor:
        k_feat = (F.elu(k) + 1) * mask[:, None, :, None]  # padded keys carry no weight
        return performer.linear_attention(F.elu(q) + 1, k_feat, v)


ATTENTION.register("linear", "Linear attention, elu+1 feature map (Katharopoulos et al. 2020), O(N)",
                   cost="linear", prunable_heads=True)(
    LinearAttention)
