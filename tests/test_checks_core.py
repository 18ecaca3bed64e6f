import pytest
import torch

from bigtut.checks import CheckFailure, assert_close, check_function


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
