"""bigtut: the companion package of the course.

One module per idea, each meant to be read next to its notebook:

==========================  ===========================================================
module                      idea (notebook)
==========================  ===========================================================
``bigtut.runtime``          device choice, seeding, ``eval_mode`` (00)
``bigtut.validation``       argument checks shared by every module
``bigtut.data``             offline corpora and tasks: Python docs, docstrings, dates (00, 03–05)
``bigtut.tokenizers``       character and byte-pair tokenizers (00, 04)
``bigtut.training``         the training loop, checkpoints in safetensors (01–05)
``bigtut.evaluation``       bits per character, classifier accuracy (04–05)
``bigtut.plots``            curves and heatmaps shared by the notebooks
``bigtut.diagrams``         pictures of the architectures: Transformer, multi-head, GPT block, BERT inputs
``bigtut.checks``           exercise checkers (every notebook)
``bigtut.attention``        scaled dot-product and multi-head attention (02)
``bigtut.positional``       sinusoidal, learned and rotary position encodings (02)
``bigtut.transformer``      the encoder–decoder Transformer: layers, model, decoding (03)
``bigtut.gpt``              GPT, sampling and KV cache, classifier, GPT-2 weight exchange (04)
``bigtut.bert``             BERT, its heads and inputs, weight exchange with Hugging Face (05)
``bigtut.recipes``          how the course's trained models are built, cached under ``runs/`` (03–05)
``bigtut.explain``          LIME, SHAP, Integrated Gradients, and pictures of their answers (06–08)
``bigtut.compress``         int8 quantisation, pruning, distillation, and their measurements (10)
==========================  ===========================================================

Submodules are imported on first use (``bigtut.data.python_docs_corpus()`` works after ``import bigtut``),
so ``import bigtut`` stays fast.
"""

import importlib
import logging

from bigtut.runtime import describe_environment, eval_mode, get_device, seed_everything

__version__ = "0.1.0"

# torchao (the int8 reference of chapter 10, which transformers also imports when it is installed) logs on import
# one warning per optional GPU kernel library a CPU-only machine cannot load, and torch one deprecation notice for
# it: noise in every notebook that touches either library, so those two loggers report errors only.
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)
__all__ = ["describe_environment", "eval_mode", "get_device", "seed_everything", "__version__"]

_SUBMODULES = {"attention", "bert", "checks", "compress", "data", "diagrams", "evaluation", "exercises", "explain",
               "gpt", "plots", "positional", "recipes", "runtime", "tokenizers", "training", "transformer",
               "validation"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"bigtut.{name}")
    raise AttributeError(f"module 'bigtut' has no attribute {name!r}")
