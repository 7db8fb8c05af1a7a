"""The torch networks behind GRU4Rec and SASRec: shared item and event embeddings, a GRU or causal self-attention."""
from __future__ import annotations

import torch
from torch import nn

from recapp.interactions import EVENT_CODES
from recapp.models.memory import dense_bytes

N_EVENT_TYPES = len(EVENT_CODES)


class SeqNet(nn.Module):
    """Shared parts: item (index 0 = padding) and event embeddings, scoring against the item table."""

    def __init__(self, n_items: int, dim: int, dropout: float):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.events = nn.Embedding(N_EVENT_TYPES + 1, dim, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.items.weight, std=dim ** -0.5)
        nn.init.normal_(self.events.weight, std=0.02)
        with torch.no_grad():
            self.items.weight[0].zero_()
            self.events.weight[0].zero_()

    def embed(self, items: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
        return self.items(items) + self.events(events)

    def item_table(self) -> torch.Tensor:
        """Output embeddings of the real items (row i = internal item i)."""
        return self.items.weight[1:]

    @staticmethod
    def attention_bytes(max_len: int, batch: int) -> int:
        """Bytes of attention a training batch holds beyond the windows (none without attention)."""
        return 0


class GRUNet(SeqNet):
    def __init__(self, n_items: int, dim: int, n_layers: int, dropout: float, max_len: int):
        super().__init__(n_items, dim, dropout)
        self.gru = nn.GRU(dim, dim, num_layers=n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0)
        self.out = nn.Linear(dim, dim)

    def forward(self, items: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(self.drop(self.embed(items, events)))
        return self.out(self.drop(h))


class SASNet(SeqNet):
    def __init__(self, n_items: int, dim: int, n_layers: int, dropout: float, max_len: int, n_heads: int = 1):
        super().__init__(n_items, dim, dropout)
        self.pos = nn.Embedding(max_len, dim)
        self.scale = dim ** 0.5
        nn.init.normal_(self.pos.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, n_heads, dim_feedforward=dim, dropout=dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.register_buffer("causal", torch.triu(torch.full((max_len, max_len), float("-inf")), diagonal=1), persistent=False)

    @staticmethod
    def attention_bytes(max_len: int, batch: int) -> int:
        """The L x L causal mask and one batch's attention weights (scores, softmax, dropout)."""
        return dense_bytes((max_len, max_len)) + dense_bytes((batch, max_len, max_len), copies=3)

    def forward(self, items: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
        L = items.shape[1]
        keep = (items > 0).unsqueeze(-1).float()
        # Left-padded input: padding positions are zeroed (as in the paper) and only the causal mask is used,
        # so no row of the attention is ever fully masked.
        x = (self.embed(items, events) * self.scale + self.pos.weight[-L:]) * keep
        h = self.blocks(self.drop(x), mask=self.causal[-L:, -L:], is_causal=True)
        return self.norm(h)
