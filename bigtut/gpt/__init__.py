"""GPT (notebook 04), one file per responsibility:

==========================  =====================================================================
module                      what it holds
==========================  =====================================================================
``gpt.model``               :class:`GPTConfig`, causal self-attention, block, :class:`GPT`
``gpt.sampling``            temperature, top-k, top-p, sampling, ``generate`` with a KV cache
``gpt.fast_decoding``       one cached decoding step straight from the weights (what ``generate`` runs)
``gpt.classifier``          :class:`GPTClassifier`, the classifier contract on a GPT body
``gpt.hf``                  weight exchange with Hugging Face's ``GPT2LMHeadModel``
==========================  =====================================================================

Pretraining on Python's documentation and fine-tuning on docstrings are recipes:
:func:`bigtut.recipes.pretrain_char_gpt` and :func:`bigtut.recipes.train_gpt_docstring_classifier`.
"""

from bigtut.gpt.classifier import GPTClassifier
from bigtut.gpt.hf import gpt_from_hf, gpt_to_hf, hf_config, load_gpt2_pretrained
from bigtut.gpt.model import (
    GPT,
    MLP,
    Block,
    CausalSelfAttention,
    GPTConfig,
    GPTOutput,
    GPTOutputWithAttention,
)
from bigtut.gpt.sampling import (
    apply_temperature,
    generate,
    next_token_distribution,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "GPT", "MLP", "Block", "CausalSelfAttention", "GPTClassifier", "GPTConfig", "GPTOutput",
    "GPTOutputWithAttention", "apply_temperature", "generate", "gpt_from_hf", "gpt_to_hf", "hf_config",
    "load_gpt2_pretrained", "next_token_distribution", "sample_next_token", "top_k_filter", "top_p_filter",
]
