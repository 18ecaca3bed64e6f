"""Checkers for notebook 03 (the Transformer).

================================  ===========================================================================
checker                           what the candidate must do
================================  ===========================================================================
``check_encoder_layer``           ``fn(layer, x (B, S, D), mask)`` -> ``(B, S, D)``: one encoder layer written
                                  from the parts of a bigtut :class:`EncoderLayer` (post-LN or pre-LN, as
                                  ``layer.norm_first`` says)
``check_decoder_layer``           ``fn(layer, y (B, T, D), memory (B, S, D), self_mask, memory_mask)`` ->
                                  ``(B, T, D)``: one decoder layer from the parts of a :class:`DecoderLayer`
``check_beam_step``               ``fn(scores (B, K), log_probs (B, K, V), beam_size)`` ->
                                  ``(new_scores, parent, token)``, each ``(B, beam_size)``, best first
``check_label_smoothing_loss``    ``fn(logits (N, V), targets (N,), epsilon, ignore_index)`` -> scalar loss,
                                  written by hand (``label_smoothing=`` of PyTorch's loss is refused)
================================  ===========================================================================

References: :class:`bigtut.transformer.EncoderLayer` and :class:`~bigtut.transformer.DecoderLayer`,
:func:`bigtut.transformer.beam_step` and
``torch.nn.functional.cross_entropy(..., label_smoothing=epsilon, ignore_index=...)``. Inputs come from a
private generator; pass ``seed=`` to replay a case (the seed is named in every failure). Every checker also
fails a candidate that modifies its input tensors in place.

The layer checkers run every random layer three ways: in eval mode with dropout rates above 0 on the layer's
dropout modules (dropout must be off: the output is deterministic and equals the reference); backward (the
gradients w.r.t. the inputs and every parameter must match: nothing detached); and in training mode after a
fixed ``torch.manual_seed`` (same weights, same seed: the dropout masks match the reference's only if the same
dropout modules are applied to the same tensors in the same order). The rates differ between modules, so a
swapped module shows. The optional dropout after the feed-forward's activation (``layer.dropout``, which the
reference applies) may be left out. Dropout on the attention weights, inside ``self_attn``/``cross_attn``,
stays 0: it is not part of the exercise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial, wraps
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from bigtut.attention import causal_mask, padding_mask
from bigtut.checks.core import CheckFailure, _describe, assert_close, assert_unchanged, checker_generator, passed
from bigtut.transformer import DecoderLayer, EncoderLayer, beam_step

__all__ = ["check_beam_step", "check_decoder_layer", "check_encoder_layer", "check_label_smoothing_loss"]


class _CalledWhole(Exception):
    """A layer exercise called the bigtut layer itself (or its ready-made feed-forward) instead of its parts."""


class _UsedLibrary(Exception):
    """A hand-written-loss exercise handed the work to PyTorch's built-in label smoothing."""


def _run(name: str, inputs: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call the candidate; a stub or any error becomes a :class:`CheckFailure` naming the input."""
    try:
        return fn(*args)
    except (_CalledWhole, _UsedLibrary) as err:
        raise CheckFailure(f"{err} (for {inputs})") from None
    except NotImplementedError:
        raise CheckFailure(f"{name}: not implemented yet — replace the `raise NotImplementedError` stub") from None
    except Exception as err:
        raise CheckFailure(f"{name}: raised {type(err).__name__}: {err} for {inputs}") from err


def _single_threaded(checker: Callable[..., None]) -> Callable[..., None]:
    """Run a checker with one intra-op thread (restored afterwards): its tensors are tiny, and on a busy machine
    a thread pool waiting for its workers makes each small op take milliseconds instead of microseconds."""
    @wraps(checker)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return checker(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return wrapper


def _seeded(seed: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` after ``torch.manual_seed(seed)``, leaving the caller's global generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn(*args)


# --------------------------------------------------------------------------------------------------- beam step
@_single_threaded
def check_beam_step(candidate: Callable[..., Any], seed: int | None = None) -> None:
    """One beam-search step: the ``beam_size`` best (beam, token) extensions by total score, best first."""
    name = "beam_step"
    gen, seed = checker_generator(seed)
    cases = []
    for B, K, V, beam_size in [(1, 3, 5, 3), (2, 4, 7, 4), (3, 2, 6, 2), (1, 1, 4, 1), (2, 3, 5, 5)]:
        scores = -torch.rand(B, K, generator=gen, dtype=torch.float64).mul(4).sort(-1).values.flip(-1)
        log_probs = torch.randn(B, K, V, generator=gen, dtype=torch.float64).log_softmax(-1)
        cases.append((f"random step B={B}, K={K}, V={V}, beam_size={beam_size}", scores, log_probs, beam_size))
    first = torch.full((2, 3), float("-inf"), dtype=torch.float64)
    first[:, 0] = 0.0  # the first step: one live beam, the others are placeholders scored -inf
    cases.append(("first step (scores [0, -inf, -inf])", first,
                  torch.randn(2, 3, 6, generator=gen, dtype=torch.float64).log_softmax(-1), 3))
    one_strong = torch.tensor([[-0.1, -5.0, -6.0]], dtype=torch.float64)  # every survivor comes from beam 0
    cases.append(("one beam far ahead", one_strong,
                  torch.randn(1, 3, 8, generator=gen, dtype=torch.float64).log_softmax(-1), 3))
    for description, scores, log_probs, beam_size in cases:
        B, K, V = log_probs.shape
        inputs = f"{description} (seed={seed})"
        handed = {"scores": scores.clone(), "log_probs": log_probs.clone()}
        got = _run(name, inputs, candidate, handed["scores"], handed["log_probs"], beam_size)
        assert_unchanged(name, inputs, {"scores": (scores, handed["scores"]),
                                        "log_probs": (log_probs, handed["log_probs"])})
        expected = beam_step(scores, log_probs, beam_size)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise CheckFailure(f"{name}: expected a tuple (new_scores, parent, token) for {inputs}, got "
                               f"{_describe(got)}")
        for what, g in zip(("new_scores", "parent", "token"), got):
            if not isinstance(g, torch.Tensor):
                raise CheckFailure(f"{name}: {what} should be a tensor for {inputs}, got {_describe(g)}")
            if tuple(g.shape) != (B, beam_size):
                raise CheckFailure(f"{name}: {what} should have shape (B, beam_size) = {(B, beam_size)} for "
                                   f"{inputs}, got {tuple(g.shape)} (K={K} beams come in, beam_size={beam_size} "
                                   "go out, for every batch row)")
        new_scores, parent, token = got
        for what, g in (("parent", parent), ("token", token)):
            if g.is_floating_point() or g.is_complex() or g.dtype == torch.bool:
                raise CheckFailure(f"{name}: {what} must be an integer tensor (it is used as an index) for "
                                   f"{inputs}, got dtype {g.dtype}: use // (floor division), not /")
        if torch.equal(parent.long(), expected[2]) and torch.equal(token.long(), expected[1]) \
                and not torch.equal(expected[1], expected[2]):
            raise CheckFailure(f"{name}: parent and token swapped for {inputs}: return (new_scores, parent, token)")
        for what, g, top in (("parent", parent, K), ("token", token, V)):
            if bool((g < 0).any()) or bool((g >= top).any()):
                raise CheckFailure(f"{name}: {what} must lie in 0..{top - 1} for {inputs}, got {g.tolist()} "
                                   "(flat index = parent * V + token: parent = flat // V, token = flat % V)")
        parent, token = parent.long(), token.long()
        rows = torch.arange(B)[:, None]
        implied = scores.gather(1, parent) + log_probs[rows, parent, token]  # (B, beam_size)
        if not torch.allclose(new_scores.detach().double(), implied, atol=1e-9, rtol=1e-9):
            raise CheckFailure(f"{name}: new_scores is not scores[b, parent] + log_probs[b, parent, token] of the "
                               f"returned (parent, token) for {inputs}: got new_scores {new_scores.tolist()}, "
                               f"parent {parent.tolist()}, token {token.tolist()}, which imply {implied.tolist()}. "
                               "Is the flat index decoded right (flat = parent * V + token: parent = flat // V, "
                               "token = flat % V), and are the scores sums of log-probabilities?")
        ranked = new_scores.detach().double().sort(-1, descending=True).values
        if not torch.allclose(ranked, expected[0], atol=1e-9, rtol=1e-9):
            raise CheckFailure(f"{name}: not the {beam_size} best extensions for {inputs}: expected new_scores "
                               f"{expected[0].tolist()}, got {new_scores.tolist()}. Rank all K·V (beam, token) "
                               "pairs of a batch row together by scores[b, k] + log_probs[b, k, v] (flatten the "
                               "last two axes, then topk); not the best token per beam, not the log-prob alone")
        if not torch.allclose(new_scores.detach().double(), expected[0], atol=1e-9, rtol=1e-9):
            raise CheckFailure(f"{name}: not best first for {inputs}: expected new_scores {expected[0].tolist()}, "
                               f"got {new_scores.tolist()} (sort in decreasing order of score)")
        for what, g, e in zip(("new_scores", "parent", "token"), (new_scores, parent, token), expected):
            assert_close(g, e, what=f"{name} ({what})", inputs=inputs, atol=1e-9, rtol=1e-9)
    passed(name, f"matches the reference on {len(cases)} steps, the first step included")


# ------------------------------------------------------------------------------------------ label smoothing
class _KernelWatch(TorchFunctionMode):
    """Sees a direct call of the cross-entropy kernel that bypasses ``torch._C._nn`` (``torch.ops.aten.
    cross_entropy_loss``, or the kernel bound to a name before the checker ran)."""

    def __init__(self, refuse: Callable[..., None]):
        super().__init__()
        self.refuse = refuse

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (PyTorch's protocol)
        kwargs = kwargs or {}
        if str(getattr(func, "__name__", "")).split(".")[0] == "cross_entropy_loss":
            self.refuse(*args, **kwargs)
        return func(*args, **kwargs)


@contextmanager
def _no_builtin_label_smoothing(name: str) -> Iterator[None]:
    """Make PyTorch's cross-entropy kernel refuse ``label_smoothing > 0`` while the candidate runs.

    The kernel behind ``F.cross_entropy`` and ``nn.CrossEntropyLoss`` is looked up on ``torch._C._nn`` at every
    call, so the refusal holds however the candidate imported the loss; a torch-function mode sees the kernel
    called by another name (``torch.ops.aten.cross_entropy_loss``). Plain cross-entropy (``label_smoothing=0``,
    or soft targets the candidate built itself) still works.
    """
    kernel = torch._C._nn.cross_entropy_loss

    def refuse(*args: Any, **kwargs: Any) -> None:
        smoothing = kwargs.get("label_smoothing", args[5] if len(args) > 5 else 0.0)
        if smoothing:
            raise _UsedLibrary(f"{name}: write the smoothing yourself: cross_entropy(..., label_smoothing="
                               f"{smoothing}) / nn.CrossEntropyLoss(label_smoothing=…) hands the exercise back "
                               "to PyTorch")

    def guarded_kernel(*args: Any, **kwargs: Any) -> Any:
        refuse(*args, **kwargs)
        return kernel(*args, **kwargs)

    torch._C._nn.cross_entropy_loss = guarded_kernel
    try:
        with _KernelWatch(refuse):
            yield
    finally:
        torch._C._nn.cross_entropy_loss = kernel


def _smoothing_variant(logits: torch.Tensor, targets: torch.Tensor, epsilon: float, ignore_index: int, *,
                       spread: str = "all", divide: str = "kept", keep_pad: bool = False,
                       one_minus: bool = True, smooth_sum: bool = False, sign: float = 1.0,
                       target_share: bool = True, kl: bool = False, class_mean: bool = False) -> torch.Tensor:
    """Label-smoothed cross-entropy with switches that reproduce the usual mistakes (defaults: right)."""
    logp = logits.log_softmax(-1)  # (N, V)
    V = logits.shape[-1]
    keep = (targets != ignore_index) | keep_pad  # (N,)
    nll = -logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]  # (N,); ignored rows are masked below
    if spread == "all":
        smooth = -logp.sum(-1) if smooth_sum else -logp.mean(-1)  # ε/V on every class
    else:
        smooth = (-logp.sum(-1) - nll) / (V - 1)  # ε/(V-1) on the wrong classes only
    per_row = ((1 - epsilon) if one_minus else 1.0) * nll + epsilon * smooth  # (N,)
    if not target_share:  # q_target = 1-ε, not 1-ε+ε/V
        per_row = per_row - epsilon / V * nll
    if kl:  # KL(q || p) = cross-entropy - entropy of q
        q = torch.full_like(logp, epsilon / V).scatter(1, targets.clamp(min=0)[:, None], 1 - epsilon + epsilon / V)
        per_row = per_row + torch.special.xlogy(q, q).sum(-1)
    if class_mean:
        per_row = per_row / V
    total = (per_row * keep).sum()
    count = {"kept": keep.sum(), "all": torch.tensor(float(len(targets))), "sum": torch.tensor(1.0)}[divide]
    return sign * total / count


_SMOOTHING_MISTAKES = [
    ("the padding rows counted: targets == ignore_index must not contribute", {"keep_pad": True}),
    ("the mean taken over all N rows: divide by the number of targets that are not ignore_index",
     {"divide": "all"}),
    ("a sum over the rows instead of a mean over the kept ones", {"divide": "sum"}),
    ("ε spread over the V-1 wrong classes; the convention here (and PyTorch's) puts ε/V on every class, the "
     "target included: (1-ε)·(-log p_target) + ε·mean_v(-log p_v)", {"spread": "others"}),
    ("ε ignored: that is plain cross-entropy", {"epsilon_zero": True}),
    ("no (1-ε) on the target term", {"one_minus": False}),
    ("ε times the sum of -log p over the classes; it is ε times their mean (ε/V each)", {"smooth_sum": True}),
    ("the sign flipped: a loss is -log p, and it is positive", {"sign": -1.0}),
    ("the target given 1-ε instead of 1-ε+ε/V: ε/V goes to every class, the target included, so that q sums to "
     "1", {"target_share": False}),
    ("KL(q ‖ p) instead of the cross-entropy: the two differ by the entropy of q, a constant that moves the "
     "loss but not its gradient; the exercise asks for -Σ_v q_v log p_v", {"kl": True}),
    ("the mean taken over the classes too: sum -q_v log p_v over v, then average over the rows",
     {"class_mean": True}),
]


@_single_threaded
def check_label_smoothing_loss(candidate: Callable[..., Any], seed: int | None = None, *,
                               allow_library: bool = False) -> None:
    """``candidate(logits (N, V), targets (N,), epsilon, ignore_index)`` -> the label-smoothed cross-entropy
    ``(1-ε)·(-log p_target) + ε·mean_v(-log p_v)``, averaged over the targets that are not ``ignore_index``
    (what ``F.cross_entropy(..., label_smoothing=ε, ignore_index=...)`` computes). The loss must be a 0-dim tensor
    of the logits' dtype with the reference's gradient w.r.t. the logits, stay finite for large logits, handle
    PyTorch's default ``ignore_index=-100``, and leave its inputs alone. ``label_smoothing=`` of PyTorch's own
    loss is refused unless ``allow_library=True``."""
    name = "label_smoothing_loss"
    gen, seed = checker_generator(seed)
    guard = nullcontext if allow_library else partial(_no_builtin_label_smoothing, name)
    count = 0
    for N, V, epsilon, n_ignored, scale, negative_ignore in [
            (6, 5, 0.1, 0, 3.0, False), (8, 7, 0.2, 3, 3.0, False), (5, 4, 0.0, 1, 3.0, False),
            (7, 9, 0.5, 2, 3.0, False), (1, 3, 0.1, 0, 3.0, False), (6, 6, 0.1, 2, 3.0, True),
            (5, 4, 0.3, 1, 400.0, False)]:
        logits = torch.randn(N, V, generator=gen, dtype=torch.float64) * scale
        ignore_index = -100 if negative_ignore else int(torch.randint(0, V, (1,), generator=gen))
        targets = torch.randint(0, V, (N,), generator=gen)
        if not negative_ignore:
            targets[targets == ignore_index] = (ignore_index + 1) % V
        targets[torch.randperm(N, generator=gen)[:n_ignored]] = ignore_index  # some padding positions
        inputs = (f"logits {tuple(logits.shape)}{' with entries up to about ±1000' if scale > 100 else ''}, "
                  f"targets={targets.tolist()}, epsilon={epsilon}, ignore_index={ignore_index}"
                  f"{' (PyTorch default)' if negative_ignore else ''} (seed={seed})")
        leaf = logits.clone().requires_grad_()
        expected = F.cross_entropy(leaf, targets, ignore_index=ignore_index, label_smoothing=epsilon)
        (expected_grad,) = torch.autograd.grad(expected, leaf)
        expected = expected.detach()
        # 1) the value, on plain tensors
        handed = {"logits": logits.clone(), "targets": targets.clone()}
        with guard():
            got = _run(name, inputs, candidate, handed["logits"], handed["targets"], epsilon, ignore_index)
        assert_unchanged(name, inputs, {"logits": (logits, handed["logits"]), "targets": (targets, handed["targets"])})
        if not isinstance(got, torch.Tensor):
            raise CheckFailure(f"{name}: expected a 0-dim tensor (a loss to call .backward() on) for {inputs}, got "
                               f"{_describe(got)} (no .item(), no NumPy)")
        if got.dtype != logits.dtype:
            raise CheckFailure(f"{name}: the loss has dtype {got.dtype} for {logits.dtype} logits for {inputs}: "
                               "keep the logits' dtype")
        if got.dim() == 0 and not bool(torch.isfinite(got)):
            raise CheckFailure(f"{name}: the loss is {got.item()} for {inputs}, expected {expected.item():.6g}: "
                               "compute log-probabilities with log_softmax (the log-sum-exp trick), not "
                               "log(softmax(...)) or exp(), which underflow or overflow for large logits")
        if got.dim() == 0 and not torch.allclose(got.detach(), expected, atol=1e-9, rtol=1e-7):
            for description, switches in _SMOOTHING_MISTAKES:
                switches = dict(switches)
                eps = 0.0 if switches.pop("epsilon_zero", False) else epsilon
                wrong = _smoothing_variant(logits, targets, eps, ignore_index, **switches)
                if not torch.allclose(wrong, expected, atol=1e-9, rtol=1e-7) and torch.allclose(
                        got.detach(), wrong, atol=1e-9, rtol=1e-7):
                    raise CheckFailure(f"{name}: wrong loss for {inputs}: expected {expected.item():.8g}, got "
                                       f"{got.item():.8g}, which is the loss with {description}")
        assert_close(got, expected, what=name, inputs=inputs, atol=1e-9, rtol=1e-7)
        # 2) the gradient, with logits that come out of a graph (as a model's do)
        source = logits.clone().requires_grad_()
        with torch.enable_grad(), guard():
            got = _run(name, inputs, candidate, source * 1.0, targets.clone(), epsilon, ignore_index)
            if not isinstance(got, torch.Tensor) or not got.requires_grad:
                raise CheckFailure(f"{name}: the loss carries no gradient for {inputs}: it was cut from the "
                                   "autograd graph (.detach(), .data, .item(), torch.no_grad() or a NumPy round trip)")
            (got_grad,) = _run(name, f"the backward pass for {inputs}", torch.autograd.grad, got.sum(), source)
        assert_close(got_grad, expected_grad, what=f"{name}: the gradient w.r.t. the logits", inputs=inputs,
                     atol=1e-9, rtol=1e-7)
        count += 1
    passed(name, f"matches F.cross_entropy(label_smoothing=ε) on {count} cases")


# ------------------------------------------------------------------------------------ encoder and decoder layers
_TOL = {"atol": 1e-8, "rtol": 1e-6}
_RATES = {"dropout1": 0.3, "dropout2": 0.45, "dropout3": 0.35, "dropout": 0.2}  # distinct, so a swap shows
_INVERTED = "the mask inverted: bigtut's masks say True = may attend (PyTorch's nn.Transformer: True = blocked)"
_HARD_RELU = "relu hard-coded, but this layer's activation is gelu: use layer.activation"
_SUBLAYERS = {False: ("self-attention", "feed-forward"), True: ("self-attention", "cross-attention", "feed-forward")}


def _random_layer(cls: type[EncoderLayer], gen: torch.Generator, norm_first: bool, activation: str, d_model: int,
                  num_heads: int, d_ff: int) -> EncoderLayer:
    """A float64 eval-mode layer with every parameter drawn from ``gen`` — LayerNorms too (a fresh LayerNorm is
    the identity), so that ``norm1``, ``norm2``, ``norm3`` differ and a swap shows — and the dropout rates of
    ``_RATES`` on its dropout modules (the attention-weight dropout inside the attentions stays 0)."""
    with torch.random.fork_rng(devices=[]):  # building a module draws from the global generator: restore it
        layer = cls(d_model, num_heads, d_ff, dropout=0.0, activation=activation, norm_first=norm_first)
    layer = layer.double().eval()
    with torch.no_grad():
        for pname, p in layer.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if pname.startswith("norm"):
                p.copy_((1.0 if pname.endswith("weight") else 0.0) + 0.5 * noise)
            else:  # Linear weights (out, in) and biases, scaled so that activations stay O(1)
                p.copy_(noise / (p.shape[-1] if p.dim() == 2 else d_model) ** 0.5)
    for module, rate in _RATES.items():
        if hasattr(layer, module):
            getattr(layer, module).p = rate
    return layer


def _rates_text(decoder: bool) -> str:
    mods = ("dropout1", "dropout2", "dropout3")[:3 if decoder else 2]
    return ", ".join(f"layer.{m}.p={_RATES[m]}" for m in mods) + \
        f", layer.dropout.p={_RATES['dropout']} (optional, after the feed-forward's activation)"


def _parts_only(layer: EncoderLayer, name: str) -> None:
    """Make ``layer(...)`` and ``layer.feed_forward(...)`` raise: the exercise is to wire the parts."""
    def called_whole(*args: Any, **kwargs: Any) -> Any:
        raise _CalledWhole(f"{name}: build the layer from its parts (layer.self_attn, layer.linear1, "
                           "layer.activation, layer.norm1, …); calling layer(...) or layer.feed_forward(...) "
                           "hands the exercise back to bigtut")
    layer.forward = layer.feed_forward = called_whole


def _identity(h: torch.Tensor) -> torch.Tensor:
    return h


def _wired(x: torch.Tensor, sublayers: list, norm_first: bool, residual: tuple[bool, ...]) -> torch.Tensor:
    """Apply ``(sublayer, norm, drop, where)`` with residuals, post-LN or pre-LN. ``where`` puts the dropout on
    the sublayer's ``"output"`` (right), its ``"input"``, the residual ``"sum"`` or ``"after_norm"``."""
    for (sublayer, norm, drop, where), keep in zip(sublayers, residual):
        r = 1.0 if keep else 0.0
        if norm_first:
            h = norm(x)
            out = sublayer(drop(h)) if where in ("input", "after_norm") else sublayer(h)
            x = drop(r * x + out) if where == "sum" else r * x + (drop(out) if where == "output" else out)
        else:
            out = sublayer(drop(x)) if where == "input" else sublayer(x)
            total = r * x + (drop(out) if where == "output" else out)
            x = norm(drop(total) if where == "sum" else total)
            x = drop(x) if where == "after_norm" else x
    return x


def _layer_variant(layer: EncoderLayer, x: torch.Tensor, memory: torch.Tensor | None, mask: torch.Tensor | None,
                   memory_mask: torch.Tensor | None, *, norm_first: bool, residual: tuple[bool, ...] = (1, 1, 1),
                   activation: bool | Callable = True, use_mask: bool | str = True,
                   use_memory_mask: bool | str = True,
                   cross: str = "memory", norms: tuple[str, ...] = ("norm1", "norm2", "norm3"),
                   cross_first: bool = False, drops: tuple[str | None, ...] | None = None,
                   where: tuple[str, ...] = ("output",) * 3, inner: str | None = "dropout", inner_before: bool = False,
                   eval_scaled: bool = False) -> torch.Tensor:
    """An encoder layer (``memory=None``) or decoder layer, with switches that reproduce the usual mistakes; the
    defaults compute it right (in eval mode and, under the same seed, in training mode). ``cross``: ``"memory"``
    (right), ``"decoder"`` (cross-attention over the decoder's own states) or ``"swapped"`` (queries from the
    memory, keys/values from the decoder). ``activation``: True (the layer's), False (none) or a function;
    ``use_mask``/``use_memory_mask``: True, False (ignored) or ``"inverted"``. ``drops``: the dropout module of
    each sublayer (None: no dropout); ``where``: where each sublayer's dropout goes (see :func:`_wired`);
    ``inner``: the dropout after the activation (before it with ``inner_before``); ``eval_scaled``: old-style
    dropout that scales by ``1 - p`` in eval mode."""
    act = layer.activation if activation is True else _identity if activation is False else activation

    def masked(m: torch.Tensor | None, use: bool | str) -> torch.Tensor | None:
        return None if m is None or use is False else ~m if use == "inverted" else m

    def dropper(module_name: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
        if module_name is None:
            return _identity
        module = getattr(layer, module_name)
        if eval_scaled and not layer.training:
            return lambda h: h * (1 - module.p)
        return module

    inner_drop = dropper(inner)

    def self_attend(h):  # (B, L, D)
        return layer.self_attn(h, h, h, masked(mask, use_mask), return_attention=False)[0]

    def cross_attend(h):  # (B, T, D)
        q, kv = {"memory": (h, memory), "decoder": (h, h), "swapped": (memory, h)}[cross]
        return layer.cross_attn(q, kv, kv, masked(memory_mask, use_memory_mask), return_attention=False)[0]

    def ffn(h):  # (B, L, D) -> (B, L, d_ff) -> (B, L, D)
        h = layer.linear1(h)
        h = act(inner_drop(h)) if inner_before else inner_drop(act(h))
        return layer.linear2(h)

    parts = [self_attend, ffn] if memory is None else [self_attend, cross_attend, ffn]
    drops = ("dropout1", "dropout2", "dropout3")[:len(parts)] if drops is None else drops
    subs = [(f, dropper(d), w) for f, d, w in zip(parts, drops, where)]
    if cross_first:
        subs[0], subs[1] = subs[1], subs[0]
    return _wired(x, [(f, getattr(layer, n), d, w) for (f, d, w), n in zip(subs, norms)], norm_first, residual)


def _dropout_variants(variant: Callable[..., torch.Tensor], norm_first: bool, decoder: bool,
                      v: str) -> list[tuple[str, Callable[[], torch.Tensor]]]:
    """Training-mode mistakes with dropout: missing, misplaced, the wrong module — each tried with and without
    the optional dropout after the activation."""
    parts = _SUBLAYERS[decoder]
    mods = ("dropout1", "dropout2", "dropout3")[:len(parts)]
    n = len(parts)
    right = ("output",) * n

    def at(base: tuple, i: int, value: Any) -> tuple:
        return tuple(value if j == i else b for j, b in enumerate(base))

    own = ", ".join(f"layer.{m} on the {p}" for m, p in zip(mods, parts))
    mistakes: list[tuple[str, dict]] = [
        (f"no dropout at all, though layer.training is True ({own}, each on the sublayer's output before the "
         "residual add)", {"drops": (None,) * n})]
    for i, (part, mod) in enumerate(zip(parts, mods)):
        mistakes.append((f"no dropout on the {part}'s output (layer.{mod})", {"drops": at(mods, i, None)}))
        mistakes += [(f"layer.{other} instead of layer.{mod} on the {part}'s output ({own})",
                      {"drops": at(mods, i, other)}) for other in (*mods, "dropout") if other != mod]
        mistakes.append((f"layer.{mod} on the {part}'s input instead of its output", {"where": at(right, i, "input")}))
        mistakes.append((f"layer.{mod} on the residual sum ({v} + {part}) instead of on the {part}'s output alone",
                         {"where": at(right, i, "sum")}))
        if not norm_first:
            mistakes.append((f"layer.{mod} after the {part}'s LayerNorm instead of on the {part}'s output before "
                             "the residual add", {"where": at(right, i, "after_norm")}))
    for i in range(n):
        for j in range(i + 1, n):
            mistakes.append((f"layer.{mods[i]} and layer.{mods[j]} swapped ({own})",
                             {"drops": at(at(mods, i, mods[j]), j, mods[i])}))
    for place, text in (("input", "on every sublayer's input instead of its output"),
                        ("sum", f"on the residual sums ({v} + sublayer) instead of on the sublayer outputs"),
                        *([("after_norm", "after the LayerNorms instead of before the residual adds")]
                          if not norm_first else [])):
        mistakes.append((f"dropout {text}", {"where": (place,) * n}))
    mistakes += [(f"layer.{m} on every sublayer ({own})", {"drops": (m,) * n}) for m in (*mods, "dropout")]
    mistakes.append(("layer.dropout before layer.activation (if used at all, it goes after the activation)",
                     {"inner_before": True}))
    return [(description, partial(variant, inner=inner, **switches))
            for description, switches in mistakes for inner in ("dropout", None)]


def _same(got: Any, reference: torch.Tensor) -> bool:
    return (isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(reference.shape)
            and torch.allclose(got.detach().double(), reference, **_TOL))


def _diagnose(name: str, got: Any, inputs: str, variants: list[tuple[str, Callable[[], torch.Tensor]]],
              seed: int | None = None) -> None:
    """Raise naming the known mistake that ``got`` reproduces, if any (a mistake that cannot run is skipped);
    with ``seed``, every variant runs after ``torch.manual_seed(seed)`` (training mode)."""
    for description, variant in variants:
        try:
            with torch.no_grad():
                wrong = variant() if seed is None else _seeded(seed, variant)
        except Exception:
            continue
        if _same(got, wrong):
            raise CheckFailure(f"{name}: wrong output for {inputs}: it equals the layer with {description}")


def _flipped(norm_first: bool, v: str) -> str:
    return (f"post-LN wiring norm({v} + sublayer({v})), but this layer is pre-LN (layer.norm_first=True): "
            f"{v} + sublayer(norm({v}))" if norm_first else
            f"pre-LN wiring {v} + sublayer(norm({v})), but this layer is post-LN (layer.norm_first=False): "
            f"norm({v} + sublayer({v}))")


def _describe_layer(norm_first: bool, activation: str, d_model: int, num_heads: int) -> str:
    return (f"a {'pre' if norm_first else 'post'}-LN layer (layer.norm_first={norm_first}, "
            f"activation={activation!r}, d_model={d_model}, {num_heads} heads)")


def _gradients(fn: Callable[..., Any], leaves: dict[str, torch.Tensor], layer: EncoderLayer,
               weight: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """Gradients of ``(fn(*leaves) * weight).sum()`` w.r.t. the leaves and the layer's parameters (zeros where
    unused); None when the output is not a tensor in the autograd graph."""
    tensors = {k: v.clone().requires_grad_() for k, v in leaves.items()}
    params = dict(layer.named_parameters())
    with torch.enable_grad():
        out = fn(*tensors.values())
        if not isinstance(out, torch.Tensor) or not out.requires_grad or out.shape != weight.shape:
            return None
        targets = [*tensors.values(), *params.values()]
        grads = torch.autograd.grad((out.double() * weight).sum(), targets, allow_unused=True)
    names = [f"`{k}`" for k in tensors] + [f"layer.{p}" for p in params]
    return {k: torch.zeros_like(t) if g is None else g for k, t, g in zip(names, targets, grads)}


def _check_layer(name: str, layer: EncoderLayer, candidate: Callable[..., Any], reference: Callable[..., Any],
                 leaves: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None], inputs: str,
                 gen: torch.Generator, variant: Callable[..., torch.Tensor], variants: Callable[[bool], list],
                 before_failing: Callable[[Any, Callable[..., Any]], None] | None = None) -> None:
    """The checks the encoder and decoder layers share. ``reference(layer, *leaves, *masks)`` is the layer's own
    forward; ``variant(**switches)`` the written-out layer of :func:`_layer_variant`; ``variants(training)`` the
    known mistakes; ``before_failing(got, call)`` may name a mistake before an eval-mode mismatch is reported
    (``call(seed, *leaves)`` calls the candidate again)."""
    decoder = len(leaves) == 2
    masks_in = tuple(masks.values())
    with torch.no_grad():
        expected = reference(layer, *leaves.values(), *masks_in)[0]  # eval mode: (B, L, D)
    weight = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    expected_grads = _gradients(lambda *t: reference(layer, *t, *masks_in)[0], leaves, layer, weight)
    eval_seed, other_seed, train_seed = (int(s) for s in torch.randint(0, 2**31 - 1, (3,), generator=gen))
    layer.train()
    with torch.no_grad():  # right with and without the optional dropout after the activation
        trained = [_seeded(train_seed, reference, layer, *leaves.values(), *masks_in)[0],
                   _seeded(train_seed, partial(variant, inner=None))]
    layer.eval()
    _parts_only(layer, name)

    def call(seed: int, *tensors: torch.Tensor) -> Any:
        handed = {k: t.clone() for k, t in zip(leaves, tensors)} | {
            k: None if m is None else m.clone() for k, m in masks.items()}
        got = _run(name, inputs, partial(_seeded, seed, candidate), layer, *handed.values())
        kept = dict(zip(leaves, tensors)) | masks
        assert_unchanged(name, inputs, {arg: (kept[arg], handed[arg]) for arg in handed})
        return got

    # 1) eval mode: deterministic, equal to the reference
    with torch.no_grad():
        got = call(eval_seed, *leaves.values())
    if not _same(got, expected):
        with torch.no_grad():
            again = call(other_seed, *leaves.values())
        if isinstance(got, torch.Tensor) and isinstance(again, torch.Tensor) and got.shape == again.shape \
                and not torch.equal(got, again):
            raise CheckFailure(f"{name}: dropout is on in eval mode for {inputs}: with layer.training False your "
                               "output changes from call to call. The layer's nn.Dropout modules (layer.dropout1, "
                               "…) do nothing in eval mode; F.dropout needs training=layer.training (its default "
                               "is True), and a new nn.Dropout(p) starts in training mode")
        _diagnose(name, got, inputs, variants(False))
        if before_failing is not None and isinstance(got, torch.Tensor) and got.shape == expected.shape:
            before_failing(got, call)
        assert_close(got, expected, what=name, inputs=inputs, **_TOL)

    # 2) backward: the same gradients w.r.t. the inputs and every parameter
    got_grads = _run(name, f"the backward pass for {inputs}", _gradients,
                     lambda *t: _seeded(eval_seed, candidate, layer, *t, *masks_in), leaves, layer, weight)
    if got_grads is None:
        raise CheckFailure(f"{name}: your output carries no gradient for {inputs}: it was cut from the autograd "
                           "graph (.detach(), .data, torch.no_grad() or a NumPy round trip); training could not "
                           "update the layer")
    for key, g in expected_grads.items():
        try:
            assert_close(got_grads[key], g, what=f"{name}: the gradient w.r.t. {key}", inputs=inputs, **_TOL)
        except CheckFailure as err:
            raise CheckFailure(f"{err}\n  the forward values match, so something on the way is detached "
                               "(.detach(), .data, torch.no_grad()) or goes around the parameter") from None

    # 3) training mode, seeded: the dropout masks match only with the same modules in the same places and order
    own = ", ".join(f"layer.dropout{i + 1}" for i in range(len(_SUBLAYERS[decoder])))
    train_inputs = (f"{inputs}, in training mode (layer.train(); {_rates_text(decoder)}) after "
                    f"torch.manual_seed({train_seed})")
    layer.train()
    try:
        with torch.no_grad():
            got_trained = call(train_seed, *leaves.values())
        if not any(_same(got_trained, t) for t in trained):
            if _same(got_trained, expected):
                raise CheckFailure(f"{name}: wrong output for {train_inputs}: it equals the eval-mode output, so no "
                                   f"dropout ran although layer.training is True: apply {own} to the sublayer "
                                   "outputs, before the residual adds")
            _diagnose(name, got_trained, train_inputs, variants(True), seed=train_seed)
            try:
                assert_close(got_trained, trained[0], what=name, inputs=train_inputs, **_TOL)
            except CheckFailure as err:
                raise CheckFailure(f"{err}\n  in training mode each sublayer's output goes through its own dropout "
                                   f"module ({own}) before the residual add, in the order of the sublayers, and "
                                   "nothing else draws random numbers (no F.dropout with a rate of your own)") from None
    finally:
        layer.eval()


@_single_threaded
def check_encoder_layer(candidate: Callable[..., Any], seed: int | None = None) -> None:
    """``candidate(layer, x (B, S, D), mask (B, 1, S) or None) -> (B, S, D)``: one encoder layer written from the
    parts of a bigtut :class:`~bigtut.transformer.EncoderLayer` (``self_attn``, ``dropout1``, ``norm1``,
    ``linear1``, ``activation``, ``linear2``, ``dropout2``, ``norm2``), post-LN when ``layer.norm_first`` is
    False, pre-LN when True; compared with the layer's own forward on random layers (LayerNorms included), in
    eval mode, backward, and in training mode with seeded dropout."""
    name = "encoder_layer_forward"
    gen, seed = checker_generator(seed)
    cases = [(False, "relu", 8, 2, 16, [6, 4, 1]), (False, "gelu", 12, 3, 20, [5, 2]),  # norm_first, act,
             (True, "relu", 8, 4, 12, [7, 3]), (True, "gelu", 6, 2, 10, None)]  # D, h, d_ff, key lengths
    for norm_first, activation, D, h, FF, lengths in cases:
        B, S = (len(lengths), max(lengths)) if lengths else (2, int(torch.randint(3, 7, (1,), generator=gen)))
        layer = _random_layer(EncoderLayer, gen, norm_first, activation, D, h, FF)
        x = torch.randn(B, S, D, generator=gen, dtype=torch.float64)  # (B, S, D)
        mask = padding_mask(lengths, S) if lengths else None  # (B, 1, S), True = real key
        inputs = (f"{_describe_layer(norm_first, activation, D, h)}, x {tuple(x.shape)}, "
                  f"{f'padding mask (B, 1, S) for lengths {lengths}' if lengths else 'mask=None'} (seed={seed})")
        variant = partial(_layer_variant, layer, x, None, mask, None, norm_first=norm_first)

        def variants(training: bool, variant=variant, norm_first=norm_first, lengths=lengths,
                     activation=activation) -> list:
            if training:
                return _dropout_variants(variant, norm_first, False, "x")
            return [
                (_flipped(norm_first, "x"), partial(variant, norm_first=not norm_first)),
                ("no residual around the self-attention", partial(variant, residual=(0, 1))),
                ("no residual around the feed-forward", partial(variant, residual=(1, 0))),
                ("no residual at all", partial(variant, residual=(0, 0))),
                ("no activation between linear1 and linear2 (use layer.activation)",
                 partial(variant, activation=False)),
                ("norm1 and norm2 swapped", partial(variant, norms=("norm2", "norm1"))),
                *([("the padding mask ignored: pass `mask` to layer.self_attn", partial(variant, use_mask=False)),
                   (_INVERTED, partial(variant, use_mask="inverted"))] if lengths else []),
                *([(_HARD_RELU, partial(variant, activation=F.relu))] if activation == "gelu" else []),
                ("old-style dropout: the sublayer outputs scaled by (1 - p) in eval mode; nn.Dropout already "
                 "scales by 1/(1 - p) in training, so eval mode needs nothing", partial(variant, eval_scaled=True)),
                ("old-style dropout: the sublayer outputs scaled by (1 - p) in eval mode; nn.Dropout already "
                 "scales by 1/(1 - p) in training, so eval mode needs nothing",
                 partial(variant, eval_scaled=True, inner=None))]

        _check_layer(name, layer, candidate, EncoderLayer.forward, {"x": x}, {"mask": mask}, inputs, gen, variant,
                     variants)
    passed(name, f"equals bigtut's EncoderLayer on {len(cases)} random layers (post-LN and pre-LN, relu and "
                 "gelu, with and without padding)")


@_single_threaded
def check_decoder_layer(candidate: Callable[..., Any], seed: int | None = None) -> None:
    """``candidate(layer, y (B, T, D), memory (B, S, D), self_mask, memory_mask) -> (B, T, D)``: one decoder layer
    from the parts of a bigtut :class:`~bigtut.transformer.DecoderLayer`: masked self-attention (``self_attn``,
    ``dropout1``, ``norm1``), cross-attention over the memory (``cross_attn``, ``dropout2``, ``norm2``),
    feed-forward (``linear1``, ``activation``, ``linear2``, ``dropout3``, ``norm3``), each with its residual,
    post-LN or pre-LN as ``layer.norm_first`` says. ``self_mask``: causal, ``(T, T)`` or ``(B, T, T)`` with
    target padding; ``memory_mask`` ``(B, 1, S)``. Checked in eval mode, backward, and in training mode with
    seeded dropout."""
    name = "decoder_layer_forward"
    gen, seed = checker_generator(seed)
    cases = [  # norm_first, activation, D, h, d_ff, T, target lengths, source lengths (S == T in the first)
        (False, "relu", 8, 2, 16, 6, None, [6, 4]), (False, "gelu", 12, 3, 20, 6, [6, 3, 5], [4, 2, 3]),
        (True, "relu", 8, 4, 12, 5, None, [7, 3]), (True, "gelu", 6, 2, 10, 4, [4, 2], [6, 1])]
    for norm_first, activation, D, h, FF, T, tgt_lengths, src_lengths in cases:
        B, S = len(src_lengths), max(src_lengths)
        layer = _random_layer(DecoderLayer, gen, norm_first, activation, D, h, FF)
        y = torch.randn(B, T, D, generator=gen, dtype=torch.float64)  # (B, T, D) decoder states
        memory = torch.randn(B, S, D, generator=gen, dtype=torch.float64)  # (B, S, D) encoder output
        self_mask = causal_mask(T)  # (T, T), True = may attend
        if tgt_lengths:
            self_mask = self_mask[None] & padding_mask(tgt_lengths, T)  # (B, T, T): causal and not padding
        memory_mask = padding_mask(src_lengths, S)  # (B, 1, S)
        inputs = (f"{_describe_layer(norm_first, activation, D, h)}, y {tuple(y.shape)}, memory "
                  f"{tuple(memory.shape)}, causal self_mask {tuple(self_mask.shape)}"
                  f"{f' (target lengths {tgt_lengths})' if tgt_lengths else ''}, memory_mask (B, 1, S) for source "
                  f"lengths {src_lengths} (seed={seed})")
        variant = partial(_layer_variant, layer, y, memory, self_mask, memory_mask, norm_first=norm_first)

        def variants(training: bool, variant=variant, norm_first=norm_first, activation=activation) -> list:
            if training:
                return _dropout_variants(variant, norm_first, True, "y")
            return [
                (_flipped(norm_first, "y"), partial(variant, norm_first=not norm_first)),
                ("the causal mask ignored: every position sees the future (pass `self_mask` to layer.self_attn)",
                 partial(variant, use_mask=False)),
                ("the source padding ignored (pass `memory_mask` to layer.cross_attn)",
                 partial(variant, use_memory_mask=False)),
                (f"`self_mask` inverted — {_INVERTED}", partial(variant, use_mask="inverted")),
                (f"`memory_mask` inverted — {_INVERTED}", partial(variant, use_memory_mask="inverted")),
                *([(_HARD_RELU, partial(variant, activation=F.relu))] if activation == "gelu" else []),
                ("cross-attention over the decoder's own states: its keys and values must come from `memory`",
                 partial(variant, cross="decoder")),
                ("the cross-attention's queries and keys/values swapped: queries come from the decoder, keys and "
                 "values from `memory`", partial(variant, cross="swapped")),
                *[(f"no residual around the {part}", partial(variant, residual=tuple(j != i for j in range(3))))
                  for i, part in enumerate(_SUBLAYERS[True])],
                ("no residual at all", partial(variant, residual=(0, 0, 0))),
                ("no activation between linear1 and linear2 (use layer.activation)",
                 partial(variant, activation=False)),
                *[(f"{a} and {b} swapped", partial(variant, norms=tuple({a: b, b: a}.get(n, n)
                                                                      for n in ("norm1", "norm2", "norm3"))))
                  for a, b in (("norm1", "norm2"), ("norm2", "norm3"), ("norm1", "norm3"))],
                ("the cross-attention before the self-attention", partial(variant, cross_first=True)),
                *[("old-style dropout: the sublayer outputs scaled by (1 - p) in eval mode; nn.Dropout already "
                   "scales by 1/(1 - p) in training, so eval mode needs nothing",
                   partial(variant, eval_scaled=True, inner=inner)) for inner in ("dropout", None)]]

        def look_ahead(got: torch.Tensor, call: Callable[..., Any], B=B, T=T, D=D, y=y, memory=memory,
                       inputs=inputs) -> None:
            t, later = T // 2, y.clone()  # changing later positions must not move earlier ones
            later[:, t:] = torch.randn(B, T - t, D, generator=gen, dtype=torch.float64)
            with torch.no_grad():
                moved = call(0, later, memory)
            if isinstance(moved, torch.Tensor) and not _same(moved[:, :t], got[:, :t].detach().double()):
                raise CheckFailure(f"{name}: the decoder looks ahead for {inputs}: changing y at positions {t}.. "
                                   f"changed your output at positions 0..{t - 1}; pass `self_mask` (causal) to "
                                   "layer.self_attn")

        _check_layer(name, layer, candidate, DecoderLayer.forward, {"y": y, "memory": memory},
                     {"self_mask": self_mask, "memory_mask": memory_mask}, inputs, gen, variant, variants, look_ahead)
    passed(name, f"equals bigtut's DecoderLayer on {len(cases)} random layers (post-LN and pre-LN, relu and "
                 "gelu, causal and padding masks)")
