"""BERT (notebook 05), one file per responsibility:

==========================  =====================================================================
module                      what it holds
==========================  =====================================================================
``bert.model``              :class:`BertConfig`, embeddings, the encoder :class:`Bert`
``bert.heads``              MLM + NSP pretraining heads and loss; the sequence classifier
``bert.inputs``             special tokens, ``[CLS] text [SEP]`` encoding, masked-token corruption
``bert.hf``                 weight exchange with Hugging Face's BERT models
==========================  =====================================================================

Pretraining on Python's documentation and fine-tuning on docstrings are recipes:
:func:`bigtut.recipes.train_bert_docstring_classifier` (cached under ``runs/``).
"""

from bigtut.bert.heads import BertForPreTraining, BertForSequenceClassification, pretraining_loss
from bigtut.bert.hf import bert_from_hf, bert_to_hf
from bigtut.bert.inputs import (
    IGNORE_INDEX,
    SPECIAL_TOKENS,
    BertVocab,
    classify,
    encode_for_classifier,
    mask_tokens,
    trim_to_longest,
)
from bigtut.bert.model import Bert, BertConfig, BertEmbeddings, BertOutput, BertOutputWithAttention

__all__ = [
    "IGNORE_INDEX", "SPECIAL_TOKENS", "Bert", "BertConfig", "BertEmbeddings", "BertForPreTraining",
    "BertForSequenceClassification", "BertOutput", "BertOutputWithAttention", "BertVocab", "bert_from_hf",
    "bert_to_hf", "classify", "encode_for_classifier", "mask_tokens", "pretraining_loss", "trim_to_longest",
]
