"""The baseline Transformers displaced: an LSTM encoder–decoder without attention (Sutskever et al. 2014)."""

from __future__ import annotations

import torch
from torch import nn

from bigtut.transformer.model import Seq2SeqConfig, Seq2SeqOutput, right_padded_mask

__all__ = ["LSTMSeq2Seq"]


class LSTMSeq2Seq(nn.Module):
    """The RNN encoder–decoder Transformers displaced (Sutskever et al. 2014), *without* attention.

    The encoder LSTM reads the source; its final state (at each row's true length) is the decoder LSTM's
    initial state, the only path from input to output. It speaks the same ``encode``/``decode`` interface as
    :class:`Seq2SeqTransformer` (its "memory" is the stacked final state ``(B, 2·layers, H)``), so
    :func:`teacher_forcing_loss`, :func:`greedy_decode` and :func:`beam_search` work on it unchanged.
    """

    def __init__(self, config: Seq2SeqConfig, hidden_size: int, num_layers: int = 1):
        super().__init__()
        self.config, self.num_layers = config, num_layers
        self.src_embed = nn.Embedding(config.src_vocab_size, config.d_model)
        self.tgt_embed = nn.Embedding(config.tgt_vocab_size, config.d_model)
        self.encoder = nn.LSTM(config.d_model, hidden_size, num_layers, batch_first=True)
        self.decoder = nn.LSTM(config.d_model, hidden_size, num_layers, batch_first=True)
        self.out_proj = nn.Linear(hidden_size, config.tgt_vocab_size)

    def encode(self, src: torch.Tensor, return_attention: bool = False):
        src_mask = right_padded_mask(src, self.config.pad_id)  # (B, 1, S)
        lengths = src_mask[:, 0].sum(-1).cpu()  # (B,)
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, (h, c) = self.encoder(packed)  # (layers, B, H) each, taken at each row's last real token
        return torch.cat([h, c], 0).transpose(0, 1), src_mask, []  # (B, 2·layers, H)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor, return_attention: bool = False):
        h, c = memory.transpose(0, 1).contiguous().chunk(2, dim=0)  # (layers, B, H) each
        out, _ = self.decoder(self.tgt_embed(tgt), (h.contiguous(), c.contiguous()))  # (B, T, H)
        return self.out_proj(out), [], []  # (B, T, V)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, return_attention: bool = False) -> Seq2SeqOutput:
        memory, src_mask, _ = self.encode(src)
        return Seq2SeqOutput(self.decode(tgt, memory, src_mask)[0], [], [], [])
