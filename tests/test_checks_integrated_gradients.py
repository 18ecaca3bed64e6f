"""The Integrated Gradients checkers of notebook 08 pass right answers on seeds 0–2 and catch the wrong ones students
write, each with a message naming the mistake: the path and the Riemann sum on a small network (exercises 1 and 2),
then token IG on BERT (exercise 3)."""

import numpy as np
import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.integrated_gradients import (
    RecordedCalls,
    check_interpolation_path,
    check_riemann_integrated_gradients,
    check_token_ig,
)


def stub(*args):
    raise NotImplementedError("Exercise: replace this line with your code")


# ============================================================== exercises 1 and 2: the path and the Riemann sum
# ------------------------------------------------------------------------- right answers (the notebook's solutions)
def interpolation_path(x, baseline, n_steps):
    alphas = torch.arange(1, n_steps + 1, dtype=x.dtype) / n_steps  # (n,)
    return baseline + alphas[:, None] * (x - baseline)  # (n, M)


def riemann_integrated_gradients(forward, x, baseline, n_steps):
    alphas = torch.arange(1, n_steps + 1, dtype=x.dtype) / n_steps  # (n,)
    path = (baseline + alphas[:, None] * (x - baseline)).requires_grad_(True)  # (n, M)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)  # (n, M)
    return (x - baseline) * grads.mean(0)  # (M,)


# other right answers a student may write
def path_by_linspace(x, baseline, n_steps):
    alphas = torch.linspace(0, 1, n_steps + 1, dtype=x.dtype)[1:]
    return baseline + alphas[:, None] * (x - baseline)


def ig_with_backward(forward, x, baseline, n_steps):  # .backward() and .grad instead of autograd.grad
    path = path_by_linspace(x, baseline, n_steps).detach().requires_grad_(True)
    forward(path).sum().backward()
    return ((x - baseline) * path.grad.sum(0) / n_steps).detach()


RIGHT_FEATURE_IG = [(check_interpolation_path, interpolation_path), (check_interpolation_path, path_by_linspace),
                    (check_riemann_integrated_gradients, riemann_integrated_gradients),
                    (check_riemann_integrated_gradients, ig_with_backward)]


@pytest.mark.parametrize("checker, solution", RIGHT_FEATURE_IG,
                         ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT_FEATURE_IG])
def test_feature_ig_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


# ------------------------------------------------------------------------------------------- wrong answers
# interpolation_path
def path_x_prime_plus_alpha_x(x, b, n):
    return b + (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * x


def path_alpha_x(x, b, n):
    return (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * x


def path_left_nodes(x, b, n):
    return b + (torch.arange(n, dtype=x.dtype) / n)[:, None] * (x - b)


def path_linspace_from_zero(x, b, n):
    return b + torch.linspace(0, 1, n, dtype=x.dtype)[:, None] * (x - b)


def path_midpoints(x, b, n):
    return b + ((torch.arange(1, n + 1, dtype=x.dtype) - 0.5) / n)[:, None] * (x - b)


def path_reversed(x, b, n):  # from x towards the baseline
    return x + (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * (b - x)


def path_float32_alphas(x, b, n):
    return b + (torch.arange(1, n + 1) / n)[:, None].float() * (x - b)


def path_transposed(x, b, n):
    return interpolation_path(x, b, n).T


def path_with_baseline(x, b, n):
    return b + (torch.arange(0, n + 1, dtype=x.dtype) / n)[:, None] * (x - b)


def path_in_place(x, b, n):
    x -= b  # the caller's x now holds x − x′
    return b + (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * x


# riemann_integrated_gradients
def ig_without_difference(forward, x, baseline, n_steps):  # the draft's formula: no (x − x′) factor
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return grads.mean(0)


def ig_times_input(forward, x, baseline, n_steps):  # x ⊙ mean gradient: right only for a zero baseline
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return x * grads.mean(0)


def ig_summed(forward, x, baseline, n_steps):
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return (x - baseline) * grads.sum(0)


def ig_mean_twice(forward, x, baseline, n_steps):
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).mean(), path)
    return (x - baseline) * grads.mean(0)


def ig_left_nodes(forward, x, baseline, n_steps):
    path = path_left_nodes(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return (x - baseline) * grads.mean(0)


def ig_trapezoid(forward, x, baseline, n_steps):
    alphas = torch.arange(0, n_steps + 1, dtype=x.dtype) / n_steps
    path = (baseline + alphas[:, None] * (x - baseline)).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return (x - baseline) * (grads[:-1] + grads[1:]).mean(0) / 2


def ig_gradient_at_x(forward, x, baseline, n_steps):
    point = x[None].clone().requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(point).sum(), point)
    return (x - baseline) * grads[0]


def ig_through_x(forward, x, baseline, n_steps):  # gradient w.r.t. x, not w.r.t. the path points
    x = x.clone().requires_grad_(True)
    path = interpolation_path(x, baseline, n_steps)
    (grads,) = torch.autograd.grad(forward(path).sum(), x)
    return ((x - baseline) * grads / n_steps).detach()


def ig_loop_over_points(forward, x, baseline, n_steps):  # right values, n calls of forward (the known hole)
    total = torch.zeros_like(x)
    for point in interpolation_path(x, baseline, n_steps):
        point = point[None].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(forward(point).sum(), point)
        total += grad[0]
    return (x - baseline) * total / n_steps


def ig_loop_unbatched(forward, x, baseline, n_steps):  # one (M,) point at a time
    grads = []
    for point in interpolation_path(x, baseline, n_steps):
        point = point.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(forward(point), point)[0])
    return (x - baseline) * torch.stack(grads).mean(0)


def ig_extra_completeness_call(forward, x, baseline, n_steps):  # right values, plus F(x) and F(x′) on the side
    forward(torch.stack([x, baseline]))
    return riemann_integrated_gradients(forward, x, baseline, n_steps)


def ig_in_chunks(forward, x, baseline, n_steps):  # two half batches
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    half = (n_steps + 1) // 2
    outputs = torch.cat([forward(path[:half]), forward(path[half:])]) if n_steps > 1 else forward(path)
    (grads,) = torch.autograd.grad(outputs.sum(), path)
    return (x - baseline) * grads.mean(0)


def ig_in_place(forward, x, baseline, n_steps):
    result = riemann_integrated_gradients(forward, x, baseline, n_steps)
    baseline.zero_()
    return result


def ig_float32_alphas(forward, x, baseline, n_steps):  # torch.arange without dtype=: float32 nodes
    alphas = torch.arange(1, n_steps + 1) / n_steps
    path = (baseline + alphas[:, None] * (x - baseline)).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return (x - baseline) * grads.mean(0)


def ig_float32(forward, x, baseline, n_steps):
    return riemann_integrated_gradients(forward, x, baseline, n_steps).float()


# the course's own answers, called instead of written
def path_by_the_library(x, b, n):
    from bigtut.explain.integrated_gradients import integration_rule

    alphas = torch.as_tensor(integration_rule("riemann_right", n)[0], dtype=x.dtype)
    return b + alphas[:, None] * (x - b)


def ig_by_the_library(forward, x, baseline, n_steps):
    from bigtut.explain.integrated_gradients import integrated_gradients

    result = integrated_gradients(forward, x[None], baseline=baseline[None], n_steps=n_steps, method="riemann_right")
    return torch.as_tensor(result.attributions[0])


# (checker, wrong answer, a phrase the failure message must contain)
WRONG_FEATURE_IG = [
    (check_interpolation_path, path_x_prime_plus_alpha_x, "x′ \\+ αx"),
    (check_interpolation_path, path_alpha_x, "αx: the path starts at the baseline"),
    (check_interpolation_path, path_left_nodes, "the left nodes"),
    (check_interpolation_path, path_linspace_from_zero, r"linspace\(0, 1, n\)"),
    (check_interpolation_path, path_midpoints, "midpoints"),
    (check_interpolation_path, path_reversed, "from x towards x′"),
    (check_interpolation_path, path_float32_alphas, r"the α are float32"),
    (check_interpolation_path, path_transposed, "not the transpose"),
    (check_interpolation_path, path_with_baseline, r"the baseline itself \(k = 0\)"),
    (check_interpolation_path, path_in_place, "changed its input `x` in place"),
    (check_interpolation_path, path_by_the_library, "calls `integration_rule`"),
    (check_interpolation_path, stub, "not implemented"),
    (check_riemann_integrated_gradients, ig_without_difference, r"the \(x − x′\) factor is missing"),
    (check_riemann_integrated_gradients, ig_times_input, r"x ⊙ gradients"),
    (check_riemann_integrated_gradients, ig_summed, "summed, not averaged"),
    (check_riemann_integrated_gradients, ig_mean_twice, "divided by n twice"),
    (check_riemann_integrated_gradients, ig_left_nodes, "the left nodes"),
    (check_riemann_integrated_gradients, ig_trapezoid, "the trapezoid rule"),
    (check_riemann_integrated_gradients, ig_gradient_at_x, "the gradient at x alone"),
    (check_riemann_integrated_gradients, ig_through_x, "with respect to x through the path"),
    (check_riemann_integrated_gradients, ig_loop_over_points, r"forward was called 7 time\(s\).*ONE call"),
    (check_riemann_integrated_gradients, ig_loop_unbatched, r"forward was called 7 time\(s\).*\(5,\)"),
    (check_riemann_integrated_gradients, ig_extra_completeness_call, r"called 2 time\(s\).*\(2, 5\), \(7, 5\)"),
    (check_riemann_integrated_gradients, ig_in_chunks, r"called 2 time\(s\).*\(4, 5\), \(3, 5\)"),
    (check_riemann_integrated_gradients, ig_in_place, "changed its input `baseline` in place"),
    (check_riemann_integrated_gradients, ig_float32, "the result is torch.float32"),
    (check_riemann_integrated_gradients, ig_float32_alphas, r"the α are float32"),
    (check_riemann_integrated_gradients, ig_by_the_library, "calls `integrated_gradients`"),
    (check_riemann_integrated_gradients, stub, "not implemented"),
]


@pytest.mark.parametrize("checker, wrong, message", WRONG_FEATURE_IG,
                         ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in WRONG_FEATURE_IG])
def test_feature_ig_checkers_catch_the_wrong_answer_and_name_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)


def test_feature_ig_failures_name_the_input():
    with pytest.raises(CheckFailure, match=r"n_steps=4 \(seed=5\)"):
        check_interpolation_path(path_alpha_x, seed=5)
    with pytest.raises(CheckFailure, match=r"n_steps=7 \(seed=5\)"):
        check_riemann_integrated_gradients(ig_summed, seed=5)


@pytest.mark.parametrize("checker", [check_interpolation_path, check_riemann_integrated_gradients])
def test_feature_ig_checkers_refuse_what_is_not_a_function(checker):
    with pytest.raises(CheckFailure):
        checker(None, seed=0)


def test_feature_ig_one_call_is_checked_at_every_step_count():
    """The loop over path points is refused even where its values are exact (every n_steps, here n=1 last)."""
    def loop_only_when_many(forward, x, baseline, n_steps):
        return (ig_loop_over_points if n_steps == 40 else riemann_integrated_gradients)(forward, x, baseline, n_steps)

    with pytest.raises(CheckFailure, match=r"called 40 time\(s\).*n_steps=40"):
        check_riemann_integrated_gradients(loop_only_when_many, seed=0)


def test_feature_ig_pass_lines_are_the_committed_ones(capsys):
    check_interpolation_path(interpolation_path)
    check_riemann_integrated_gradients(riemann_integrated_gradients)
    assert capsys.readouterr().out.splitlines() == [
        "PASS interpolation_path: right-Riemann points from a non-zero baseline",
        "PASS riemann_integrated_gradients: right-Riemann IG on a small network, non-zero baselines",
    ]


def test_recorded_calls_note_the_shape_of_each_first_argument():
    recorded = RecordedCalls(lambda batch: batch)
    recorded(torch.zeros(2, 3))
    recorded(batch=torch.zeros(4))
    recorded(5)
    assert recorded.shapes == [(2, 3), (4,), "int"]
    assert recorded.describe(limit=2) == "(2, 3), (4,), … (3 calls)"


# ========================================================================== exercise 3: token IG on BERT
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


def token_ig_from_the_input(model, input_ids, attention_mask, target, baseline_ids, n_steps):
    """The path walked from x to x′ (the Gauss–Legendre nodes are symmetric: the same points), a float 0/1 mask,
    the embeddings not detached (the gradient taken with respect to the non-leaf path)."""
    embedding = model.get_input_embeddings()
    x, x_base = embedding(input_ids), embedding(baseline_ids)  # (B, L, d) each, attached to the table
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    alphas, weights = torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)  # (n,), (n,)
    B, L, d = x.shape
    path = (x[:, None] + alphas[None, :, None, None] * (x_base - x)[:, None]).reshape(B * n_steps, L, d)
    logits = model(inputs_embeds=path, attention_mask=attention_mask.float().repeat_interleave(n_steps, 0))
    (grads,) = torch.autograd.grad(logits[:, target].sum(), path)  # (B*n, L, d)
    average = torch.einsum("k,bkld->bld", weights, grads.view(B, n_steps, L, d))
    return ((x - x_base).detach() * average).sum(-1)


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


def mask_from_the_ids(model, input_ids, attention_mask, target, baseline_ids, n_steps):  # the mask given ignored
    return token_ig(model, input_ids, (input_ids != model.config.pad_id).long(), target, baseline_ids, n_steps)


def model_frozen(model, input_ids, attention_mask, target, baseline_ids, n_steps):  # the caller's model changed
    model.requires_grad_(False)
    return token_ig(model, input_ids, attention_mask, target, baseline_ids, n_steps)


def mask_baseline(model, input_ids, attention_mask, target, baseline_ids, n_steps):  # always [MASK] at the words
    keep = (input_ids == 1) | (input_ids == 2) | (attention_mask == 0)  # [CLS], [SEP], padding
    return token_ig(model, input_ids, attention_mask, target, torch.where(keep, input_ids, 3), n_steps)


def path_variant(*, step="difference", extra_nodes=0):
    """token_ig with the path x′ + α·x (``step="input"``) or n_steps + extra_nodes Gauss–Legendre nodes."""

    def wrong(model, input_ids, attention_mask, target, baseline_ids, n_steps):
        embedding = model.get_input_embeddings()
        with torch.no_grad():
            x, x_base = embedding(input_ids), embedding(baseline_ids)
        n = n_steps + extra_nodes
        nodes, weights = np.polynomial.legendre.leggauss(n)
        alphas, weights = torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)
        B, L, d = x.shape
        moved = x - x_base if step == "difference" else x
        path = (x_base[:, None] + alphas[None, :, None, None] * moved[:, None]).reshape(B * n, L, d)
        path.requires_grad_(True)
        logits = model(inputs_embeds=path, attention_mask=attention_mask.repeat_interleave(n, 0))
        (grads,) = torch.autograd.grad(logits[:, target].sum(), path)
        return ((x - x_base) * torch.einsum("k,bkld->bld", weights, grads.view(B, n, L, d))).sum(-1)

    return wrong


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
    (baseline_in_place, "changed its input `baseline_ids` in place"),
    (ids_in_place, "changed its input `input_ids` in place"),
    (model_in_train_mode, "changed the model .*training mode"),
    (by_the_library, "calls `token_integrated_gradients`"),
    (with_delta, r"returned a tuple of 2 .* return only the"),
    (mask_from_the_ids, r"the mask was recomputed from the ids, input_ids != \[PAD\]"),
    (model_frozen, r"changed the model .*the requires_grad of its parameters"),
    (mask_baseline, r"the baseline ids given were not used: the baseline is \[MASK\]"),
    (path_variant(step="input"), r"the path x′ \+ α·x"),
    (path_variant(extra_nodes=1), r"n_steps \+ 1 nodes"),
    (path_variant(extra_nodes=-1), r"n_steps − 1 nodes"),
    (stub, "not implemented"),
]


@pytest.mark.parametrize("solution", [token_ig, token_ig_step_major, token_ig_numpy, token_ig_from_the_input],
                         ids=["notebook", "step_major", "numpy", "from_the_input"])
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
