"""Forbidden calls are found in a candidate's bytecode: under any spelling, in nested functions and in the helpers
it calls, while a student's own function that shares a banned name is allowed."""

import pytest
import torch

from bigtut.checks import CheckFailure
from bigtut.checks.forbidden import assert_does_not_use


def lime_kernel_helper(d, w):  # a student's own helper that shares the library's name
    return torch.sqrt(torch.exp(-d ** 2 / w ** 2))


def test_assert_does_not_use_reads_the_bytecode():
    banned = {"lime_kernel": "write it yourself"}

    def by_attribute(d, w):
        from bigtut.explain import lime

        return lime.lime_kernel(d, w)

    def nested(d, w):
        def inner():
            from bigtut.explain.lime import lime_kernel as k

            return k(d, w)
        return inner()

    def own_helper(d, w):
        return lime_kernel_helper(d, w)

    for cheat in (by_attribute, nested):
        with pytest.raises(CheckFailure, match="the answer calls `lime_kernel` — write it yourself"):
            assert_does_not_use("k", cheat, banned)
    assert_does_not_use("k", own_helper, {"lime_kernel_helper": "…"})  # bound to the module's own function: allowed
    assert_does_not_use("k", torch.exp, banned)  # a builtin has no bytecode: not read
    namespace = {}
    exec("import torch\ndef lime_kernel(d, w):\n    return d\ndef f(d, w):\n    return lime_kernel(d, w)\n", namespace)
    assert_does_not_use("k", namespace["f"], banned)  # a notebook cell's own lime_kernel


def _cell(source: str, name: str = "f"):
    """A function defined as in a notebook cell (exec'd, no source file)."""
    namespace = {"__name__": "__exercise__"}
    exec(source, namespace)
    return namespace[name]


BANNED = {"precision_at_k": "write it yourself", "_redraw": "randomise by hand"}


@pytest.mark.parametrize("source, used", [
    ("from bigtut.explain import metrics\ndef f(s, e, k):\n    return metrics.precision_at_k(s, e, k=k)\n",
     "precision_at_k"),
    ("def f(s, e, k):\n    from bigtut.explain.metrics import precision_at_k\n    return precision_at_k(s, e, k=k)\n",
     "precision_at_k"),
    ("from bigtut.explain.metrics import precision_at_k as p\ndef f(s, e, k):\n    return p(s, e, k=k)\n",
     "precision_at_k"),
    ("from bigtut.explain.metrics import precision_at_k\ndef helper(s, e, k):\n    return precision_at_k(s, e, k=k)\n"
     "def f(s, e, k):\n    return helper(s, e, k)\n", "precision_at_k"),
    ("from bigtut.explain import sanity\ndef f(model):\n    return sanity._redraw(model)\n", "_redraw"),
])
def test_a_banned_name_is_found_however_it_is_reached(source, used):
    with pytest.raises(CheckFailure, match=f"k: the answer calls `{used}` — {BANNED[used]}"):
        assert_does_not_use("k", _cell(source), BANNED)


def test_a_students_own_function_of_a_banned_name_is_allowed():
    own = "def precision_at_k(s, e, k):\n    return s[:k]\ndef f(s, e, k):\n    return precision_at_k(s, e, k)\n"
    assert_does_not_use("k", _cell(own), BANNED)
    assert_does_not_use("k", _cell(own, "precision_at_k"), BANNED)
