"""Exercise checkers.

Each notebook exercise ends with a call such as ``check_softmax(softmax)``. A checker compares the student's
function or class with the course's reference on fresh random inputs and either prints one line starting
with ``PASS`` or raises ``AssertionError`` saying which input was used, what was expected and what came back.

The protocol lives in :mod:`bigtut.checks.core`; each chapter's checkers live in a module named after its topic:
``bigtut.checks.basics`` (00–01), ``.attention`` (02), ``.transformer`` (03), ``.gpt`` (04), ``.bert`` (05),
``.explain`` (06–08), ``.integrated_gradients`` (08, token IG), ``.evaluating_explanations`` (09),
``.compress`` (10), ``.distributed`` (A1).
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
