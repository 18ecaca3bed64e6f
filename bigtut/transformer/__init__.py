"""The encoder–decoder Transformer (notebook 03), one file per responsibility:

==============================  ================================================================
module                          what it holds
==============================  ================================================================
``transformer.layers``          encoder and decoder layers and stacks; copying PyTorch's weights in
``transformer.model``           :class:`Seq2SeqConfig`, masks, :class:`Seq2SeqTransformer`, the loss
``transformer.decoding``        greedy decoding, sequence scores, beam search
``transformer.rnn``             the LSTM encoder–decoder baseline
==============================  ================================================================

The trained date-normalisation model is built by :func:`bigtut.recipes.train_dates_transformer`.
"""

from bigtut.transformer.decoding import beam_search, beam_step, greedy_decode, sequence_log_prob
from bigtut.transformer.layers import (
    ACTIVATIONS,
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    copy_from_torch,
)
from bigtut.transformer.model import (
    Seq2SeqConfig,
    Seq2SeqOutput,
    Seq2SeqTransformer,
    decoder_self_mask,
    right_padded_mask,
    teacher_forcing_loss,
)
from bigtut.transformer.rnn import LSTMSeq2Seq

__all__ = [
    "ACTIVATIONS", "Decoder", "DecoderLayer", "Encoder", "EncoderLayer", "LSTMSeq2Seq", "Seq2SeqConfig",
    "Seq2SeqOutput", "Seq2SeqTransformer", "beam_search", "beam_step", "copy_from_torch", "decoder_self_mask",
    "greedy_decode", "right_padded_mask", "sequence_log_prob", "teacher_forcing_loss",
]
