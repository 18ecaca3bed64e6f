"""The chapter-09 checkers pass the right answers on seeds 0–2 and catch the usual wrong ones, each with a message
naming the mistake."""


import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.evaluating_explanations import check_precision_at_k, check_rollout


# ------------------------------------------------------------------------- right answers (the notebook's solutions)
def precision_at_k(scores, evidence, k):
    top = scores.argsort(dim=1, descending=True)[:, :k]  # (B, k): positions of the k highest scores
    return evidence.gather(1, top).double().mean(1)  # (B,)


def rollout(attentions):
    R = None
    for A in attentions:  # (h, L, L), first layer first
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


# other right answers
def precision_by_topk_float32(scores, evidence, k):  # float32 is fine for a share of k tokens
    return evidence.gather(1, scores.topk(k, dim=1).indices).float().sum(1) / k


def rollout_from_identity(attentions):  # R starts at I; A + I renormalised is the same as 0.5·A + 0.5·I
    R = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
    for A in attentions:
        A_hat = A.mean(0) + torch.eye(A.shape[-1], dtype=A.dtype)
        R = (A_hat / A_hat.sum(-1, keepdim=True)) @ R
    return R


RIGHT = [(check_precision_at_k, precision_at_k), (check_precision_at_k, precision_by_topk_float32),
         (check_rollout, rollout), (check_rollout, rollout_from_identity)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT])
def test_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def test_committed_solutions_print_the_committed_pass_lines(capsys):
    check_precision_at_k(precision_at_k, seed=0)
    check_rollout(rollout, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS precision_at_k: random scores and evidence, k = 1, 3, 6",
        "PASS rollout: 1–4 layers, several heads, rows that do and do not sum to 1",
    ]


# ------------------------------------------------------------------------------------------- wrong answers
def stub(*args):
    raise NotImplementedError("Exercise: replace this line with your code")


def recall_instead(scores, evidence, k):  # hits / |evidence|
    top = scores.argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).double().sum(1) / evidence.sum(1)


def share_of_all_tokens(scores, evidence, k):  # precision over every token, not the top k
    return evidence.double().mean(1)


def lowest_k(scores, evidence, k):  # ascending order: the k least important tokens
    top = scores.argsort(dim=1)[:, :k]
    return evidence.gather(1, top).double().mean(1)


def top_by_magnitude(scores, evidence, k):  # |score|: a strongly negative token counts as top
    top = scores.abs().argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).double().mean(1)


def hit_count(scores, evidence, k):
    top = scores.argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).double().sum(1)


def divided_by_min_k_evidence(scores, evidence, k):  # an R-precision-like denominator
    top = scores.argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).double().sum(1) / evidence.sum(1).clamp(max=k)


def one_too_many(scores, evidence, k):
    top = scores.argsort(dim=1, descending=True)[:, :k + 1]
    return evidence.gather(1, top).double().mean(1)


def skips_the_top(scores, evidence, k):  # ranks 1 … k, as if rank 0 were the instance itself
    top = scores.argsort(dim=1, descending=True)[:, 1:k + 1]
    return evidence.gather(1, top).double().mean(1)


def batch_mean(scores, evidence, k):
    return precision_at_k(scores, evidence, k).mean()


def sorts_in_place(scores, evidence, k):  # right values, but the caller's scores are sorted in place
    order = scores.argsort(dim=1, descending=True)
    scores.copy_(scores.gather(1, order))
    return evidence.gather(1, order[:, :k]).double().mean(1)


def bool_mean(scores, evidence, k):  # mean of a bool tensor: a RuntimeError
    top = scores.argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).mean(1)


def rollout_without_residual(attentions):
    R = None
    for A in attentions:
        A_hat = A.mean(0) / A.mean(0).sum(-1, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


def rollout_without_renormalising(attentions):
    R = None
    for A in attentions:
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        R = A_hat if R is None else A_hat @ R
    return R


def rollout_normalised_before_residual(attentions):
    R = None
    for A in attentions:
        mean = A.mean(0)
        A_hat = 0.5 * mean / mean.sum(-1, keepdim=True) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        R = A_hat if R is None else A_hat @ R
    return R


def rollout_column_normalised(attentions):
    R = None
    for A in attentions:
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(0, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


def rollout_wrong_order(attentions):  # R = Â_1 Â_2 ⋯ Â_n
    R = None
    for A in attentions:
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else R @ A_hat
    return R


def rollout_max_heads(attentions):  # heads reduced by max instead of the mean
    R = None
    for A in attentions:
        A_hat = 0.5 * A.amax(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


def rollout_sum_heads(attentions):
    R = None
    for A in attentions:
        A_hat = 0.5 * A.sum(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


def last_layer_only(attentions):
    return rollout(attentions[-1:])


def first_layer_only(attentions):
    return rollout(attentions[:1])


def rollout_transposed(attentions):
    return rollout(attentions).T


def rollout_per_head(attentions):
    return torch.stack([rollout([A[i:i + 1] for A in attentions]) for i in range(attentions[0].shape[0])]).mean(0)


def rollout_reverses_the_list(attentions):  # right values, but the caller's list is reversed in place
    attentions.reverse()
    R = None
    for A in attentions:  # last layer first now
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else R @ A_hat
    return R


def rollout_normalises_in_place(attentions):  # right values, but the caller's maps are rescaled in place
    for A in attentions:
        A /= A.sum(-1, keepdim=True)
    return rollout(attentions)


def rollout_with_batch_axis(attentions):
    return rollout(attentions)[None]


def precision_by_the_library(scores, evidence, k):
    from bigtut.explain import metrics

    return torch.as_tensor(metrics.precision_at_k(scores.numpy(), evidence.numpy(), k=k))


def rollout_by_the_library(attentions):
    from bigtut.explain.attention_scores import attention_rollout

    return attention_rollout([A[None] for A in attentions])[0]


# (checker, wrong answer, a phrase the failure message must contain)
WRONG = [
    (check_precision_at_k, recall_instead, "recall: hits / |evidence|"),
    (check_precision_at_k, share_of_all_tokens, "the evidence share of all L tokens"),
    (check_precision_at_k, lowest_k, "the k lowest scores"),
    (check_precision_at_k, top_by_magnitude, r"ranked by \|score\|"),
    (check_precision_at_k, hit_count, "the number of hits"),
    (check_precision_at_k, divided_by_min_k_evidence, r"min\(k, \|evidence\|\)"),
    (check_precision_at_k, one_too_many, r"the top k \+ 1 positions"),
    (check_precision_at_k, skips_the_top, "the top-scored position .* was skipped"),
    (check_precision_at_k, batch_mean, "not over the batch"),
    (check_precision_at_k, sorts_in_place, "changed its input `scores` in place"),
    (check_precision_at_k, bool_mean, "raised RuntimeError"),
    (check_precision_at_k, precision_by_the_library, "calls `precision_at_k` — .* the course's own answer"),
    (check_precision_at_k, stub, "not implemented"),
    (check_rollout, rollout_without_residual, "no residual"),
    (check_rollout, rollout_without_renormalising, "not renormalised after adding 0.5·I"),
    (check_rollout, rollout_normalised_before_residual, "normalised before adding 0.5·I"),
    (check_rollout, rollout_column_normalised, "the columns were normalised"),
    (check_rollout, rollout_wrong_order, "the product runs the wrong way"),
    (check_rollout, rollout_max_heads, "merged by their maximum"),
    (check_rollout, rollout_sum_heads, "the heads were summed"),
    (check_rollout, last_layer_only, "only the last layer"),
    (check_rollout, first_layer_only, "only the first layer"),
    (check_rollout, rollout_transposed, "the result is transposed"),
    (check_rollout, rollout_per_head, "a rollout per head"),
    (check_rollout, rollout_reverses_the_list, "changed its input `attentions` in place"),
    (check_rollout, rollout_normalises_in_place, "changed its input `attentions` in place"),
    (check_rollout, rollout_with_batch_axis, r"wrong shape .* expected \(7, 7\), got \(1, 7, 7\)"),
    (check_rollout, rollout_by_the_library, "calls `attention_rollout`"),
    (check_rollout, stub, "not implemented"),
]


@pytest.mark.parametrize("checker, wrong, message", WRONG, ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in WRONG])
def test_checkers_catch_the_wrong_answer_and_name_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)


def test_failure_message_names_the_case():
    with pytest.raises(CheckFailure, match=r"k=1.*seed=5"):
        check_precision_at_k(lowest_k, seed=5)
    with pytest.raises(CheckFailure, match=r"(?s)2 layer\(s\) of 3 heads over L=7 tokens, rows after dropout .*seed=4"
                                           r".*expected.*got"):
        check_rollout(rollout_without_renormalising, seed=4)
    with pytest.raises(CheckFailure, match=r"expected a function"):
        check_rollout(None, seed=0)
    with pytest.raises(CheckFailure, match=r"expected a function"):
        check_precision_at_k(3, seed=0)


# ============================================================== ERASER comprehensiveness and sufficiency, exercise 3-4
import copy  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from bigtut.checks.evaluating_explanations import (  # noqa: E402
    check_cascading_randomisation,
    check_comprehensiveness,
    check_sufficiency,
)


def _removable(input_ids, attention_mask, keep_ids):
    return attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(keep_ids, dtype=input_ids.dtype))  # (B, L)


def _target_probability(model, input_ids, attention_mask, target):
    with torch.no_grad():
        p = model(input_ids, attention_mask=attention_mask).softmax(-1)  # (B, C)
    return p[torch.arange(len(input_ids)), target]  # (B,)


def eraser_comprehensiveness(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    removable = _removable(input_ids, attention_mask, keep_ids)
    order = torch.where(removable, scores, -torch.inf).argsort(dim=1, descending=True, stable=True)  # (B, L)
    erased = attention_mask.clone()
    for b in range(len(input_ids)):
        k = math.ceil(fraction * int(removable[b].sum()) - 1e-9)
        erased[b, order[b, :k]] = 0
    return (_target_probability(model, input_ids, attention_mask, target)
            - _target_probability(model, input_ids, erased, target))


def eraser_sufficiency(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    removable = _removable(input_ids, attention_mask, keep_ids)
    order = torch.where(removable, scores, -torch.inf).argsort(dim=1, descending=True, stable=True)  # (B, L)
    only_top = attention_mask.bool() & ~removable  # the keep_ids tokens stay
    for b in range(len(input_ids)):
        k = math.ceil(fraction * int(removable[b].sum()) - 1e-9)
        only_top[b, order[b, :k]] = True
    return (_target_probability(model, input_ids, attention_mask, target)
            - _target_probability(model, input_ids, only_top.long(), target))


def comprehensiveness_row_by_row(model, ids, mask, scores, target, fraction, keep_ids):  # NumPy ranking, one row
    out = []                                                                                 # at a time, as in §3
    keep = torch.isin(ids, torch.tensor(keep_ids))
    for b in range(len(ids)):
        removable = (mask[b].bool() & ~keep[b]).numpy()
        k = int(np.ceil(fraction * removable.sum() - 1e-9))
        order = np.argsort(np.where(removable, -scores[b].numpy(), np.inf), kind="stable")[:k]
        cut = mask[b].clone()
        cut[order] = 0
        with torch.no_grad():
            p = torch.softmax(model(ids[b:b + 1], attention_mask=mask[b:b + 1]), -1)[0, target[b]]
            q = torch.softmax(model(ids[b:b + 1], attention_mask=cut[None]), -1)[0, target[b]]
        out.append((p - q).item())
    return np.array(out)


def comprehensiveness_pad_ids_and_mask(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    # deleting also the id (set to [PAD]) is the same: a position with attention_mask 0 is never seen
    removable = _removable(input_ids, attention_mask, keep_ids)
    order = torch.where(removable, scores, -torch.inf).argsort(dim=1, descending=True, stable=True)
    erased, ids = attention_mask.clone(), input_ids.clone()
    for b in range(len(input_ids)):
        k = math.ceil(fraction * int(removable[b].sum()))
        erased[b, order[b, :k]] = 0
        ids[b, order[b, :k]] = 0
    return (_target_probability(model, input_ids, attention_mask, target)
            - _target_probability(model, ids, erased, target))


def _erasure_answer(present=False, *, key=lambda s: s, allowed="words", count="removable", k_of=None, removal="mask",
                    output="probability", sign=1, drop_kept=False, later_ties=False, in_place=False, no_mask=False,
                    argmax=False, real_from_ids=False, padding_seen=False):
    """A comprehensiveness (or, ``present``, sufficiency) answer with one mistake chosen by the arguments."""
    def answer(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
        B, L = input_ids.shape
        real = input_ids != 0 if real_from_ids else attention_mask.bool()  # 0 is [PAD]
        kept = torch.isin(input_ids, torch.tensor(keep_ids, dtype=input_ids.dtype))
        ranked = {"words": real & ~kept, "padding": ~kept, "special": real}[allowed]
        n = {"removable": ranked.sum(1), "real": real.sum(1), "L": torch.full((B,), L)}[count]
        s = key(scores)
        if later_ties:  # stable on the reversed row: the later position wins a tie
            order = (L - 1) - torch.where(ranked, s, -torch.inf).flip(1).argsort(dim=1, descending=True, stable=True)
        else:
            order = torch.where(ranked, s, -torch.inf).argsort(dim=1, descending=True, stable=True)
        new = (real & ~ranked) if present and not drop_kept else (torch.zeros_like(real) if present else real.clone())
        for b in range(B):
            k = (k_of or (lambda f, m: math.ceil(f * m)))(fraction, int(n[b]))
            new[b, order[b, :k]] = present
        if padding_seen:
            new |= ~real
        ids, mask = input_ids, new.long()
        if removal == "pad":
            ids, mask = input_ids.masked_fill(real & ~new, 0), attention_mask
        elif removal == "compact":
            order = torch.argsort((~new).to(torch.int8), dim=1, stable=True)
            ids, mask = input_ids.gather(1, order), new.gather(1, order).long()
        if in_place:
            attention_mask.copy_(mask)
            mask = attention_mask
        with torch.no_grad():
            before = model(input_ids) if no_mask else model(input_ids, attention_mask=attention_mask)
            after = model(ids, attention_mask=mask)
        rows = torch.arange(B)
        target = before.argmax(-1) if argmax else target
        pick = {"probability": lambda z: z.softmax(-1)[rows, target], "logit": lambda z: z[rows, target],
                "log": lambda z: z.log_softmax(-1)[rows, target], "batch": lambda z: z.softmax(0)[rows, target],
                "sigmoid": lambda z: z[rows, target].sigmoid()}[output]
        return sign * (pick(before) - pick(after))
    return answer


def _erasure_by_the_library(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    from bigtut.explain.metrics import comprehensiveness

    return comprehensiveness(model, input_ids, attention_mask, scores, target=target, fraction=fraction,
                             keep_ids=keep_ids)


def _sufficiency_by_the_library(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    from bigtut.explain import metrics

    return metrics.sufficiency(model, input_ids, attention_mask, scores, target=target, fraction=fraction,
                               keep_ids=keep_ids)


def _batch_mean(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    return eraser_comprehensiveness(model, input_ids, attention_mask, scores, target, fraction, keep_ids).mean()


# ================================================================================== cascading randomisation
def cascading_randomisation(model, input_ids, attention_mask, explain_fn, target, seed, std):
    original = torch.as_tensor(explain_fn(model, input_ids, attention_mask, target=target)).abs()  # (B, L)
    randomised = copy.deepcopy(model)
    groups = [randomised.classifier, randomised.bert.pooler, *reversed(randomised.bert.layers),
              randomised.bert.embeddings]
    generator = torch.Generator().manual_seed(seed)
    real = attention_mask.bool()
    rhos = []
    for group in groups:
        with torch.no_grad():
            for owner in group.modules():
                for name, p in owner.named_parameters(recurse=False):
                    if name == "bias":
                        p.zero_()
                    elif isinstance(owner, torch.nn.LayerNorm):
                        p.fill_(1.0)
                    else:
                        p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * std)
        scores = torch.as_tensor(explain_fn(randomised, input_ids, attention_mask, target=target)).abs()
        rhos.append([stats.spearmanr(original[b, real[b]], scores[b, real[b]]).statistic
                     for b in range(len(input_ids))])
    return torch.tensor(rhos, dtype=torch.float64)  # (S, B)


def _cascade_answer(*, order="top-down", cascading=True, reseed=False, redraw="right", correlation=stats.spearmanr,
                    magnitude=True, padding=False, previous=False, fixed_seed=None, in_place=False, shallow=False,
                    global_seed=False, skip=None, per_batch=False, transpose=False, explain_trained=False):
    """A cascade answer with one mistake chosen by the arguments."""
    def answer(model, input_ids, attention_mask, explain_fn, target, seed, std):
        seed = seed if fixed_seed is None else fixed_seed
        explain = lambda m: torch.as_tensor(explain_fn(m, input_ids, attention_mask, target=target))  # noqa: E731
        reference = explain(model)
        names = ["classifier", "bert.pooler",
                 *[f"bert.layers.{i}" for i in reversed(range(len(model.bert.layers)))], "bert.embeddings"]
        if order == "bottom-up":
            names = names[::-1]
        names = [n for n in names if n != skip]
        copy_of = (lambda m: m) if in_place else copy.copy if shallow else copy.deepcopy
        randomised = copy_of(model)
        if global_seed:
            torch.manual_seed(seed)
        generator = None if global_seed else torch.Generator().manual_seed(seed)
        real = attention_mask.bool() if not padding else torch.ones_like(attention_mask, dtype=torch.bool)
        rhos = []
        for step in names:
            if not cascading:
                randomised = copy_of(model)
            if reseed:
                generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for owner in randomised.get_submodule(step).modules():
                    for name, p in owner.named_parameters(recurse=False):
                        special = name == "bias" or isinstance(owner, torch.nn.LayerNorm)
                        if redraw == "all" or not special or (redraw == "norms" and name != "bias"):
                            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * std)
                        elif name == "bias":
                            p.zero_()
                        else:
                            p.fill_(1.0)
            scores = explain(model if explain_trained else randomised)
            a, b = (reference.abs(), scores.abs()) if magnitude else (reference, scores)
            if per_batch:
                rhos.append(correlation(a[real], b[real]).statistic)
            else:
                rhos.append([correlation(a[i, real[i]], b[i, real[i]]).statistic for i in range(len(a))])
            if previous:
                reference = scores
        result = torch.tensor(rhos, dtype=torch.float64)
        return result.T if transpose else result
    return answer


def cascade_with_normal_(model, input_ids, attention_mask, explain_fn, target, seed, std):
    # another right answer: nn.init.normal_ with the generator, and NumPy's ranks for Spearman
    original = np.abs(np.asarray(explain_fn(model, input_ids, attention_mask, target=target)))
    randomised = copy.deepcopy(model)
    groups = ["classifier", "bert.pooler"] + [f"bert.layers.{i}" for i in range(len(model.bert.layers))][::-1]
    generator, rhos = torch.Generator().manual_seed(seed), []
    for group in groups + ["bert.embeddings"]:
        module = randomised.get_submodule(group)
        for owner in module.modules():
            for name, p in owner.named_parameters(recurse=False):
                if name == "bias":
                    torch.nn.init.zeros_(p)
                elif "Norm" in type(owner).__name__:
                    torch.nn.init.ones_(p)
                else:
                    torch.nn.init.normal_(p, 0.0, std, generator=generator)
        scores = np.abs(np.asarray(explain_fn(randomised, input_ids, attention_mask, target=target)))
        row = []
        for b, real in enumerate(attention_mask.bool().numpy()):
            ra, rb = stats.rankdata(original[b, real]), stats.rankdata(scores[b, real])
            row.append(np.corrcoef(ra, rb)[0, 1])
        rhos.append(row)
    return np.array(rhos)


def _cascade_by_the_library(model, input_ids, attention_mask, explain_fn, target, seed, std):
    from bigtut.explain.sanity import randomisation_check

    return randomisation_check(model, input_ids, attention_mask, explain_fn=explain_fn, target=target, seed=seed,
                               std=std).spearman


ERASER_RIGHT = [(check_comprehensiveness, eraser_comprehensiveness), (check_sufficiency, eraser_sufficiency),
                (check_comprehensiveness, comprehensiveness_row_by_row),
                (check_comprehensiveness, comprehensiveness_pad_ids_and_mask),
                (check_cascading_randomisation, cascading_randomisation),
                (check_cascading_randomisation, cascade_with_normal_)]


@pytest.mark.parametrize("checker, solution", ERASER_RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in ERASER_RIGHT])
def test_erasure_and_cascade_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def test_erasure_and_cascade_solutions_print_the_committed_pass_lines(capsys):
    check_comprehensiveness(eraser_comprehensiveness, seed=0)
    check_sufficiency(eraser_sufficiency, seed=0)
    check_cascading_randomisation(cascading_randomisation, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS comprehensiveness: a random tiny BERT classifier, top ⌈f·n⌉ removable tokens deleted, f = 0.1, 0.2, "
        "0.5, ties, padding, keep_ids",
        "PASS sufficiency: a random tiny BERT classifier, top ⌈f·n⌉ removable tokens kept, the rest deleted, f = 0.1, "
        "0.2, 0.5, ties, padding, keep_ids",
        "PASS cascading_randomisation: random 1- and 2-layer BERT classifiers, gradient × input, top-down cascade on "
        "a copy, Spearman of |scores| over real tokens",
    ]


C, S = check_comprehensiveness, check_sufficiency
ERASER_WRONG = [
    (C, _erasure_answer(key=lambda s: -s), "the k lowest-scored tokens were removed"),
    (C, _erasure_answer(key=torch.abs), r"ranked by \|score\|"),
    (C, _erasure_answer(allowed="padding"), "padding took part in the ranking"),
    (C, _erasure_answer(allowed="special"), r"the keep_ids tokens \(\[CLS\], \[SEP\]\) were ranked"),
    (C, _erasure_answer(count="real"), "k was counted over all real tokens"),
    (C, _erasure_answer(count="L"), "k was counted over the padded length L"),
    (C, _erasure_answer(k_of=lambda f, n: math.floor(f * n)), "k = ⌊fraction · n⌋"),
    (C, _erasure_answer(k_of=lambda f, n: round(f * n)), r"k = round\(fraction · n\)"),
    (C, _erasure_answer(k_of=lambda f, n: math.ceil(f)), "fraction used as a number of tokens"),
    (C, _erasure_answer(later_ties=True), "ties went to the later position"),
    (C, _erasure_answer(output="logit"), "logits were compared"),
    (C, _erasure_answer(output="log"), "log-probabilities were compared"),
    (C, _erasure_answer(output="sigmoid"), "sigmoid of the target logit"),
    (C, _erasure_answer(output="batch"), r"the softmax ran over the batch \(dim 0\)"),
    (C, _erasure_answer(sign=-1), "the sign is flipped"),
    (C, _erasure_answer(removal="pad"), r"replaced by \[PAD\] \(id 0\) and still attended"),
    (C, _erasure_answer(removal="compact"), "moved left"),
    (C, _erasure_answer(present=True), "sufficiency was computed"),
    (C, _erasure_answer(no_mask=True), r"p\(x\) was computed without the attention mask"),
    (C, _erasure_answer(argmax=True), r"the predicted class \(argmax\) was followed"),
    (C, _erasure_answer(real_from_ids=True), r"real tokens were found by their id \(≠ \[PAD\]\)"),
    (C, _erasure_answer(padding_seen=True), "the padding became visible in x′"),
    (C, _erasure_answer(in_place=True), "changed its input `attention_mask` in place"),
    (C, _batch_mean, "one score per row"),
    (C, _erasure_by_the_library, "calls `comprehensiveness` — .* the course's own answer"),
    (C, stub, "not implemented"),
    (S, _erasure_answer(True, key=lambda s: -s), "the k lowest-scored tokens were removed"),
    (S, _erasure_answer(True, key=torch.abs), r"ranked by \|score\|"),
    (S, _erasure_answer(True, allowed="padding"), "padding took part in the ranking"),
    (S, _erasure_answer(True, allowed="special"), r"the keep_ids tokens \(\[CLS\], \[SEP\]\) were ranked"),
    (S, _erasure_answer(True, count="real"), "k was counted over all real tokens"),
    (S, _erasure_answer(True, k_of=lambda f, n: math.floor(f * n)), "k = ⌊fraction · n⌋"),
    (S, _erasure_answer(True, output="logit"), "logits were compared"),
    (S, _erasure_answer(True, sign=-1), "the sign is flipped"),
    (S, _erasure_answer(True, removal="pad"), r"replaced by \[PAD\] \(id 0\) and still attended"),
    (S, _erasure_answer(True, removal="compact"), "moved left"),
    (S, _erasure_answer(True, drop_kept=True), "keep_ids tokens were deleted too"),
    (S, _erasure_answer(False), "comprehensiveness was computed"),
    (S, _erasure_answer(True, later_ties=True), "ties went to the later position"),
    (S, _erasure_answer(True, no_mask=True), r"p\(x\) was computed without the attention mask"),
    (S, _erasure_answer(True, padding_seen=True), "the padding became visible in x′"),
    (S, _sufficiency_by_the_library, "calls `sufficiency`"),
    (S, stub, "not implemented"),
]

R = check_cascading_randomisation
CASCADE_WRONG = [
    (R, _cascade_answer(cascading=False), "the randomisations do not accumulate"),
    (R, _cascade_answer(cascading=False, reseed=True), "the randomisations do not accumulate"),
    (R, _cascade_answer(order="bottom-up"), "bottom-up: the cascade starts at the top"),
    (R, _cascade_answer(in_place=True), "the caller's model was changed"),
    (R, _cascade_answer(shallow=True), "the caller's model was changed"),
    (R, _cascade_answer(correlation=stats.pearsonr), "Pearson's r"),
    (R, _cascade_answer(correlation=stats.kendalltau), "Kendall's τ"),
    (R, _cascade_answer(magnitude=False), "signed attributions were correlated"),
    (R, _cascade_answer(padding=True), "padding took part in the correlation"),
    (R, _cascade_answer(previous=True), "compared with the previous step"),
    (R, _cascade_answer(reseed=True), "the generator was re-seeded at every step"),
    (R, _cascade_answer(fixed_seed=0), "the seed was not used"),
    (R, _cascade_answer(global_seed=True), "torch's global random state changed"),
    (R, _cascade_answer(redraw="all"), "biases and LayerNorm scales were drawn at random too"),
    (R, _cascade_answer(redraw="norms"), "LayerNorm scales were drawn at random: set them to 1"),
    (R, _cascade_answer(skip="bert.pooler"), "the pooler step is missing"),
    (R, _cascade_answer(skip="bert.embeddings"), "the embeddings step is missing"),
    (R, _cascade_answer(per_batch=True), "not one over the whole batch"),
    (R, _cascade_answer(transpose=True), r"expected \(S, B\)"),
    (R, _cascade_answer(explain_trained=True), "every ρ is 1: the trained model was explained"),
    (R, _cascade_by_the_library, "calls `randomisation_check`"),
    (R, stub, "not implemented"),
]


@pytest.mark.parametrize("checker, wrong, message", ERASER_WRONG + CASCADE_WRONG,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(ERASER_WRONG + CASCADE_WRONG)])
def test_erasure_and_cascade_checkers_catch_the_wrong_answer_and_name_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)


def comprehensiveness_by_topk(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    # topk breaks ties in no fixed order: right on continuous scores, wrong on some tied batches
    removable = _removable(input_ids, attention_mask, keep_ids)
    erased = attention_mask.clone()
    for b in range(len(input_ids)):
        k = math.ceil(fraction * int(removable[b].sum()))
        erased[b, torch.where(removable[b], scores[b], -torch.inf).topk(k).indices] = 0
    return (_target_probability(model, input_ids, attention_mask, target)
            - _target_probability(model, input_ids, erased, target))


def test_erasure_failures_name_the_case_and_the_ties():
    with pytest.raises(CheckFailure, match=r"(?s)integer scores with ties.*seed=0.*among equal scores the earlier "
                                           r"position ranks first"):
        check_comprehensiveness(comprehensiveness_by_topk, seed=0)
    with pytest.raises(CheckFailure, match=r"(?s)B=6 rows of L=12 ids.*seed=7.*expected.*got"):
        check_sufficiency(_erasure_answer(True, sign=-1), seed=7)
    with pytest.raises(CheckFailure, match=r"expected a function"):
        check_comprehensiveness("comprehensiveness", seed=0)
    with pytest.raises(CheckFailure, match=r"expected a function"):
        check_cascading_randomisation(None, seed=0)


def test_the_checkers_leave_torch_s_global_random_state_alone():
    state = torch.random.get_rng_state()
    check_comprehensiveness(eraser_comprehensiveness, seed=0)
    check_cascading_randomisation(cascading_randomisation, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)


# ================================================================ review: more right and wrong answers (exercises 3-5)
def precision_as_a_list(scores, evidence, k):  # a list of Python floats: read in float64, not float32
    top = scores.argsort(dim=1, descending=True)[:, :k]
    return [float(e) for e in evidence.gather(1, top).double().mean(1)]


def comprehensiveness_as_a_list(*args):  # one .item() per row: a list of Python floats
    return [p.item() for p in eraser_comprehensiveness(*args)]


def comprehensiveness_in_float32(*args):  # float32 is harmless here: every usual mistake is ≥ 1e-4 away
    return eraser_comprehensiveness(*args).float()


def sufficiency_deleting_the_rest(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    # NumPy ranking per row (lexsort, ties to the earlier position); every removable token below the top k deleted
    removable = _removable(input_ids, attention_mask, keep_ids).numpy()
    out = []
    for b in range(len(input_ids)):
        where = np.flatnonzero(removable[b])
        order = where[np.lexsort((where, -scores[b, where].numpy()))]
        k = math.ceil(fraction * len(where) - 1e-9)
        mask = attention_mask[b].clone()
        mask[torch.as_tensor(order[k:], dtype=torch.long)] = 0
        p = _target_probability(model, input_ids[b:b + 1], attention_mask[b:b + 1], target[b:b + 1])
        q = _target_probability(model, input_ids[b:b + 1], mask[None], target[b:b + 1])
        out.append(float(p - q))
    return out


def cascade_as_python_floats(*args):  # a list of lists of Python floats
    return [[float(r) for r in row] for row in cascading_randomisation(*args)]


def cascade_in_float32(*args):
    return cascading_randomisation(*args).float()


def cascade_by_parameter_names(model, input_ids, attention_mask, explain_fn, target, seed, std):
    # named_parameters() of each step (the same order as modules() + recurse=False), 1-D non-biases = LayerNorm
    original = torch.as_tensor(explain_fn(model, input_ids, attention_mask, target=target)).abs()
    randomised, generator, rhos = copy.deepcopy(model), torch.Generator().manual_seed(seed), []
    steps = ["classifier", "bert.pooler", *[f"bert.layers.{i}" for i in reversed(range(len(model.bert.layers)))],
             "bert.embeddings"]
    for step in steps:
        with torch.no_grad():
            for name, p in randomised.get_submodule(step).named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif p.dim() == 1:
                    p.fill_(1.0)
                else:
                    p.copy_(std * torch.randn(p.shape, generator=generator, dtype=torch.float64))
        scores = torch.as_tensor(explain_fn(randomised, input_ids, attention_mask, target=target)).abs()
        rhos.append([stats.spearmanr(original[b][m], scores[b][m]).statistic
                     for b, m in enumerate(attention_mask.bool())])
    return np.array(rhos)


MORE_RIGHT = [(check_precision_at_k, precision_as_a_list),
              (check_comprehensiveness, comprehensiveness_as_a_list),
              (check_comprehensiveness, comprehensiveness_in_float32),
              (check_sufficiency, sufficiency_deleting_the_rest),
              (check_cascading_randomisation, cascade_as_python_floats),
              (check_cascading_randomisation, cascade_in_float32),
              (check_cascading_randomisation, cascade_by_parameter_names)]


@pytest.mark.parametrize("checker, solution", MORE_RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in MORE_RIGHT])
def test_more_right_answers_pass(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def sufficiency_keeping_kept_ids_anywhere(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    # keep_ids tokens kept wherever they are: [CLS] under the padding becomes visible
    removable = _removable(input_ids, attention_mask, keep_ids)
    order = torch.where(removable, scores, -torch.inf).argsort(dim=1, descending=True, stable=True)
    only_top = torch.isin(input_ids, torch.tensor(keep_ids))  # not & attention_mask
    for b in range(len(input_ids)):
        only_top[b, order[b, :math.ceil(fraction * int(removable[b].sum()) - 1e-9)]] = True
    return (_target_probability(model, input_ids, attention_mask, target)
            - _target_probability(model, input_ids, only_top.long(), target))


def comprehensiveness_n_over_the_batch(model, input_ids, attention_mask, scores, target, fraction, keep_ids):
    removable = _removable(input_ids, attention_mask, keep_ids)
    order = torch.where(removable, scores, -torch.inf).argsort(dim=1, descending=True, stable=True)
    erased = attention_mask.clone()
    for b in range(len(input_ids)):
        erased[b, order[b, :math.ceil(fraction * int(removable.sum()))]] = 0  # removable.sum(): the whole batch
    erased &= attention_mask
    return (_target_probability(model, input_ids, attention_mask, target)
            - _target_probability(model, input_ids, erased, target))


def normalised_comprehensiveness(*args):  # (p(x) − p(x′)) / p(x)
    model, input_ids, attention_mask, _, target = args[:5]
    return eraser_comprehensiveness(*args) / _target_probability(model, input_ids, attention_mask, target)


def normalised_sufficiency(*args):
    model, input_ids, attention_mask, _, target = args[:5]
    return eraser_sufficiency(*args) / _target_probability(model, input_ids, attention_mask, target)


def cascade_with_the_trained_model_as_a_row(*args):  # ρ = 1 for the unrandomised model prepended
    rhos = cascading_randomisation(*args)
    return torch.cat([torch.ones(1, rhos.shape[1], dtype=rhos.dtype), rhos])


MORE_WRONG = [
    (check_sufficiency, sufficiency_keeping_kept_ids_anywhere, "keep_ids tokens under the padding were made visible"),
    (check_comprehensiveness, comprehensiveness_n_over_the_batch, "n was counted over the whole batch"),
    (check_comprehensiveness, normalised_comprehensiveness, r"the drop was divided by p\(x\)"),
    (check_sufficiency, normalised_sufficiency, r"the drop was divided by p\(x\)"),
    (check_cascading_randomisation, cascade_with_the_trained_model_as_a_row,
     "the trained model itself is not a step"),
    (check_comprehensiveness, comprehensiveness_by_topk, "among equal scores the earlier position ranks first"),
]


@pytest.mark.parametrize("checker, wrong, message", MORE_WRONG,
                         ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in MORE_WRONG])
def test_more_wrong_answers_fail_naming_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)
