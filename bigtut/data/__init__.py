"""Offline data for the course: corpora, labelled text, tabular sets and generated tasks.

=============================  ======================================================  ==========
what                           for                                                     module
=============================  ======================================================  ==========
``python_docs_corpus``         Python's reference documentation as text (pretraining)  corpus
``package_docstrings``         docstrings of the installed scientific packages         package_docs
                               (in-domain BERT pretraining, disjoint from the task)
``docstring_splits``           stdlib docstrings labelled by module family             docstrings
                               (fine-tuning, explanations)
``date_splits``                dates in many human formats -> ISO 8601 (seq2seq)        dates
``sample_nsp_pairs``           sentence pairs for next-sentence prediction (BERT)      sentences
``random_lm_batch``,           batches for language modelling and classification       batching
``encode_texts``
``breast_cancer``, ``digits``  scikit-learn's bundled tabular/image sets               tabular
``planted_splits``,            sentences whose causes are known: negation, xor, a      planted
``encode_planted``             shortcut (09, evaluating explanations)
=============================  ======================================================  ==========
"""

from bigtut.data.batching import encode_texts, epoch_batches, minibatches, random_lm_batch, sequential_lm_batches
from bigtut.data.corpus import python_docs_corpus, python_docs_topics, train_val_split
from bigtut.data.dates import DatePair, date_pairs, date_splits, date_tokenizer, encode_date_pairs
from bigtut.data.docstrings import LABELS, Docstring, docstring_dataset, docstring_splits
from bigtut.data.package_docs import package_docstrings
from bigtut.data.planted import (
    PLANTED_VOCAB,
    PlantedExample,
    WordTokenizer,
    encode_planted,
    planted_evidence,
    planted_label,
    planted_splits,
    planted_tokenizer,
)
from bigtut.data.sentences import NSPPair, NSPSampler, docs_sentences, encode_pairs, sample_nsp_pairs
from bigtut.data.tabular import TabularSplit, breast_cancer, digits

__all__ = [
    "LABELS", "Docstring", "TabularSplit", "breast_cancer", "digits", "docstring_dataset", "docstring_splits",
    "package_docstrings", "python_docs_corpus", "python_docs_topics", "train_val_split",
    "encode_texts", "epoch_batches", "minibatches", "random_lm_batch", "sequential_lm_batches",
    "NSPPair", "NSPSampler", "docs_sentences", "encode_pairs", "sample_nsp_pairs",
    "DatePair", "date_pairs", "date_splits", "date_tokenizer", "encode_date_pairs",
    "PLANTED_VOCAB", "PlantedExample", "WordTokenizer", "encode_planted", "planted_evidence", "planted_label",
    "planted_splits", "planted_tokenizer",
]
