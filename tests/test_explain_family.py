"""The family test: every attribution method of bigtut.explain keeps the one shape written down in
bigtut/explain/__init__.py. A method added later that breaks it fails here, and the checker itself is shown
to catch planted violations.

Walked: ``bigtut.explain.ATTRIBUTION_METHODS`` (and nothing public may look like a method without being in it).
"""

import inspect
import typing

import numpy as np
import pytest
import torch
from torch import nn

import bigtut.explain as explain
from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.gpt import GPT, GPTConfig

SAMPLING = {explain.kernel_shap, explain.permutation_shap, explain.lime_tabular, explain.lime_text,
            explain.lime_image, explain.token_shap, explain.token_permutation_shap, explain.smoothgrad,
            explain.gradient_shap, explain.token_smoothgrad, explain.token_gradient_shap,
            explain.generation_kernel_shap}
IGNORES_TARGET = {explain.raw_attention_scores, explain.rollout_scores}  # attention does not depend on the class
OLD_NAMES = {"baselines", "internal_batch_size", "removal", "query", "x", "image", "scores", "values"}


def pattern_violations(method) -> list[str]:
    """What in ``method``'s signature breaks the family's shape (an empty list: nothing)."""
    params = list(inspect.signature(method).parameters.values())
    problems = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in positional]
    if names not in (["f", "inputs"], ["model", "input_ids", "attention_mask"]):
        problems.append(f"positional arguments must be (f, inputs) or (model, input_ids, attention_mask), got {names}")
    if positional and positional[-1].name == "attention_mask" and positional[-1].default is not None:
        problems.append("attention_mask must default to None (every token real)")
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        problems.append("no *args or **kwargs: every option is a named keyword")
    keyword = {p.name: p for p in params if p.kind == p.KEYWORD_ONLY}
    if set(keyword) | set(names) != {p.name for p in params}:
        problems.append("everything after the data must be keyword-only")
    expected = {"target": None, "batch_size": None}
    if method not in IGNORES_TARGET:
        expected["probabilities"] = False
    if method in SAMPLING:
        expected["seed"] = None
    for name, default in expected.items():
        if name not in keyword:
            problems.append(f"missing keyword-only {name}=")
        elif keyword[name].default is not default:
            problems.append(f"{name} must default to {default!r}, got {keyword[name].default!r}")
    if method not in SAMPLING and "seed" in keyword:
        problems.append("seed= only on methods that sample (this one is deterministic)")
    stale = sorted(OLD_NAMES & {p.name for p in params})
    if stale:
        problems.append(f"old argument names {stale}: use the family's words (baseline, absent, batch_size, position)")
    result = typing.get_type_hints(method).get("return")
    fields = getattr(result, "_fields", ())
    if not fields or fields[0] != "attributions":
        problems.append(f"must return a NamedTuple whose first field is 'attributions', got {result!r}")
    return problems


@pytest.mark.parametrize("method", explain.ATTRIBUTION_METHODS, ids=lambda m: m.__name__)
def test_signature_keeps_the_pattern(method):
    assert pattern_violations(method) == []


def test_the_checker_catches_planted_violations():
    """Each planted method breaks one rule; the checker must name it."""
    class Result(typing.NamedTuple):
        attributions: np.ndarray

    class Wrong(typing.NamedTuple):
        values: np.ndarray

    def good(model, input_ids, attention_mask=None, *, target=None, batch_size=None, probabilities=False) -> Result:
        ...

    def positional_target(model, input_ids, attention_mask=None, target=None, *, batch_size=None,
                          probabilities=False) -> Result:
        ...

    def old_batch_knob(model, input_ids, attention_mask=None, *, target=None, internal_batch_size=None,
                       batch_size=None, probabilities=False) -> Result:
        ...

    def wrong_result(model, input_ids, attention_mask=None, *, target=None, batch_size=None,
                     probabilities=False) -> Wrong:
        ...

    def no_batch_knob(f, inputs, *, target=None, probabilities=False) -> Result:
        ...

    def explained_first(inputs, f, *, target=None, batch_size=None, probabilities=False) -> Result:
        ...

    assert pattern_violations(good) == []
    planted = {positional_target: "keyword-only", old_batch_knob: "old argument names",
               wrong_result: "first field is 'attributions'", no_batch_knob: "batch_size",
               explained_first: "positional arguments"}
    for method, message in planted.items():
        assert any(message in problem for problem in pattern_violations(method)), (method.__name__,
                                                                                   pattern_violations(method))


def test_every_public_method_is_walked():
    """A public function of bigtut.explain that returns attributions must be in ATTRIBUTION_METHODS (or be the
    named building blocks: LIME on a neighbourhood the caller built, activation patching of two aligned inputs),
    so it cannot escape the walk."""
    building_blocks = {explain.lime_from_neighbourhood, explain.activation_patching}  # two inputs: clean, corrupted
    for name in explain.__all__:
        obj = getattr(explain, name)
        if not inspect.isfunction(obj) or obj in building_blocks:
            continue
        result = typing.get_type_hints(obj).get("return")
        if getattr(result, "_fields", ("",))[0] == "attributions":
            assert obj in explain.ATTRIBUTION_METHODS, name


# ---------------------------------------------------------------------------------------- running the family
def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


def _bert():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=30, max_len=8, d_model=16, num_layers=2,
                                                     num_heads=2, d_ff=32, num_labels=3, pad_id=0, dropout=0.0))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.double().eval()


def _calls():
    """(method, model, positional data, keyword options) for every method of the family, on tiny models."""
    mlp, bert = _mlp(), _bert()
    rows = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # (B, M)
    background = torch.randn(5, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64).numpy()
    images = np.random.default_rng(3).random((2, 4, 4))  # (B, H, W)
    conv = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double().eval()
    ids = torch.randint(3, 30, (3, 7), generator=torch.Generator().manual_seed(4))
    ids[:, 0] = 1
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    token = dict(target=[0, 2, 1])
    torch.manual_seed(5)
    gpt = GPT(GPTConfig(vocab_size=30, block_size=16, n_layer=1, n_head=2, d_model=16)).double().eval()
    prompt = torch.randint(0, 30, (3, 5), generator=torch.Generator().manual_seed(6))  # (B, P): no padding
    continuation = torch.randint(0, 30, (3, 3), generator=torch.Generator().manual_seed(7))  # (B, T)
    return {
        explain.integrated_gradients: (mlp, (rows,), dict(target=[0, 2, 1], n_steps=8)),
        explain.exact_shapley: (mlp, (rows.numpy(),), dict(target=1, background=background)),
        explain.smoothgrad: (mlp, (rows,), dict(target=[0, 2, 1], n_samples=4)),
        explain.gradient_shap: (mlp, (rows,), dict(target=[0, 2, 1], n_samples=4,
                                                    baseline=torch.randn(3, 4, dtype=torch.float64))),
        explain.occlusion: (mlp, (rows,), dict(target=[0, 2, 1], window=2)),
        explain.token_smoothgrad: (bert, (ids, mask), dict(**token, n_samples=3)),
        explain.token_gradient_shap: (bert, (ids, mask), dict(**token, n_samples=3)),
        explain.token_occlusion: (bert, (ids, mask), dict(**token, mask_id=2, keep_ids=(1,), window=2)),
        explain.shapley_interactions: (mlp, (rows.numpy(),), dict(target=1, background=background)),
        explain.kernel_shap: (mlp, (rows.numpy(),), dict(target=1, background=background, n_samples=10)),
        explain.permutation_shap: (mlp, (rows.numpy(),), dict(target=1, background=background, n_permutations=3)),
        explain.lime_tabular: (mlp, (rows.numpy(),), dict(target=1, training_data=background, n_samples=50)),
        explain.lime_image: (conv, (images,), dict(target=2, n_samples=40, segments=np.arange(16).reshape(4, 4) // 4)),
        explain.token_integrated_gradients: (bert, (ids, mask), dict(**token, n_steps=8)),
        explain.token_shap: (bert, (ids, mask), dict(**token, absent="mask", mask_id=2, keep_ids=(1,))),
        explain.token_permutation_shap: (bert, (ids, mask), dict(**token, absent="delete", keep_ids=(1,),
                                                                 n_permutations=2)),
        explain.token_shapley_interactions: (bert, (ids, mask), dict(**token, keep_ids=(1,))),
        explain.lime_text: (bert, (ids, mask), dict(**token, n_samples=30, keep_ids=(1,))),
        explain.counterfactual_effects: (bert, (ids, mask), dict(**token, keep_ids=(1,))),
        explain.gradient_x_input: (bert, (ids, mask), token),
        explain.generation_integrated_gradients: (gpt, (prompt,), dict(target=continuation, n_steps=8,
                                                                       baseline="zero")),
        explain.generation_occlusion: (gpt, (prompt,), dict(target=continuation)),
        explain.generation_kernel_shap: (gpt, (prompt,), dict(target=continuation, n_samples=20)),
        explain.gradient_norm: (bert, (ids, mask), token),
        explain.rollout_scores: (bert, (ids, mask), token),
        explain.raw_attention_scores: (bert, (ids, mask), token),
    }


CALLS = _calls()


def test_every_method_is_exercised():
    assert set(CALLS) == set(explain.ATTRIBUTION_METHODS)


@pytest.mark.parametrize("method", explain.ATTRIBUTION_METHODS, ids=lambda m: m.__name__)
def test_result_shape_type_and_rows(method):
    """A NamedTuple, attributions first, float64 NumPy shaped like the input; padding gets 0; and a row explained
    alone equals the same row explained in the batch (same seed for every row)."""
    model, data, options = CALLS[method]
    result = method(model, *data, **options)
    assert isinstance(result, tuple) and result._fields[0] == "attributions"
    attributions = result.attributions
    assert isinstance(attributions, np.ndarray) and attributions.dtype == np.float64
    if method in explain.GENERATION_METHODS:  # (B, steps, P + T): one row of scores per generated token
        (B, P), T = data[0].shape, options["target"].shape[1]
        assert attributions.shape == (B, T, P + T)
    else:
        assert attributions.shape == tuple(data[0].shape)
    assert np.isfinite(attributions).all()
    if len(data) == 2 and method not in explain.GENERATION_METHODS:
        assert (attributions[data[1].numpy() == 0] == 0).all()
    row = 1
    alone_options = {k: (v[row] if k == "target" and isinstance(v, list) else
                         v[row:row + 1] if k == "target" and isinstance(v, torch.Tensor) else v)
                     for k, v in options.items()}
    alone = method(model, *(d[row:row + 1] for d in data), **alone_options).attributions
    assert np.allclose(alone[0], attributions[row], atol=1e-10)


@pytest.mark.parametrize("method", explain.ATTRIBUTION_METHODS, ids=lambda m: m.__name__)
def test_bad_input_is_refused_with_a_named_argument(method):
    """The common refusals every method shares: a single example without its batch dimension, an empty batch,
    NaN data, an out-of-range target, a zero batch size."""
    model, data, options = CALLS[method]
    tokens = len(data) == 2 or method in explain.GENERATION_METHODS  # ids, not floats
    name = "input_ids" if tokens else "inputs"
    first = data[0]
    bad = {
        "batch dimension": (first[0], *data[1:]),
        "at least one": (first[:0], *(d[:0] for d in data[1:])),
    }
    for pattern, args in bad.items():
        with pytest.raises((ValueError, TypeError), match=pattern):
            method(model, *args, **options)
    if not tokens:
        nan = first.copy() if isinstance(first, np.ndarray) else first.clone()
        nan[0, ...] = np.nan
        with pytest.raises(ValueError, match=f"{name} must be finite"):
            method(model, nan, **options)
    else:
        with pytest.raises(TypeError, match="integer tensor"):
            method(model, first.double(), *data[1:], **options)
    with pytest.raises(ValueError, match="batch_size"):
        method(model, *data, **{**options, "batch_size": 0})
    if method in explain.GENERATION_METHODS:  # the target is the continuation's ids: a bare int is the wrong type
        with pytest.raises(TypeError, match="target"):
            method(model, *data, **{**options, "target": 7})
        with pytest.raises(ValueError, match="target"):
            method(model, *data, **{**options, "target": options["target"] + 100})  # ids outside the vocabulary
    elif method not in IGNORES_TARGET:
        with pytest.raises(ValueError, match="target"):
            method(model, *data, **{**options, "target": 7})
