"""The chapter-11 checkers pass the right answers on seeds 0–2 and catch the usual wrong ones, each with a message
naming the mistake."""

import re

import numpy as np
import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut import eval_mode
from bigtut.checks import CheckFailure
from bigtut.checks.generation import check_contrastive_step, check_step_log_probs, check_to_words
from bigtut.explain import generation_occlusion, word_scores


# ------------------------------------------------------------------------- right answers (the notebook's solutions)
def step_log_probs(model, prompt_ids, continuation_ids):
    P = prompt_ids.shape[1]
    ids = torch.cat([prompt_ids, continuation_ids], dim=1)  # (B, L)
    with eval_mode(model), torch.no_grad():
        logits = model(ids).logits  # (B, L, V)
    log_p = logits[:, P - 1:-1].log_softmax(-1)  # (B, T, V)
    return log_p.gather(-1, continuation_ids[..., None])[..., 0]  # (B, T)


def contrastive_step(model, prompt_ids, continuation_ids, step, alternative):
    ids = torch.cat([prompt_ids, continuation_ids[:, :step]], dim=1)  # (B, P + step)
    with eval_mode(model), torch.no_grad():
        log_p = model(ids).logits[:, -1].log_softmax(-1)  # (B, V)
    rows = torch.arange(len(ids))
    return log_p[rows, continuation_ids[:, step]] - log_p[rows, alternative]


def to_words(text, char_scores):
    words, scores = [], []
    for match in re.finditer(r"\w+|[^\w\s]+", text):
        words.append(match.group())
        scores.append(char_scores[match.start():match.end()].sum())
    return words, torch.tensor(scores, dtype=torch.float64)


# ------------------------------------------------------------------------------------------ other right answers
def step_log_probs_one_pass_per_step(model, prompt_ids, continuation_ids):
    """A forward pass per step, model.eval() left on, a list of Python floats per row."""
    model.eval()
    out = []
    for t in range(continuation_ids.shape[1]):
        ids = torch.cat([prompt_ids, continuation_ids[:, :t]], dim=1)
        with torch.no_grad():
            last = model(ids).logits[:, -1]  # (B, V)
        log_p = last - torch.logsumexp(last, -1, keepdim=True)
        out.append(log_p[torch.arange(len(ids)), continuation_ids[:, t]])
    return torch.stack(out, 1).tolist()


def step_log_probs_numpy_with_grad(model, prompt_ids, continuation_ids):
    """Autograd left on (harmless), the answer as a NumPy array."""
    with eval_mode(model):
        logits = model(torch.cat([prompt_ids, continuation_ids], 1)).logits
    P, T = prompt_ids.shape[1], continuation_ids.shape[1]
    log_p = torch.log_softmax(logits, dim=-1)[:, P - 1:P - 1 + T]
    return torch.gather(log_p, 2, continuation_ids.unsqueeze(-1)).squeeze(-1).detach().numpy()


def contrastive_by_logits(model, prompt_ids, continuation_ids, step, alternative):
    """logit_a − logit_b: the normaliser cancels."""
    P = prompt_ids.shape[1]
    with eval_mode(model), torch.no_grad():
        logits = model(torch.cat([prompt_ids, continuation_ids], 1)).logits[:, P + step - 1]  # (B, V)
    a = continuation_ids[:, step]
    return logits.gather(1, a[:, None])[:, 0] - logits.gather(1, alternative[:, None])[:, 0]


def contrastive_loop(model, prompt_ids, continuation_ids, step, alternative):
    model.eval()
    out = []
    for b in range(len(prompt_ids)):
        ids = torch.cat([prompt_ids[b], continuation_ids[b, :step]])[None]
        with torch.no_grad():
            p = model(ids).logits[0, -1].softmax(-1)
        out.append(float(torch.log(p[continuation_ids[b, step]] / p[alternative[b]])))
    return out


def to_words_by_scanning(text, char_scores):
    """A manual scan: a character is a word character, whitespace or punctuation."""
    def kind(c):
        return "space" if c.isspace() else "word" if c.isalnum() or c == "_" else "punct"

    words, scores, start = [], [], 0
    for i in range(1, len(text) + 1):
        if i == len(text) or kind(text[i]) != kind(text[start]):
            if kind(text[start]) != "space":
                words.append(text[start:i])
                scores.append(float(char_scores[start:i].sum()))
            start = i
    return words, scores  # a list of Python floats is read in float64


def to_words_numpy(text, char_scores):
    spans = [m.span() for m in re.finditer(r"\w+|[^\w\s]+", text)]
    values = char_scores.numpy()
    return tuple(text[s:e] for s, e in spans), np.array([values[s:e].sum() for s, e in spans])


@pytest.mark.parametrize("solution", [step_log_probs, step_log_probs_one_pass_per_step, step_log_probs_numpy_with_grad])
def test_step_log_probs_passes(solution, capsys):
    assert_passes_on_seeds(check_step_log_probs, solution, capsys)


@pytest.mark.parametrize("solution", [contrastive_step, contrastive_by_logits, contrastive_loop])
def test_contrastive_step_passes(solution, capsys):
    assert_passes_on_seeds(check_contrastive_step, solution, capsys)


@pytest.mark.parametrize("solution", [to_words, to_words_by_scanning, to_words_numpy])
def test_to_words_passes(solution, capsys):
    assert_passes_on_seeds(check_to_words, solution, capsys)


def test_pass_line_does_not_depend_on_the_seed(capsys):
    for checker, solution in ((check_step_log_probs, step_log_probs), (check_contrastive_step, contrastive_step),
                              (check_to_words, to_words)):
        checker(solution, seed=0)
        first = capsys.readouterr().out
        checker(solution, seed=5)
        assert capsys.readouterr().out == first


def stub(*args):
    raise NotImplementedError("Exercise: replace this line with your code")


@pytest.mark.parametrize("checker", [check_step_log_probs, check_contrastive_step, check_to_words])
def test_stub_fails(checker):
    assert_fails_naming(checker, stub, "not implemented yet")


@pytest.mark.parametrize("checker", [check_step_log_probs, check_contrastive_step, check_to_words])
def test_not_a_function(checker):
    with pytest.raises(CheckFailure, match="expected a function"):
        checker(42, seed=0)


# ------------------------------------------------------------------------------------- 1. wrong per-step answers
def _per_step(read="before", normalise="log_softmax", token="given", scope="continuation", mode="eval",
              dtype=None):
    def answer(model, prompt_ids, continuation_ids):
        P, T = prompt_ids.shape[1], continuation_ids.shape[1]
        ids = torch.cat([prompt_ids, continuation_ids], 1)
        if mode == "eval":
            model.eval()
        with torch.no_grad():
            logits = model(ids).logits
        if dtype is not None:
            logits = logits.to(dtype)
        table = {"log_softmax": logits.log_softmax(-1), "softmax": logits.softmax(-1), "none": logits,
                 "positions": logits.log_softmax(1)}[normalise]
        if scope == "prompt and continuation":
            return table[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
        if scope == "prompt only":
            return table[:, P - 1].gather(-1, continuation_ids)
        start = {"before": P - 1, "own": P}[read]
        length = T - 1 if scope == "without the last" else T
        rows = table[:, start:start + length]
        if token == "max":
            return rows.max(-1).values
        return rows.gather(-1, continuation_ids[:, :length, None])[..., 0]
    return answer


@pytest.mark.parametrize("wrong, message", [
    (_per_step(read="own"), r"own position \(off by one\)"),
    (_per_step(normalise="softmax"), "probabilities were returned"),
    (_per_step(normalise="none"), "raw logits were returned"),
    (_per_step(normalise="positions"), r"over the positions \(dim=1\)"),
    (_per_step(token="max"), "top token"),
    (_per_step(scope="prompt and continuation"), "prompt's positions were included"),
    (_per_step(scope="without the last"), "last continuation token was left out"),
    (_per_step(scope="prompt only"), "read from the prompt's last position"),
    (_per_step(mode="train"), "training mode"),
    (_per_step(dtype=torch.float32), "float32"),
])
def test_step_log_probs_names_the_mistake(wrong, message):
    assert_fails_naming(check_step_log_probs, wrong, message)


def cross_entropy_per_step(model, prompt_ids, continuation_ids):
    return -step_log_probs(model, prompt_ids, continuation_ids)


def greedy_fed_back(model, prompt_ids, continuation_ids):
    ids, out = prompt_ids, []
    with eval_mode(model), torch.no_grad():
        for t in range(continuation_ids.shape[1]):
            log_p = model(ids).logits[:, -1].log_softmax(-1)
            out.append(log_p.gather(1, continuation_ids[:, t:t + 1])[:, 0])
            ids = torch.cat([ids, log_p.argmax(-1, keepdim=True)], 1)
    return torch.stack(out, 1)


def through_the_course(model, prompt_ids, continuation_ids):
    with eval_mode(model):
        return generation_occlusion(model, prompt_ids, target=continuation_ids, absent="mask", mask_id=0).output


def model_made_float32(model, prompt_ids, continuation_ids):
    model.float()
    return step_log_probs(model, prompt_ids, continuation_ids).double()


def continuation_overwritten(model, prompt_ids, continuation_ids):
    out = step_log_probs(model, prompt_ids, continuation_ids)
    continuation_ids[:, 0] = 0
    return out


@pytest.mark.parametrize("wrong, message", [
    (cross_entropy_per_step, "sign is flipped"),
    (greedy_fed_back, r"own \(greedy\) tokens were fed back"),
    (through_the_course, "generation_occlusion.*course's own answer"),
    (model_made_float32, "converted to another dtype"),
    (continuation_overwritten, "changed its input `continuation_ids` in place"),
])
def test_step_log_probs_names_other_mistakes(wrong, message):
    assert_fails_naming(check_step_log_probs, wrong, message)


# ------------------------------------------------------------------------------------- 2. wrong contrastive steps
def _contrast(combine="log", position=0, b_position=0, a="given", mode="eval", origin="continuation"):
    def answer(model, prompt_ids, continuation_ids, step, alternative):
        P = prompt_ids.shape[1]
        if mode == "eval":
            model.eval()
        with torch.no_grad():
            log_p = model(torch.cat([prompt_ids, continuation_ids], 1)).logits.log_softmax(-1)
        here = (P + step - 1 if origin == "continuation" else step) + position
        rows = torch.arange(len(prompt_ids))
        log_a = log_p[:, here].max(-1).values if a == "top" else log_p[rows, here, continuation_ids[:, step]]
        log_b = log_p[rows, here + b_position, alternative]
        return {"log": log_a - log_b, "p": log_a.exp() - log_b.exp(), "ratio": (log_a - log_b).exp(),
                "reversed": log_b - log_a, "a only": log_a}[combine]
    return answer


@pytest.mark.parametrize("wrong, message", [
    (_contrast(combine="p"), r"probabilities were subtracted, p\(a\) − p\(b\)"),
    (_contrast(combine="reversed"), "sign is reversed"),
    (_contrast(combine="ratio"), r"ratio p\(a\) / p\(b\) was returned without the log"),
    (_contrast(combine="a only"), r"log p\(a\) alone"),
    (_contrast(position=1), r"own position \(off by one\)"),
    (_contrast(origin="prompt"), "counted from the start of the prompt"),
    (_contrast(b_position=1), "alternative b was read one position later"),
    (_contrast(a="top"), "model's top token was used instead of a"),
    (_contrast(mode="train"), "training mode"),
])
def test_contrastive_step_names_the_mistake(wrong, message):
    assert_fails_naming(check_contrastive_step, wrong, message)


def contrast_through_the_course(model, prompt_ids, continuation_ids, step, alternative):
    contrast = continuation_ids.clone()
    contrast[:, step] = alternative
    with eval_mode(model):
        return generation_occlusion(model, prompt_ids, target=continuation_ids, contrast=contrast, steps=[step],
                                    absent="mask", mask_id=0).output[:, 0]


def contrast_float32(model, prompt_ids, continuation_ids, step, alternative):
    return contrastive_step(model, prompt_ids, continuation_ids, step, alternative).float()


def contrast_table(model, prompt_ids, continuation_ids, step, alternative):
    with eval_mode(model), torch.no_grad():
        log_p = model(torch.cat([prompt_ids, continuation_ids[:, :step]], 1)).logits[:, -1].log_softmax(-1)
    return log_p[:, continuation_ids[:, step]] - log_p[:, alternative]  # (B, B)


@pytest.mark.parametrize("wrong, message", [
    (contrast_table, r"a \(B, B\) table"),
    (contrast_through_the_course, "generation_occlusion.*course's own answer"),
    (contrast_float32, "float32"),
])
def test_contrastive_step_names_other_mistakes(wrong, message):
    assert_fails_naming(check_contrastive_step, wrong, message)


# ------------------------------------------------------------------------------------------- 3. wrong words
def _words(pattern=r"\w+|[^\w\s]+", how="sum", shift=0):
    def answer(text, char_scores):
        words, scores = [], []
        for match in re.finditer(pattern, text):
            words.append(match.group())
            s, e = match.start() + shift, match.end() + shift
            part = char_scores[max(s, 0):e]
            scores.append(float({"sum": part.sum(), "mean": part.mean(), "max": part.max()}[how]))
        return words, scores
    return answer


def whitespace_score_to_next_word(text, char_scores):
    words, scores, pending = [], [], 0.0
    for match in re.finditer(r"\w+|[^\w\s]+|\s", text):
        if match.group().isspace():
            pending += float(char_scores[match.start()])
        else:
            words.append(match.group())
            scores.append(pending + float(char_scores[match.start():match.end()].sum()))
            pending = 0.0
    return words, scores


def words_found_by_find(text, char_scores):
    words = re.findall(r"\w+|[^\w\s]+", text)
    return words, [float(char_scores[text.find(w):text.find(w) + len(w)].sum()) for w in words]


def per_character_lists(text, char_scores):
    matches = list(re.finditer(r"\w+|[^\w\s]+", text))
    return [m.group() for m in matches], [char_scores[m.start():m.end()].tolist() for m in matches]


def float32_scores(text, char_scores):
    words, scores = _words()(text, char_scores)
    return words, torch.tensor(scores)  # Python floats without dtype=: float32


def words_through_the_course(text, char_scores):
    result = word_scores(char_scores, list(text))
    return result.words, result.scores


def pair_swapped(text, char_scores):
    words, scores = to_words(text, char_scores)
    return scores, words


def scores_scaled_in_place(text, char_scores):
    char_scores *= 1.0
    char_scores[0] = 0.0
    return to_words(text, char_scores)


@pytest.mark.parametrize("wrong, message", [
    (_words(how="mean"), "MEAN of its characters"),
    (_words(how="max"), "MAX of its characters"),
    (_words(pattern=r"\S+"), "split on whitespace only"),
    (_words(pattern=r"\w+"), "punctuation was dropped"),
    (_words(pattern=r"\w+|[^\w\s]"), "each punctuation character became its own word"),
    (_words(pattern=r"\s*(?:\w+|[^\w\s]+)"), "whitespace was attached to the next word"),
    (_words(pattern=r"(?:\w+|[^\w\s]+)\s*"), "whitespace was attached to the previous word"),
    (_words(pattern=r"[^\W_]+|[^\w\s]+"), "`_` split a word"),
    (_words(pattern=r"[A-Za-z0-9_]+|[^A-Za-z0-9_\s]+"), "non-ASCII letter"),
    (_words(shift=1), "shifted by one character"),
    (whitespace_score_to_next_word, "whitespace's scores were added to the next word"),
    (words_found_by_find, r"text.find\(word\), its FIRST occurrence"),
    (per_character_lists, "each word's character scores"),
    (float32_scores, "float32"),
    (words_through_the_course, "word_scores.*course's own answer"),
    (pair_swapped, "wrong way round"),
    (scores_scaled_in_place, "changed its input `char_scores` in place"),
])
def test_to_words_names_the_mistake(wrong, message):
    assert_fails_naming(check_to_words, wrong, message)
