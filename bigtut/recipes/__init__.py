"""Recipes: how the course's trained models are built — the only layer that brings data, training and models
together.

==========================  =====================================================================
module                      recipe
==========================  =====================================================================
``recipes.dates``           the date-normalising Transformer (03)
``recipes.gpt``             character GPT pretraining; GPT docstring classifier, cached (04; used by 06–10)
``recipes.bert``            BERT pretraining (MLM + NSP) and docstring classifier, cached (05; used by 06–10);
                            the committed pretrainings on the Python docs and on the packages' docstrings
``recipes.few_labels``      the learning curve: label draws, fine-tuning, TF-IDF, frozen features, bootstrap (05)
``recipes.planted``         BERT on the planted-evidence task, cached (09)
``recipes.cache``           the ``runs/`` cache, keyed by every source file of the package, and the
                            explained models committed under the same keys (``checkpoints/explained/``)
``recipes.checkpoints``     the command that rebuilds every committed checkpoint
==========================  =====================================================================
"""

from bigtut.recipes.bert import (
    BertRecipe,
    TrainedBert,
    build_bert_tokenizer,
    finetune_bert,
    pretrain_bert,
    pretraining_batches,
    train_bert_docstring_classifier,
)
from bigtut.recipes.cache import cache_folder, cache_key, default_cache_dir, load_or_build, source_fingerprint
from bigtut.recipes.dates import DatesRun, dates_config, train_dates_transformer
from bigtut.recipes.gpt import (
    GPTClassifierRun,
    PretrainRun,
    TrainedGPT,
    lm_loss,
    load_or_train_gpt,
    load_or_train_gpt_from_scratch,
    pretrain_char_gpt,
    python_docs_char_tokenizer,
    train_gpt_docstring_classifier,
)
from bigtut.recipes.planted import (
    PLANTED_MODEL,
    TrainedPlanted,
    planted_config,
    shortcut_breakdown,
    train_planted_classifier,
)
from bigtut.recipes.retrieval import RETRIEVAL_MODEL, TrainedRetrieval, train_retrieval_gpt

__all__ = [
    "BertRecipe", "DatesRun", "GPTClassifierRun", "PretrainRun", "TrainedBert", "TrainedGPT",
    "build_bert_tokenizer", "build_explanation_models", "cache_folder", "cache_key", "dates_config",
    "default_cache_dir", "finetune_bert", "lm_loss", "load_or_build", "load_or_train_gpt",
    "load_or_train_gpt_from_scratch", "pretrain_bert",
    "pretrain_char_gpt", "pretraining_batches", "python_docs_char_tokenizer", "source_fingerprint",
    "train_bert_docstring_classifier", "train_dates_transformer", "train_gpt_docstring_classifier",
    "PLANTED_MODEL", "TrainedPlanted", "planted_config", "shortcut_breakdown", "train_planted_classifier",
    "RETRIEVAL_MODEL", "TrainedRetrieval", "train_retrieval_gpt",
]


def build_explanation_models(device=None, progress: bool = True) -> None:
    """Load (the committed copies in ``checkpoints/explained/``, else the ``runs/`` cache) or train and cache the
    models chapters 06–11 explain: chapter 04's GPT and classifier, chapter 05's BERT classifier, chapter 09's
    planted-evidence classifier and chapter 11's retrieval GPT; and notebook 04's from-scratch baseline.
    (``make models`` then runs ``python -m bigtut.explanation_benchmark``, chapter 09's cached benchmark, which
    runs the explanation methods that no model recipe may import.)
    ``python -m bigtut.recipes`` runs it; ``make test`` does before the notebooks."""
    load_or_train_gpt(device=device, progress=progress)
    load_or_train_gpt_from_scratch(device=device, progress=progress)
    train_bert_docstring_classifier(device=device, progress=progress)
    train_planted_classifier(device=device, progress=progress)
    train_retrieval_gpt(device=device, progress=progress)
