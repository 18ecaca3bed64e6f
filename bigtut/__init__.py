"""bigtut: the companion package of the course.

One module per idea, each meant to be read next to its notebook:

==========================  ===========================================================
module                      idea (notebook)
==========================  ===========================================================
``bigtut.runtime``          device choice and seeding (00)
``bigtut.data``             offline corpora and tasks: Python docs, docstrings, dates (00, 03–05)
``bigtut.tokenizers``       character and byte-pair tokenizers (00, 04)
``bigtut.training``         the training loop, checkpoints in safetensors (01–05)
``bigtut.plots``            curves and heatmaps shared by the notebooks
``bigtut.checks``           exercise checkers (every notebook)
``bigtut.attention``        scaled dot-product and multi-head attention (02)
``bigtut.positional``       sinusoidal, learned and rotary position encodings (02)
``bigtut.transformer``      the encoder–decoder Transformer (03)
``bigtut.gpt``              GPT, sampling, KV cache, GPT-2 weight exchange (04)
``bigtut.bert``             BERT, masked-LM and NSP pretraining, fine-tuning (05)
==========================  ===========================================================

Submodules are imported on first use (``bigtut.data.python_docs_corpus()`` works after ``import bigtut``),
so ``import bigtut`` stays fast.
"""

import importlib

from bigtut.runtime import describe_environment, get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["describe_environment", "get_device", "seed_everything", "__version__"]

_SUBMODULES = {"attention", "bert", "checks", "data", "exercises", "gpt", "plots", "positional", "runtime",
               "tokenizers", "training", "transformer"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"bigtut.{name}")
    raise AttributeError(f"module 'bigtut' has no attribute {name!r}")
