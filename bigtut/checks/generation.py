"""Checkers for chapter 11 (explaining what GPT writes).

Each takes the student's function and ``seed=`` (``None``: fresh random inputs at every call; failure messages
quote the seed), compares it with :mod:`bigtut.explain.generation` or :mod:`bigtut.explain.generation_words` on
random cases, and names the usual mistakes (a failure names the input, what was expected, what came back and —
when the answer equals a known wrong variant — the mistake):

==========================  ======================================================================================
checker                     what it holds the candidate to (and the usual mistakes it names)
==========================  ======================================================================================
``check_step_log_probs``    ``log p(continuation[t] | prompt, continuation[:t])`` ``(B, T)`` of a tiny random GPT,
                            read at position ``P + t − 1`` (not at the token's own position or two before, not
                            probabilities, not raw logits, not the log-softmax over positions or the batch, not the
                            largest log-probability, not base 2 or 10, not negated, not summed over the steps, not
                            with the prompt's positions or without the last token, not every step read from the
                            prompt's last position, not the model's own tokens fed back); as
                            ``generation_occlusion(...).output``
``check_contrastive_step``  ``log p(a) − log p(b)`` ``(B,)`` at one step, ``a = continuation[:, step]``, ``b`` the
                            alternative (the raw logit difference is the same number and passes; not ``p(a) −
                            p(b)``, not ``p(a) / p(b)``, not the sign reversed, not the position off by one or
                            counted from the prompt's start, not ``b`` read at another position, not the model's
                            top token for ``a``, not ``log p(a)`` alone, not ``log p(a | {a, b})``, not a
                            ``(B, B)`` table, not every step)
``check_to_words``          character scores summed to words, a word being ``\\w+`` or a run of punctuation and
                            whitespace belonging to no word, as ``word_scores(..., rule="sum")`` (not split on
                            spaces only, not punctuation dropped or split per character, not whitespace attached
                            to a word, not ``_`` or non-ASCII letters splitting a word, not the mean or the max,
                            not the whitespace's score given to a neighbour, not the scores shifted by one or
                            read at a repeated word's first occurrence, not each word's character scores)
==========================  ======================================================================================

The GPT arrives in training mode with dropout, as ``fit`` leaves it: a pass in training mode is named (its dropout
makes the numbers random). The model is float64 and the answers must be too (float32 rounding is ~1e-7). Every
checker hands the candidate copies of its tensors and fails it if it changed them in place, and fails an answer
that calls the course's own implementation (``bigtut.explain``'s ``generation_*`` methods, ``word_scores``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from bigtut.checks.core import (
    CheckFailure,
    _as_float64,
    _describe,
    assert_close_or_hint,
    assert_unchanged,
    checker_generator,
    guarded,
    passed,
)
from bigtut.checks.forbidden import OWN_ANSWER, assert_does_not_use
from bigtut.checks.gpt import _random_gpt
from bigtut.gpt import GPT, GPTConfig
from bigtut.runtime import eval_mode

__all__ = ["check_contrastive_step", "check_step_log_probs", "check_to_words"]

_DROPOUT = 0.1  # the model arrives in training mode with this dropout: a pass in training mode is random
_VOCAB, _BLOCK = 13, 16
_GENERATION_METHODS = ("generation_occlusion", "generation_integrated_gradients", "generation_kernel_shap")


# ------------------------------------------------------------------------------------------- shared helpers
def _training_gpt(gen: torch.Generator, n_layer: int) -> GPT:
    """A tiny random float64 GPT (logits of standard deviation ~2, so that the usual mistakes give other numbers)
    with dropout, in training mode as ``fit`` leaves it."""
    weights = _random_gpt(gen, _VOCAB, _BLOCK, n_layer, 2, 8).state_dict()
    model = GPT(GPTConfig(vocab_size=_VOCAB, block_size=_BLOCK, n_layer=n_layer, n_head=2, d_model=8,
                          dropout=_DROPOUT, tie_weights=False)).double()
    model.load_state_dict(weights)
    return model.train()


def _ids(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randint(0, _VOCAB, shape, generator=gen)


def _log_p(model: GPT, ids: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The log-softmax ``(B, L, V)`` of the model's logits over ``dim`` (the vocabulary unless told), in eval mode."""
    with eval_mode(model), torch.no_grad():
        return model(ids).logits.log_softmax(dim)


def _logits(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    with eval_mode(model), torch.no_grad():
        return model(ids).logits  # (B, L, V)


def _read(table: torch.Tensor, positions: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``table[b, positions[t], tokens[b, t]]`` ``(B, T)`` (``positions`` a list of T ints); None when a position
    falls outside ``0 .. L−1`` (that mistake cannot be the answer)."""
    positions = list(positions)
    if any(not 0 <= p < table.shape[1] for p in positions):
        return None
    return table[:, positions].gather(-1, tokens[..., None])[..., 0]


def _spy_modes(model: nn.Module) -> tuple[list[bool], Callable[[], None]]:
    """Note, for every module call in the model, whether it ran in training mode; returns the notes and an undo."""
    modes: list[bool] = []
    handles = [m.register_forward_pre_hook(lambda module, args: modes.append(module.training))
               for m in model.modules()]
    return modes, lambda: [h.remove() for h in handles]


def _as_answer(got: Any) -> Any:
    """A list or tuple of numbers (``[x.item() for …]``) read as float64; a tensor without its graph; else as is."""
    if isinstance(got, torch.Tensor):
        return got.detach()
    if isinstance(got, (list, tuple)):
        value = _as_float64(got)
        return got if value is None else value
    return got


def _dtype_problem(name: str, got: Any, inputs: str) -> None:
    """Fail a float32 (or float16) answer: the model and the scores are float64, and the checker compares to 1e-9."""
    if isinstance(got, torch.Tensor):
        dtype, low = got.dtype, got.dtype in (torch.float32, torch.float16, torch.bfloat16) and got.numel() > 0
    elif isinstance(got, np.ndarray):
        dtype, low = got.dtype, got.dtype in (np.float32, np.float16) and got.size > 0
    else:
        return
    if low:
        raise CheckFailure(f"{name}: the answer is {dtype} for {inputs} — everything handed in is float64: keep it "
                           "(no .float(); torch.tensor of Python floats needs dtype=torch.float64)")


def _model_problems(name: str, model: GPT, weights: dict[str, torch.Tensor], modes: list[bool], inputs: str) -> None:
    """Fail an answer that changed the model's dtype or weights, or ran it in training mode."""
    state = model.state_dict()
    if any(value.dtype != weights[key].dtype for key, value in state.items()):
        raise CheckFailure(f"{name}: the model was converted to another dtype for {inputs} — the caller's float64 "
                           "model came back changed: leave it as it is (model.float() or model.to(...) act in place)")
    if any(not torch.equal(weights[key], value) for key, value in state.items()):
        raise CheckFailure(f"{name}: the model's weights changed for {inputs} — read the model, never train or edit it")
    if any(modes):
        raise CheckFailure(f"{name}: the model ran in training mode (dropout on, so every pass is random) for "
                           f"{inputs} — it arrives in training mode: run it inside `with bigtut.eval_mode(model):` "
                           "(or call model.eval() first)")


def _run_on_model(name: str, call: str, inputs: str, candidate: Callable, model: GPT,
                  tensors: dict[str, torch.Tensor], *extra: Any) -> Any:
    """Call ``candidate(model, *copies of tensors, *extra)``; check the model and the inputs came back unchanged and
    the model never ran in training mode; return the answer read as numbers."""
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    given = {label: t.clone() for label, t in tensors.items()}
    modes, undo = _spy_modes(model)
    try:
        got = guarded(name, f"{call} for {inputs}", candidate, model, *given.values(), *extra)
    finally:
        undo()
    assert_unchanged(name, inputs, {label: (tensors[label], given[label]) for label in tensors})
    _model_problems(name, model, weights, modes, inputs)
    got = _as_answer(got)
    _dtype_problem(name, got, inputs)
    return got


# --------------------------------------------------------------------------------------- 1. per-step log p
def _own_tokens_fed_back(model: GPT, prompt: torch.Tensor, continuation: torch.Tensor) -> torch.Tensor:
    """Not teacher-forced: the model's own greedy token appended after each step, the given token scored."""
    ids, out = prompt, []
    for t in range(continuation.shape[1]):
        log_p = _log_p(model, ids)[:, -1]  # (B, V)
        out.append(log_p.gather(-1, continuation[:, t:t + 1])[:, 0])
        ids = torch.cat([ids, log_p.argmax(-1, keepdim=True)], 1)
    return torch.stack(out, 1)  # (B, T)


def _step_variants(model: GPT, prompt: torch.Tensor, continuation: torch.Tensor,
                   expected: torch.Tensor) -> list[tuple[str, Any]]:
    """The ``(B, T)`` (or other-shaped) answers of the usual mistakes."""
    ids = torch.cat([prompt, continuation], 1)  # (B, L)
    P, T = prompt.shape[1], continuation.shape[1]
    log_p, z = _log_p(model, ids), _logits(model, ids)  # (B, L, V) x 2
    read = range(P - 1, P + T - 1)  # where step t is read
    whole = log_p[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]  # (B, L−1): every next token, the prompt's too
    return [
        ("the logits were read at the token's own position (off by one): the token continuation[t] is predicted "
         "by the logits at the position BEFORE it, P + t − 1 (logits[:, P−1:−1])",
         lambda: _read(log_p, [p + 1 for p in read], continuation)),
        ("the logits were read two positions before the token (off by one): the token continuation[t] is "
         "predicted at position P + t − 1", lambda: _read(log_p, [p - 1 for p in read], continuation)),
        ("probabilities were returned: take the LOG-probability, log_softmax (or log of the softmax)",
         lambda: _read(log_p.exp(), read, continuation)),
        ("the raw logits were returned: normalise them first, logits.log_softmax(-1), then read the token",
         lambda: _read(z, read, continuation)),
        ("the log-softmax ran over the positions (dim=1): normalise over the vocabulary, the last axis",
         lambda: _read(_log_p(model, ids, 1), read, continuation)),
        ("the log-softmax ran over the batch (dim=0): normalise over the vocabulary, the last axis",
         lambda: _read(_log_p(model, ids, 0), read, continuation)),
        ("the largest log-probability (the model's top token) was returned: read the GIVEN token "
         "continuation[:, t] with gather", lambda: log_p[:, list(read)].max(-1).values),
        ("the log is in base 2: use the natural log (log_softmax)", lambda: expected / math.log(2)),
        ("the log is in base 10: use the natural log (log_softmax)", lambda: expected / math.log(10)),
        ("the sign is flipped (that is the cross-entropy): a log-probability is <= 0", lambda: -expected),
        ("the steps were summed (the continuation's log-probability): return one number per step, (B, T)",
         lambda: expected.sum(1)),
        ("the result is transposed: return (B, T), one row per text", lambda: expected.T),
        ("the prompt's positions were included: return the continuation's T steps only, (B, T)", lambda: whole),
        ("the first prompt token was scored too: return the continuation's T steps only, (B, T)",
         lambda: log_p.gather(-1, ids[..., None])[..., 0]),
        ("the last continuation token was left out: the logits at positions P−1 … L−2 score all T tokens",
         lambda: expected[:, :-1]),
        ("the own-position read without the last token: the logits at positions P−1 … L−2 score all T tokens",
         lambda: _read(log_p, [p + 1 for p in read][:-1], continuation[:, :-1])),
        ("every step was read from the prompt's last position (the model saw the prompt only): feed prompt + "
         "continuation (teacher forcing) and read step t at position P + t − 1",
         lambda: log_p[:, P - 1].gather(-1, continuation)),
        ("the model's own (greedy) tokens were fed back instead of the continuation: teacher forcing feeds "
         "continuation_ids, whatever the model would have written",
         lambda: _own_tokens_fed_back(model, prompt, continuation)),
    ]


def check_step_log_probs(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, prompt_ids (B, P), continuation_ids (B, T)) -> (B, T)`` float64: ``log p(continuation[t] |
    prompt, continuation[:t])`` of a :class:`bigtut.GPT`, the logits at position ``P + t − 1`` of prompt +
    continuation — :func:`bigtut.explain.generation_occlusion`'s ``output``. The model runs in eval mode."""
    from bigtut.explain.generation import generation_occlusion

    gen, seed = checker_generator(seed)
    name = "step_log_probs"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}") for f in _GENERATION_METHODS})
    for n_layer, B, P, T in ((2, 3, 4, 5), (1, 2, 1, 3), (2, 2, 6, 1), (1, 1, 3, 7)):
        model = _training_gpt(gen, n_layer)
        prompt, continuation = _ids(gen, B, P), _ids(gen, B, T)
        inputs = (f"a random {n_layer}-layer GPT (V={_VOCAB}, float64, arriving in training mode with dropout "
                  f"{_DROPOUT}), B={B} prompts of P={P} tokens, continuations of T={T} tokens (seed={seed})")
        with eval_mode(model):
            expected = torch.as_tensor(generation_occlusion(model, prompt, target=continuation, absent="mask",
                                                            mask_id=0, prompt_only=True).output)  # (B, T)
        got = _run_on_model(name, f"{name}(model, prompt_ids, continuation_ids)", inputs, candidate, model,
                            {"prompt_ids": prompt, "continuation_ids": continuation})
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=1e-9, rtol=0.0,
                             variants=partial(_step_variants, model, prompt, continuation, expected))
    passed(name, "log p of every continuation token on random GPTs (one to seven steps, a one-token prompt), eval "
                 "mode, float64")


# ------------------------------------------------------------------------------------ 2. one contrastive step
def _contrast_variants(model: GPT, prompt: torch.Tensor, continuation: torch.Tensor, step: int,
                       alternative: torch.Tensor, expected: torch.Tensor) -> list[tuple[str, Any]]:
    """The ``(B,)`` (or ``(B, T)``) answers of the usual mistakes."""
    ids = torch.cat([prompt, continuation], 1)  # (B, L)
    P, T = prompt.shape[1], continuation.shape[1]
    log_p = _log_p(model, ids)  # (B, L, V)
    a, b = continuation[:, step:step + 1], alternative[:, None]  # (B, 1) x 2
    here = P + step - 1

    def lp(position: int, token: torch.Tensor, table: torch.Tensor = log_p) -> torch.Tensor | None:
        value = _read(table, [position], token)
        return None if value is None else value[:, 0]  # (B,)

    def minus(x, y):
        return None if x is None or y is None else x - y

    return [
        ("probabilities were subtracted, p(a) − p(b): the target is log p(a) − log p(b)",
         lambda: lp(here, a, log_p.exp()) - lp(here, b, log_p.exp())),
        ("the ratio p(a) / p(b) was returned without the log: the target is log p(a) − log p(b)",
         lambda: expected.exp()),
        ("the sign is reversed, log p(b) − log p(a): the written token a comes first", lambda: -expected),
        ("log p(a) alone was returned: subtract the alternative's log p(b)", lambda: lp(here, a)),
        ("log p(b) alone was returned: the target is log p(a) − log p(b)", lambda: lp(here, b)),
        ("the logits were read at the token's own position (off by one): step `step` is predicted at position "
         "P + step − 1", lambda: minus(lp(here + 1, a), lp(here + 1, b))),
        ("the logits were read two positions before the token (off by one): step `step` is predicted at "
         "position P + step − 1", lambda: minus(lp(here - 1, a), lp(here - 1, b))),
        ("the step was counted from the start of the prompt: step `step` of the continuation is predicted at "
         "position P + step − 1", lambda: minus(lp(step - 1, a), lp(step - 1, b))),
        ("the step was counted from the start of the prompt: step `step` of the continuation is predicted at "
         "position P + step − 1", lambda: minus(lp(step, a), lp(step, b))),
        ("the alternative b was read one position later than a: read both at position P + step − 1",
         lambda: minus(lp(here, a), lp(here + 1, b))),
        ("the alternative b was read one position earlier than a: read both at position P + step − 1",
         lambda: minus(lp(here, a), lp(here - 1, b))),
        ("the model's top token was used instead of a: a is the WRITTEN token, continuation_ids[:, step]",
         lambda: log_p[:, here].max(-1).values - lp(here, b)),
        ("a was normalised over the two tokens only, log p(a) − log(p(a) + p(b)): the target is "
         "log p(a) − log p(b)", lambda: -torch.nn.functional.softplus(-expected)),
        ("a (B, B) table: log_p[:, tokens] takes every row's token in every row; pick one token per row, "
         "log_p[rows, tokens] with rows = torch.arange(B) (or gather)",
         lambda: log_p[:, here][:, a[:, 0]] - log_p[:, here][:, b[:, 0]]),
        ("every step was returned: return step `step` only, (B,)",
         lambda: _read(log_p, range(P - 1, P + T - 1), continuation)
         - _read(log_p, range(P - 1, P + T - 1), alternative[:, None].expand(-1, T))),
    ]


def check_contrastive_step(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, prompt_ids (B, P), continuation_ids (B, T), step, alternative (B,)) -> (B,)`` float64:
    ``log p(a) − log p(b)`` at step ``step``, ``a = continuation_ids[:, step]``, ``b = alternative``, read at
    position ``P + step − 1`` — :func:`bigtut.explain.generation_occlusion`'s ``output`` with ``contrast=``. The
    logit difference ``logit_a − logit_b`` is the same number (the normaliser cancels) and passes."""
    from bigtut.explain.generation import generation_occlusion

    gen, seed = checker_generator(seed)
    name = "contrastive_step"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}") for f in _GENERATION_METHODS})
    for n_layer, B, P, T, step in ((2, 3, 4, 5, 2), (1, 3, 3, 4, 0), (2, 2, 1, 3, 2), (1, 2, 5, 6, 4)):
        model = _training_gpt(gen, n_layer)
        prompt, continuation = _ids(gen, B, P), _ids(gen, B, T)
        a = continuation[:, step]
        alternative = (a + torch.randint(1, _VOCAB, (B,), generator=gen)) % _VOCAB  # (B,), never a
        inputs = (f"a random {n_layer}-layer GPT (V={_VOCAB}, float64, arriving in training mode with dropout "
                  f"{_DROPOUT}), B={B} prompts of P={P} tokens, continuations of T={T} tokens, step={step} "
                  f"(seed={seed})")
        contrast = continuation.clone()
        contrast[:, step] = alternative
        with eval_mode(model):
            expected = torch.as_tensor(generation_occlusion(model, prompt, target=continuation, contrast=contrast,
                                                            steps=[step], absent="mask", mask_id=0,
                                                            prompt_only=True).output[:, 0])  # (B,)
        got = _run_on_model(name, f"{name}(model, prompt_ids, continuation_ids, {step}, alternative)", inputs,
                            candidate, model, {"prompt_ids": prompt, "continuation_ids": continuation}, step,
                            alternative.clone())
        if isinstance(got, torch.Tensor) and got.dim() == 0 and B > 1:
            raise CheckFailure(f"{name}: got one number ({got.item():.4g}) for {inputs}, expected one per row, shape "
                               f"({B},): do not sum or average over the batch")
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=1e-9, rtol=0.0,
                             variants=partial(_contrast_variants, model, prompt, continuation, step, alternative,
                                              expected))
    passed(name, "log p(a) − log p(b) at the first, a middle and the last step of random GPTs, eval mode, float64")


# ------------------------------------------------------------------------------------------ 3. words
_WORD = r"\w+|[^\w\s]+"
_PIECES = ("def", "len", "x_1", "self", "café", "42", "n", "print", "__init__", "return", "()", "(", ")", "==",
           "):", ",", ".", "[0]", "+=", "->", "#")
_SPACES = (" ", " ", "  ", "\n", "\n    ", "\t")


def _random_text(gen: torch.Generator, n: int) -> str:
    """``n`` random pieces (words and punctuation), glued directly or by whitespace, with whitespace at both ends
    half the time."""
    def pick(options):
        return options[int(torch.randint(len(options), (), generator=gen))]

    text = pick(_SPACES) if torch.rand((), generator=gen) < 0.5 else ""
    for i in range(n):
        text += pick(_PIECES)
        if i < n - 1 and torch.rand((), generator=gen) < 0.6:
            text += pick(_SPACES)
    return text + (pick(_SPACES) if torch.rand((), generator=gen) < 0.5 else "")


def _group(text: str, scores: torch.Tensor, pattern: str, how: str = "sum") -> tuple[list[str], torch.Tensor]:
    """Words matched by ``pattern`` and their scores (``how``: sum, mean or max of their characters)."""
    words, values = [], []
    for match in re.finditer(pattern, text):
        words.append(match.group())
        part = scores[match.start():match.end()]
        values.append({"sum": part.sum(), "mean": part.mean(), "max": part.max()}[how])
    return words, torch.stack(values) if values else torch.zeros(0, dtype=torch.float64)


def _whitespace_to(text: str, scores: torch.Tensor, side: str) -> torch.Tensor:
    """Sums in which each whitespace character's score goes to the next (or previous) word; none where none."""
    spans = [m.span() for m in re.finditer(_WORD, text)]
    out = torch.stack([scores[s:e].sum() for s, e in spans]) if spans else torch.zeros(0, dtype=torch.float64)
    for i, char in enumerate(text):
        if char.isspace():
            owners = ([w for w, (s, _) in enumerate(spans) if s > i][:1] if side == "next"
                      else [w for w, (_, e) in enumerate(spans) if e <= i][-1:])
            for w in owners:
                out[w] = out[w] + scores[i]
    return out


def _first_occurrences(text: str, scores: torch.Tensor) -> torch.Tensor | None:
    words = re.findall(_WORD, text)
    if not words:
        return None
    return torch.stack([scores[text.find(w):text.find(w) + len(w)].sum() for w in words])


def _shifted(text: str, scores: torch.Tensor, by: int) -> torch.Tensor | None:
    """Each word's sum read ``by`` characters off (the slice clipped to the text)."""
    spans = [m.span() for m in re.finditer(_WORD, text)]
    if not spans:
        return None
    return torch.stack([scores[max(s + by, 0):max(e + by, 0)].sum() for s, e in spans])


_WORD_MISTAKES = (  # (description, how to find the words) for wrong word lists
    ("the text was split on whitespace only (so `len(x)` is one word): a word is a run of letters, digits and _ "
     "(\\w+) OR a run of punctuation, so `len(x)` is `len`, `(`, `x`, `)`", r"\S+"),
    ("punctuation was dropped: a run of punctuation such as `()` or `==` is a word too", r"\w+"),
    ("each punctuation character became its own word: a RUN of punctuation such as `()` or `==` is one word",
     r"\w+|[^\w\s]"),
    ("whitespace was attached to the next word: whitespace belongs to no word (its score is dropped)",
     r"\s*(?:\w+|[^\w\s]+)"),
    ("whitespace was attached to the previous word: whitespace belongs to no word (its score is dropped)",
     r"(?:\w+|[^\w\s]+)\s*"),
    ("whitespace was joined to the punctuation runs (\\W+): whitespace belongs to no word", r"\w+|\W+"),
    ("`_` split a word: the underscore is a word character (\\w, or c.isalnum() or c == '_')", r"[^\W_]+|[^\w\s]+"),
    ("a non-ASCII letter (é) split a word: \\w (or str.isalnum()) counts every letter, not only a-z",
     r"[A-Za-z0-9_]+|[^A-Za-z0-9_\s]+"),
    ("each character became a word: group runs of word characters and runs of punctuation", r"\S"),
)


def _score_variants(text: str, scores: torch.Tensor) -> list[tuple[str, Any]]:
    return [
        ("each word got the MEAN of its characters' scores: the rule is the sum",
         lambda: _group(text, scores, _WORD, "mean")[1]),
        ("each word got the MAX of its characters' scores: the rule is the sum",
         lambda: _group(text, scores, _WORD, "max")[1]),
        ("the whitespace's scores were added to the next word: whitespace belongs to no word, its score is dropped",
         lambda: _whitespace_to(text, scores, "next")),
        ("the whitespace's scores were added to the previous word: whitespace belongs to no word, its score is "
         "dropped", lambda: _whitespace_to(text, scores, "previous")),
        ("each word was looked up with text.find(word), its FIRST occurrence: a repeated word (r_1) sits at "
         "another place each time; walk through the text (re.finditer gives each match's start and end)",
         lambda: _first_occurrences(text, scores)),
        ("the scores are shifted by one character (read one too far right): word text[s:e] sums char_scores[s:e]",
         lambda: _shifted(text, scores, 1)),
        ("the scores are shifted by one character (read one too far left): word text[s:e] sums char_scores[s:e]",
         lambda: _shifted(text, scores, -1)),
    ]


def _word_list_problem(name: str, words: Any, expected: list[str], text: str, inputs: str) -> None:
    if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
        raise CheckFailure(f"{name}: the words must be a list of strings, got {_describe(words)} for {inputs}")
    if list(words) == expected:
        return
    hint = next((f"\n  Hint: {label}." for label, pattern in _WORD_MISTAKES
                 if list(words) == re.findall(pattern, text)), "")
    raise CheckFailure(f"{name}: wrong words for {inputs}.\n  expected {expected!r}\n  got      {list(words)!r}{hint}")


def check_to_words(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(text, char_scores (len(text),)) -> (words list[str], scores (W,))``: a character-level
    tokenizer's scores summed to words — a word is a run of word characters (``\\w+``) or a run of punctuation;
    whitespace belongs to no word and its score is dropped — as
    :func:`bigtut.explain.word_scores` with ``rule="sum"``."""
    from bigtut.explain.generation_words import word_scores

    gen, seed = checker_generator(seed)
    name = "to_words"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    assert_does_not_use(name, candidate, {"word_scores": OWN_ANSWER.format("bigtut.explain's word_scores")})
    texts = ["def area(r_1):\n    return 3.14 * r_1 ** 2  # café", *(_random_text(gen, n) for n in (6, 9, 12)),
             "x", " \n "]
    for text in texts:
        scores = torch.randn(len(text), generator=gen, dtype=torch.float64)  # (len(text),)
        inputs = f"text={text!r} and random character scores (seed={seed})"
        reference = word_scores(scores, list(text), rule="sum")
        expected_words, expected = reference.words, torch.as_tensor(reference.scores)  # W, (W,)
        given = scores.clone()
        got = guarded(name, f"{name}(text, char_scores) for {inputs}", candidate, text, given)
        assert_unchanged(name, inputs, {"char_scores": (scores, given)})
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailure(f"{name}: expected a pair (words, scores) for {inputs}, got {_describe(got)}")
        words, values = got
        if (isinstance(words, (torch.Tensor, np.ndarray)) and isinstance(values, (list, tuple))
                and all(isinstance(w, str) for w in values)):
            raise CheckFailure(f"{name}: the pair is the wrong way round for {inputs}: return (words, scores)")
        _word_list_problem(name, words, expected_words, text, inputs)
        if isinstance(values, (list, tuple)) and any(
                isinstance(v, (list, tuple)) or (isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim > 0)
                for v in values):
            raise CheckFailure(f"{name}: the scores hold each word's character scores for {inputs} — return ONE "
                               "number per word, the sum of its characters' scores, shape (W,)")
        values = _as_answer(values)
        _dtype_problem(name, values, inputs)
        assert_close_or_hint(values, expected, what=f"{name} scores", inputs=inputs, atol=1e-9, rtol=0.0,
                             variants=partial(_score_variants, text, scores))
    passed(name, "words and summed scores of code-like texts (punctuation runs, _, é, newlines, blank text)")
