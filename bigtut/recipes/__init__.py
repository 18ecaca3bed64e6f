"""Recipes: how the course's trained models are built — the only layer that brings data, training and models
together.

==========================  =====================================================================
module                      recipe
==========================  =====================================================================
``recipes.dates``           the date-normalising Transformer (03)
``recipes.gpt``             character GPT pretraining; GPT docstring classifier (04)
``recipes.bert``            BERT pretraining (MLM + NSP) and docstring classifier, cached (05; used by 06–10)
``recipes.cache``           the ``runs/`` cache, keyed by every source file of the package
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
    lm_loss,
    pretrain_char_gpt,
    python_docs_char_tokenizer,
    train_gpt_docstring_classifier,
)

__all__ = [
    "BertRecipe", "DatesRun", "GPTClassifierRun", "PretrainRun", "TrainedBert", "build_bert_tokenizer",
    "cache_folder", "cache_key", "dates_config", "default_cache_dir", "finetune_bert", "lm_loss", "load_or_build",
    "pretrain_bert", "pretrain_char_gpt", "pretraining_batches", "python_docs_char_tokenizer", "source_fingerprint",
    "train_bert_docstring_classifier", "train_dates_transformer", "train_gpt_docstring_classifier",
]
