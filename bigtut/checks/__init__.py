"""Exercise checkers.

Each notebook exercise ends with a call such as ``check_softmax(softmax)``. A checker compares the student's
function or class with the course's reference on fresh random inputs and either prints one line starting
with ``PASS`` or raises ``AssertionError`` saying which input was used, what was expected and what came back.

The protocol and the helpers every checker shares (comparing, naming a known mistake, refusing an input changed
in place) live in :mod:`bigtut.checks.core`; finding a forbidden call in the candidate's code or while it runs
in :mod:`bigtut.checks.forbidden`. Each chapter's checkers live in modules named after its topic:
``bigtut.checks.basics`` (00–01), ``.attention`` and ``.multihead`` (02), ``.transformer`` and
``.normalization`` (03), ``.gpt`` (04), ``.bert`` (05), ``.explain`` (06–07), ``.integrated_gradients`` (08),
``.evaluating_explanations``, ``.patching`` and ``.interactions`` (09), ``.compress`` (10), ``.generation`` (11),
``.distributed`` (A1); ``.tokenizers`` holds chapter 00's BPE exercise.
"""

from bigtut.checks.core import (
    CheckFailure,
    assert_close,
    check_function,
    checker_generator,
    passed,
    random_float64,
)

__all__ = ["CheckFailure", "assert_close", "check_function", "checker_generator", "passed", "random_float64"]
