"""The token Integrated Gradients checker (notebook 08, exercise 3) passes right answers on seeds 0–2 and catches the
wrong ones students write, each with a message naming the mistake."""

import numpy as np
import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.integrated_gradients import check_token_ig


# ------------------------------------------------------------------------------------ the notebook's solution
def token_ig(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    embedding = model.get_input_embeddings()
    with torch.no_grad():
        x, x_base = embedding(input_ids), embedding(baseline_ids)  # (B, L, d), (B, L, d)
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)  # Gauss–Legendre on [-1, 1]
    alphas = torch.as_tensor((nodes + 1) / 2, dtype=x.dtype)  # (n,) on [0, 1]
    weights = torch.as_tensor(weights / 2, dtype=x.dtype)  # (n,) summing to 1
    B, L, d = x.shape
    path = x_base[:, None] + alphas[None, :, None, None] * (x - x_base)[:, None]  # (B, n, L, d)
    path = path.reshape(B * n_steps, L, d).requires_grad_(True)  # (B*n, L, d): row b*n + k
    mask = attention_mask.repeat_interleave(n_steps, dim=0)  # (B*n, L)
    logits = model(inputs_embeds=path, attention_mask=mask)  # (B*n, C)
    (grads,) = torch.autograd.grad(logits[:, target].sum(), path)  # (B*n, L, d)
    average = (weights[None, :, None, None] * grads.view(B, n_steps, L, d)).sum(1)  # (B, L, d)
    return ((x - x_base) * average).sum(-1)  # (B, L)


# ------------------------------------------------------------------------------------ other right answers
def token_ig_step_major(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    """Rows k*B + b, the mask tiled to match, bigtut's integration_rule, .backward() and .grad."""
    from bigtut.explain import integration_rule

    table = model.get_input_embeddings().weight.detach()
    x, x_base = table[input_ids], table[baseline_ids]  # (B, L, d)
    alphas, weights = integration_rule("gausslegendre", n_steps)
    B, L, d = x.shape
    path = (x_base[None] + alphas.view(-1, 1, 1, 1) * (x - x_base)[None]).reshape(-1, L, d)  # (n*B, L, d)
    path = path.detach().requires_grad_(True)
    model(inputs_embeds=path, attention_mask=attention_mask.repeat(n_steps, 1))[:, target].sum().backward()
    average = torch.einsum("k,kbld->bld", weights, path.grad.view(n_steps, B, L, d))
    return ((x - x_base) * average).sum(-1)


def token_ig_numpy(model, input_ids, attention_mask, target, baseline_ids, n_steps):  # a NumPy array is fine
    return token_ig(model, input_ids, attention_mask, target, baseline_ids, n_steps).numpy()


def stub(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    raise NotImplementedError


# ------------------------------------------------------------------------------------ wrong answers
def student(*, rule="gausslegendre", factor="difference", reduce="sum", output="logit", rows="interleave",
            embed="token", ignore_baseline=None, interpolate_ids=False, through_x=False, objective="sum"):
    """The solution with one mistake, written the way a student writes it."""

    def wrong(model, input_ids, attention_mask, target, baseline_ids, n_steps):
        table = model.get_input_embeddings()
        B, L = input_ids.shape
        if ignore_baseline == "pad":
            baseline_ids = torch.full_like(input_ids, model.config.pad_id)
        elif ignore_baseline == "pad_keep_specials":
            keep = (input_ids == 1) | (input_ids == 2) | (input_ids == model.config.pad_id)
            baseline_ids = torch.where(keep, input_ids, model.config.pad_id)

        def embedded(ids):
            e = table(ids)
            if embed == "positions":  # the position and segment embeddings interpolated too
                emb = model.bert.embeddings
                e = e + emb.position(torch.arange(L)) + emb.segment(torch.zeros_like(ids))
            return e

        if rule == "gausslegendre":
            nodes, weights = np.polynomial.legendre.leggauss(n_steps)
            alphas, weights = torch.tensor((nodes + 1) / 2), torch.tensor(weights / 2)
        elif rule == "unmapped":
            nodes, weights = np.polynomial.legendre.leggauss(n_steps)
            alphas, weights = torch.tensor(nodes), torch.tensor(weights)
        elif rule == "left":
            alphas, weights = torch.arange(n_steps, dtype=torch.float64) / n_steps, torch.full((n_steps,), 1 / n_steps)
        elif rule == "right":
            alphas = torch.arange(1, n_steps + 1, dtype=torch.float64) / n_steps
            weights = torch.full((n_steps,), 1 / n_steps, dtype=torch.float64)
        elif rule == "linspace":
            alphas, weights = torch.linspace(0, 1, n_steps, dtype=torch.float64), torch.full((n_steps,), 1 / n_steps)
        weights = weights.double()
        x = embedded(input_ids).detach()
        x_base = torch.zeros_like(x) if ignore_baseline == "zeros" else embedded(baseline_ids).detach()
        if through_x:
            x = x.clone().requires_grad_(True)
        if interpolate_ids:  # ids moved along the path, then looked up
            between = baseline_ids[:, None] + alphas[None, :, None] * (input_ids - baseline_ids)[:, None]
            path = table(between.round().long()).reshape(B * n_steps, L, -1).detach().requires_grad_(True)
        else:
            path = x_base[:, None] + alphas[None, :, None, None] * (x - x_base)[:, None]  # (B, n, L, d)
            path = path.reshape(B * n_steps, L, -1)
            if not through_x:
                path = path.detach().requires_grad_(True)
        mask = {"interleave": attention_mask.repeat_interleave(n_steps, 0), "tile": attention_mask.repeat(n_steps, 1),
                "none": None,
                "hide_pad": (attention_mask.bool() & (baseline_ids != model.config.pad_id)).repeat_interleave(
                    n_steps, 0)}[rows]
        logits = model(inputs_embeds=path, attention_mask=mask)  # (B*n, C)
        explained = {"logit": lambda: logits[:, target], "argmax": lambda: logits.max(-1).values,
                     "probability": lambda: logits.softmax(-1)[:, target], "all": lambda: logits.sum(-1)}[output]()
        if through_x:  # each path point's logit weighted, the gradient taken with respect to x
            total = (weights.repeat(B) * explained).sum()
        else:
            total = explained.sum() if objective == "sum" else explained.mean()
        (grads,) = torch.autograd.grad(total, x if through_x else path)
        if through_x:
            average = grads
        else:
            average = (weights.view(1, -1, 1, 1) * grads.view(B, n_steps, L, -1)).sum(1)  # (B, L, d)
        x = x.detach()
        per_coordinate = {"difference": x - x_base, "none": torch.ones_like(x), "input": x}[factor] * average
        return {"sum": lambda a: a.sum(-1), "abs": lambda a: a.abs().sum(-1), "norm": lambda a: a.norm(dim=-1),
                "keep": lambda a: a}[reduce](per_coordinate)

    return wrong


def loop_over_steps(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    table = model.get_input_embeddings()
    x, x_base = table(input_ids).detach(), table(baseline_ids).detach()
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    total = torch.zeros_like(x)
    for alpha, weight in zip((nodes + 1) / 2, weights / 2):  # one pass per step
        point = (x_base + alpha * (x - x_base)).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(inputs_embeds=point, attention_mask=attention_mask)[:, target].sum(),
                                      point)
        total = total + weight * grad
    return ((x - x_base) * total).sum(-1)


def with_completeness_pass(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    with torch.no_grad():
        model(input_ids, attention_mask)  # F(x), to check completeness: an extra pass
    return token_ig(model, input_ids, attention_mask, target, baseline_ids, n_steps)


def baseline_in_place(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    baseline_ids[:, 1] = input_ids[:, 1]  # keeps the first word, and overwrites the caller's tensor
    return token_ig(model, input_ids, attention_mask, target, baseline_ids, n_steps)


def ids_in_place(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    result = token_ig(model, input_ids, attention_mask, target, baseline_ids, n_steps)
    input_ids[attention_mask == 0] = -1
    return result


def model_in_train_mode(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    model.train()
    return token_ig(model, input_ids, attention_mask, target, baseline_ids, n_steps)


def by_the_library(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    from bigtut.explain import token_integrated_gradients

    return torch.as_tensor(token_integrated_gradients(model, input_ids, attention_mask, target=target,
                                                      baseline=baseline_ids, n_steps=n_steps).attributions)


def with_delta(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    return token_ig(model, input_ids, attention_mask, target, baseline_ids, n_steps), torch.zeros(len(input_ids))


def inverted_mask(model, input_ids, attention_mask, target, baseline_ids, n_steps):  # key_padding_mask's convention
    return token_ig(model, input_ids, ~attention_mask.bool(), target, baseline_ids, n_steps)


def transposed_sum(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    return student(reduce="keep")(model, input_ids, attention_mask, target, baseline_ids, n_steps).sum(1)


WRONG = [
    (student(factor="none"), r"the \(x − x′\) factor is missing"),
    (student(factor="input"), r"x ⊙ gradient: multiply by \(x − x′\)"),
    (student(reduce="abs"), r"\|·\| summed over d"),
    (student(reduce="norm"), "the norm over d"),
    (student(reduce="keep"), r"per-coordinate attributions; sum them over the embedding dimension"),
    (transposed_sum, r"expected \(2, \d\): the sum runs over the embedding dimension d only"),
    (student(interpolate_ids=True), "the token ids were interpolated and rounded"),
    (student(embed="positions"), "the position and segment embeddings were interpolated too"),
    (student(ignore_baseline="pad"), r"the baseline ids given were not used: the baseline is \[PAD\] everywhere"),
    (student(ignore_baseline="pad_keep_specials"), r"baseline ids given were not used: the baseline is \[PAD\] \(with"),
    (student(ignore_baseline="zeros"), "the baseline ids given were not used: the baseline is zero embeddings"),
    (student(through_x=True), "with respect to x through the path"),
    (student(rule="left"), "the left Riemann sum"),
    (student(rule="right"), "the right Riemann sum"),
    (student(rule="linspace"), r"linspace\(0, 1, n\)"),
    (student(rule="unmapped"), r"left on \[−1, 1\]"),
    (student(objective="mean"), r"the mean of the target logits scales every gradient by 1/\(B·n_steps\)"),
    (student(output="argmax"), "the logit of the predicted class at each path point"),
    (student(output="probability"), r"the probability of `target` \(softmax\)"),
    (student(output="all"), "the sum of all the logits"),
    (student(rows="none"), "no attention_mask was given to the model"),
    (student(rows="tile"), r"the mask was tiled \(mask.repeat\(n_steps, 1\)\)"),
    (student(rows="hide_pad"), r"the mask hides the positions where the baseline is \[PAD\]"),
    (inverted_mask, "1/True marks a real token"),
    (loop_over_steps, r"(?s)the model ran 6 time\(s\).*\(2, \d, \d+\).*ONE pass"),
    (with_completeness_pass, r"the model ran 2 time\(s\)"),
    (baseline_in_place, "changed its argument `baseline_ids` in place"),
    (ids_in_place, "changed its argument `input_ids` in place"),
    (model_in_train_mode, "changed the model .*training mode"),
    (by_the_library, "calls `token_integrated_gradients`"),
    (with_delta, r"returned a tuple of 2 .* return only the"),
    (stub, "not implemented"),
]


@pytest.mark.parametrize("solution", [token_ig, token_ig_step_major, token_ig_numpy],
                         ids=["notebook", "step_major", "numpy"])
def test_right_answers_pass_on_seeds_0_to_2(solution, capsys):
    assert_passes_on_seeds(check_token_ig, solution, capsys)


@pytest.mark.parametrize("wrong, message", WRONG, ids=[f"{i:02d}" for i in range(len(WRONG))])
def test_wrong_answers_fail_naming_the_mistake(wrong, message):
    assert_fails_naming(check_token_ig, wrong, message)


def test_failures_name_the_input():
    with pytest.raises(CheckFailure, match=r"(?s)random BERT classifier.*\[MASK\] baseline.*n_steps=6, target=\d "
                                           r"\(seed=5\).*expected.*got"):
        check_token_ig(student(rule="left"), seed=5)


def test_refuses_what_is_not_a_function():
    with pytest.raises(CheckFailure, match="expected a function"):
        check_token_ig(None, seed=0)


def test_the_callers_random_state_is_untouched_and_the_pass_line_fixed(capsys):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    check_token_ig(token_ig)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert capsys.readouterr().out.splitlines() == [
        "PASS token_ig: Gauss–Legendre IG along the token embeddings of random tiny BERT classifiers, a batch "
        "without padding and two padded batches, three given baselines"]
