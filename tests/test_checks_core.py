import pytest
import torch

from bigtut.checks import CheckFailure, assert_close, check_function
from bigtut.checks.core import assert_close_or_hint, assert_unchanged, hint_for, matching_mistake, wrong_only


def reference(x):
    return torch.softmax(x, dim=-1)


CASES = [("x of shape (2, 5)", (torch.randn(2, 5),), {}), ("large logits", (torch.tensor([[1000.0, 0.0]]),), {})]


def test_passes_on_a_correct_function(capsys):
    check_function(lambda x: x.softmax(-1), reference, CASES, name="softmax")
    assert capsys.readouterr().out.startswith("PASS softmax:")


def test_fails_on_a_stub_with_a_hint():
    def stub(x):
        raise NotImplementedError

    with pytest.raises(CheckFailure, match="not implemented yet"):
        check_function(stub, reference, CASES, name="softmax")


def test_fails_on_an_unstable_softmax_and_names_the_input():
    naive = lambda x: x.exp() / x.exp().sum(-1, keepdim=True)  # noqa: E731
    with pytest.raises(CheckFailure, match=r"values differ for large logits[\s\S]*largest difference"):
        check_function(naive, reference, CASES, name="softmax")


def test_shape_and_type_mismatch_messages():
    with pytest.raises(CheckFailure, match=r"wrong shape.*expected \(2, 5\), got \(5, 2\)"):
        assert_close(torch.zeros(5, 2), torch.zeros(2, 5), what="f", inputs="x")
    with pytest.raises(CheckFailure, match="expected a tensor"):
        assert_close(object(), torch.zeros(2), what="f", inputs="x")
    with pytest.raises(CheckFailure, match="expected a function"):
        check_function(3, reference, CASES, name="softmax")


# ------------------------------------------------------------------------ naming the mistake an answer equals
def test_matching_mistake_reads_tables_in_every_form():
    ones = torch.ones(3)
    assert matching_mistake(ones, {"zeros": torch.zeros(3), "ones": ones}) == "ones"
    assert matching_mistake(ones, [("same words", torch.zeros(3)), ("same words", ones.double())]) == "same words"
    assert matching_mistake(ones, lambda: {"computed late": lambda: ones}) == "computed late"
    assert matching_mistake(ones, {"cannot be computed": None, "raises": lambda: 1 / 0, "ones": ones}) == "ones"
    assert matching_mistake(ones, lambda: 1 / 0) is None  # a table that cannot be built names nothing
    assert matching_mistake(ones, {"other shape": torch.ones(4)}) is None
    assert matching_mistake([1.0, 1.0, 1.0], {"a list, read as float64": ones}) == "a list, read as float64"
    assert matching_mistake(object(), {"anything": ones}) is None
    near = ones.double() + 1e-6
    assert matching_mistake(near, {"x": ones}) is None  # the defaults, atol 1e-9 and rtol 1e-7
    assert matching_mistake(near, {"x": ones}, atol=1e-8, rtol=1e-6) == "x"


def test_hint_for_formats_the_match_and_wrong_only_drops_the_harmless_mistakes():
    assert hint_for(torch.ones(3), {"a": torch.zeros(3), "b": lambda: torch.ones(3)}) == "\n  Hint: b."
    assert hint_for(torch.ones(3), {"raises": lambda: 1 / 0, "shape": torch.ones(4)}) == ""
    assert hint_for(object(), {"a": torch.ones(3)}) == ""
    table = wrong_only(lambda: {"no difference here": torch.ones(2), "wrong": lambda: torch.zeros(2), "none": None},
                       torch.ones(2))()
    assert list(table) == ["wrong", "none"] and torch.equal(table["wrong"], torch.zeros(2, dtype=torch.float64))


def test_assert_close_or_hint_names_the_mistake_or_the_precision():
    with pytest.raises(CheckFailure, match=r"(?s)values differ.*\n  Hint: halved\.$"):
        assert_close_or_hint(torch.ones(2, dtype=torch.float64), torch.full((2,), 2.0, dtype=torch.float64),
                             what="f", inputs="x", variants={"halved": torch.ones(2)})
    with pytest.raises(CheckFailure, match="Hint: the result is torch.float32"):
        assert_close_or_hint(torch.ones(2), torch.full((2,), 1.001, dtype=torch.float64), what="f", inputs="x",
                             variants={})


# ------------------------------------------------------------------------------ inputs changed in place
def test_assert_unchanged_compares_shape_dtype_and_values():
    kept = torch.arange(3.0)
    assert_unchanged("f", "x", {"x": (kept, kept.clone()), "xs": ([kept, kept], [kept.clone(), kept.clone()]),
                                "mask": (None, None)})
    message = r"f: changed its input `x` in place for an input — `x \+= …`.*compute a new tensor instead"
    for changed in (kept + 1, kept[:2], kept.double(), None):
        with pytest.raises(CheckFailure, match=message):
            assert_unchanged("f", "an input", {"x": (kept, changed)})
    with pytest.raises(CheckFailure, match=r"`xs` in place .*and so does reordering the list"):
        assert_unchanged("f", "an input", {"xs": ([kept, kept + 1], [kept + 1, kept])})
    with pytest.raises(CheckFailure, match="`xs` in place"):
        assert_unchanged("f", "an input", {"xs": ([kept, kept], [kept])})
    with pytest.raises(CheckFailure, match=r"`out_proj.bias` in place .* leave out_proj's parameters as they are"):
        assert_unchanged("f", "an input", {"out_proj.bias": (kept, torch.zeros(3))})


def test_assert_close_reads_python_floats_as_float64():
    """A list of Python floats is compared at float64 precision (torch.as_tensor alone would make it float32)."""
    exact = torch.tensor([[0.1], [0.2]], dtype=torch.float64)
    assert_close([[0.1], [0.2]], exact, what="x", inputs="lists", atol=1e-15, rtol=0)
    assert_close(0.1, exact[0, 0], what="x", inputs="a float", atol=1e-15, rtol=0)
    with pytest.raises(CheckFailure):
        assert_close(torch.tensor([[0.1], [0.2]]), exact, what="x", inputs="float32", atol=1e-15, rtol=0)
