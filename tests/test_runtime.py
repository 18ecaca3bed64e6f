import random

import numpy as np
import pytest
import torch

import bigtut


def test_default_device_is_cuda_when_present_else_cpu(monkeypatch):
    monkeypatch.delenv("BIGTUT_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert bigtut.get_device().type == expected


def test_cpu_can_always_be_chosen(monkeypatch):
    monkeypatch.delenv("BIGTUT_DEVICE", raising=False)
    assert bigtut.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("BIGTUT_DEVICE", "cpu")
    assert bigtut.get_device() == torch.device("cpu")


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cuda0", ""])
def test_unknown_device_lists_the_options(bad):
    with pytest.raises(ValueError, match="cpu, cuda, mps"):
        bigtut.get_device(bad)


def test_unknown_device_from_environment(monkeypatch):
    monkeypatch.setenv("BIGTUT_DEVICE", "tpu")
    with pytest.raises(ValueError, match="'tpu'"):
        bigtut.get_device()


def test_unavailable_device_says_what_is_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="not available.*available: cpu"):
        bigtut.get_device("cuda")


def test_mps_is_never_picked_unasked(monkeypatch):
    monkeypatch.delenv("BIGTUT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if hasattr(torch.backends, "mps"):
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert bigtut.get_device() == torch.device("cpu")


def test_non_string_device_is_a_type_error():
    with pytest.raises(TypeError):
        bigtut.get_device(0)


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist(), torch.nn.Linear(4, 2).weight.sum().item()


def test_seeding_makes_two_runs_equal():
    bigtut.seed_everything(123)
    first = _draw()
    bigtut.seed_everything(123)
    assert _draw() == first
    bigtut.seed_everything(124)
    assert _draw() != first


def test_seed_must_be_an_int():
    with pytest.raises(TypeError):
        bigtut.seed_everything(1.5)


def test_describe_environment_names_versions():
    info = bigtut.describe_environment()
    assert info["torch"] == torch.__version__
    assert info["device"] in ("cpu", "cuda")


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "4", None])
def test_check_positive_int_names_the_argument(bad):
    from bigtut.validation import check_positive_int

    with pytest.raises(ValueError, match=rf"width must be a positive int, got {bad!r}"):
        check_positive_int("width", bad)
    assert check_positive_int("width", 7) == 7


@pytest.mark.parametrize("bad", ["cpu:3", "cpu:x", "cuda:99"])
def test_device_index_is_checked(bad, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="index must be an integer in 0..0"):
        bigtut.get_device(bad)
    assert bigtut.get_device("cpu:0") == torch.device("cpu:0")


def test_eval_mode_restores_every_submodule_even_on_error():
    from torch import nn

    from bigtut.runtime import eval_mode

    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.1)))
    model[2].eval()  # a mixed state: the inner block frozen in eval mode
    before = [m.training for m in model.modules()]
    with eval_mode(model) as same:
        assert same is model and not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == before


def test_validation_helpers_name_the_argument():
    from bigtut.validation import check_attention_mask, check_dropout, check_shape, check_token_ids

    with pytest.raises(ValueError, match="rate must lie in"):
        check_dropout("rate", 1.0)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, L\) = \(2, 3\), got \(3,\)"):
        check_shape(torch.zeros(3), (2, 3), "mask", "(B, L)")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 5\)"):
        check_token_ids(torch.tensor([[0, 5]]), 5, "ids")
    with pytest.raises(ValueError, match="2-D integer"):
        check_token_ids(torch.zeros(1, 2), 5, "ids")
    with pytest.raises(ValueError, match="0/1"):
        check_attention_mask(torch.full((1, 2), 0.5), 1, 2)
    assert check_attention_mask(torch.tensor([[1, 0]]), 1, 2).tolist() == [[True, False]]


def test_importing_bigtut_then_torchao_writes_nothing_to_stderr():
    """torchao (and transformers, which imports it) log noise on import on a CPU-only machine; bigtut quiets it,
    because nbval fails a checked cell that writes anything to stderr."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import bigtut, torchao.quantization"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
