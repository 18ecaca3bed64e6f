"""Checkers for chapters 06–08 (LIME, SHAP, Integrated Gradients).

Each takes the student's function, compares it with :mod:`bigtut.explain` on fresh random cases, and is
built to catch the wrong formulas that circulate in course notes; a failure names the input, what was
expected and what came back, and — when the answer is a known wrong variant — which mistake it is:

==================================  ==========================================================================
checker                             the formula it holds the candidate to (and the usual mistake it catches)
==================================  ==========================================================================
``check_lime_kernel``               lime's weight √exp(−d²/w²) (not exp(−d²/w²), not exp(−d/w), not w
                                    unsquared, not normalised weights, not float32, not in place)
``check_weighted_least_squares``    the surrogate minimises Σ π(z)(f(z) − g(z))² (not an unweighted fit, not
                                    rows times w instead of √w, not y or Z left unweighted, not without an
                                    intercept, not lime's ridge penalty, not the outputs swapped)
``check_shapley_weight``            |S|!(M−|S|−1)!/M! (not 1/M, not 1/2^(M−1), not |S|!(M−|S|)!/M!, not
                                    1/C(M−1, |S|), not integer division)
``check_shapley_value``             Σ_{S⊆N∖{i}} w(|S|)[v(S∪{i}) − v(S)] (not v(S) − v(S∖{i}) over S ∌ i, not
                                    unweighted, not the sign flipped, not a coalition size left out)
``check_interpolation_path``        x′ + α(x − x′), α = k/n (not x′ + αx, not αx, not the left nodes or
                                    linspace(0, 1, n), not the path reversed, not float32 alphas)
``check_riemann_integrated_gradients``  (x − x′) ⊙ mean of the path gradients (the (x − x′) factor included,
                                    the right nodes, a mean not a sum) with ONE call of ``forward`` on the
                                    whole ``(n_steps, M)`` path (a loop over the points fails)
==================================  ==========================================================================

Every checker also hands the candidate copies of its tensors and fails it if it changed them in place, and fails
an answer that calls the course's own implementation (``bigtut.explain``'s ``lime_kernel``, ``fit_surrogate``,
``coalition_weight``, ``exact_shapley``, ``integration_rule``, ``integrated_gradients``; captum's
``IntegratedGradients``).

Generic helpers used by the checkers of chapters 06–10 and A1 (candidates for :mod:`bigtut.checks.core`):
:func:`hint_for` (name the wrong variant an answer equals), :func:`assert_close_or_hint` (``assert_close``
plus that hint), :func:`assert_not_modified` (the candidate left its input tensors alone),
:func:`assert_does_not_use` (the candidate's bytecode names no banned function, e.g. the course's own answer) and
:class:`RecordedCalls` (a function wrapper that records the shapes it was called with).
"""

from __future__ import annotations

import dis
import itertools
import math
import types
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch

from bigtut.checks.core import CheckFailure, _describe, assert_close, checker_generator, guarded, passed, random_float64

__all__ = ["OWN_ANSWER", "RecordedCalls", "assert_close_or_hint", "assert_does_not_use", "assert_not_modified",
           "check_interpolation_path", "check_lime_kernel", "check_riemann_integrated_gradients", "check_shapley_value",
           "check_shapley_weight", "check_weighted_least_squares", "hint_for"]


# --------------------------------------------------------------------------------------------- generic helpers
def _as_float64(value: Any) -> torch.Tensor | None:
    """``value`` as a CPU float64 tensor, or None when it cannot be read as numbers."""
    try:
        tensor = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        return tensor.to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None


Variants = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


def hint_for(got: Any, variants: Variants, *, atol: float = 1e-9, rtol: float = 1e-7) -> str:
    """``"\\n  Hint: <mistake>."`` for the first known wrong variant that ``got`` equals, else ``""``.

    ``variants`` maps a description of a mistake to the value that mistake produces on the same input (or to a
    function computing it; a variant that raises is skipped). It may also be a function returning that mapping,
    so nothing is computed unless the candidate has already failed.
    """
    value = _as_float64(got)
    if value is None:
        return ""
    try:
        table = variants() if callable(variants) else variants
    except Exception:  # a hint is optional; the failure is reported anyway
        return ""
    for label, wrong in table.items():
        try:
            wrong = _as_float64(wrong() if callable(wrong) else wrong)
        except Exception:  # e.g. factorial of a negative number: that variant cannot be the answer
            continue
        if wrong is not None and wrong.shape == value.shape and torch.allclose(value, wrong, atol=atol, rtol=rtol):
            return f"\n  Hint: {label}."
    return ""


def assert_close_or_hint(got: Any, expected: Any, *, what: str, inputs: str, variants: Variants, atol: float = 1e-6,
                         rtol: float = 1e-5, hint_atol: float | None = None) -> None:
    """:func:`~bigtut.checks.core.assert_close`, whose failure also names the mistake when ``got`` equals one of
    ``variants`` (see :func:`hint_for`) or was computed in a lower precision than the float64 expected."""
    try:
        assert_close(got, expected, what=what, inputs=inputs, atol=atol, rtol=rtol)
    except CheckFailure as failure:
        hint = hint_for(got, variants, atol=atol if hint_atol is None else hint_atol, rtol=rtol)
        expected_dtype = expected.dtype if isinstance(expected, torch.Tensor) else torch.float64
        if (not hint and isinstance(got, torch.Tensor) and got.is_floating_point()
                and expected_dtype == torch.float64 and got.dtype != torch.float64):
            hint = (f"\n  Hint: the result is {got.dtype}; the inputs are float64 — compute in float64 (a "
                    f"torch.arange or torch.tensor without dtype= gives float32, whose rounding alone is ~1e-7)")
        raise CheckFailure(f"{failure}{hint}") from None


def assert_not_modified(name: str, inputs: str, tensors: Mapping[str, tuple[Any, Any]]) -> None:
    """Fail if the candidate changed an argument in place.

    ``tensors`` maps an argument's name to ``(kept, given)``: the checker's own copy, and the object the candidate
    received (a tensor, or a list of tensors).
    """
    for label, (kept, given) in tensors.items():
        if isinstance(kept, torch.Tensor):
            same = isinstance(given, torch.Tensor) and given.shape == kept.shape and torch.equal(given.detach(), kept)
        else:
            same = (len(given) == len(kept)
                    and all(g.shape == k.shape and torch.equal(g.detach(), k) for g, k in zip(given, kept)))
        if not same:
            raise CheckFailure(
                f"{name}: changed its argument `{label}` in place for {inputs} — `{label} -= …`, `{label} /= …`, "
                f"`{label}.mul_(…)`, `{label}[…] = …` (or reordering a list) overwrite the caller's data; compute "
                f"new tensors instead")


class RecordedCalls:
    """Wraps ``fn``; ``shapes`` lists the shape of the first argument of every call (its type name if it has none)."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.shapes: list[tuple[int, ...] | str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else next(iter(kwargs.values()), None)
        self.shapes.append(tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__)
        return self.fn(*args, **kwargs)

    def describe(self, limit: int = 4) -> str:
        shown = ", ".join(str(s) for s in self.shapes[:limit])
        return shown + (f", … ({len(self.shapes)} calls)" if len(self.shapes) > limit else "")


def _names_in(code: types.CodeType) -> tuple[set[str], set[str]]:
    """The names a code object (and the functions nested in it) reads as globals, and those it reads as attributes
    or imports from a module (``lime.lime_kernel``, ``from … import lime_kernel``)."""
    as_global: set[str] = set()
    from_module: set[str] = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            as_global.add(instruction.argval)
        elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM"):
            from_module.add(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            inner_global, inner_module = _names_in(const)
            as_global |= inner_global
            from_module |= inner_module
    return as_global, from_module


def assert_does_not_use(name: str, candidate: Callable, banned: Mapping[str, str]) -> None:
    """Fail if ``candidate``'s compiled code refers to one of the ``banned`` names (a name -> what to write instead):
    the course's own answer, or the library function the exercise asks the student to write.

    It reads the function's bytecode, not its source, so it works for functions defined in notebook cells or
    ``exec``'d strings. A global name bound to a function defined next to the candidate (the student's own helper
    that happens to share the name) is allowed; the same name read from a module (``metrics.precision_at_k``,
    ``from … import precision_at_k``) is not. A callable without code (a builtin, a partial) is not read.
    """
    function = getattr(candidate, "__func__", candidate)
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType):
        return
    scope = getattr(function, "__globals__", {})
    as_global, from_module = _names_in(code)
    own = {used for used in as_global if getattr(scope.get(used), "__globals__", None) is scope}
    for used in sorted(((as_global - own) | from_module) & set(banned)):
        raise CheckFailure(f"{name}: the answer calls `{used}` — {banned[used]}")


#: the advice :func:`assert_does_not_use` gives for a banned reference implementation (``.format(its name)``)
OWN_ANSWER = "{} is the course's own answer to this exercise: write it yourself with torch"


def _number(name: str, got: Any, inputs: str) -> float:
    """A candidate's scalar answer as a float, or a :class:`CheckFailure` saying what came back instead."""
    try:
        return float(got)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailure(f"{name}: expected a number for {inputs}, got {_describe(got)}") from None


# ------------------------------------------------------------------------------------------------- LIME
def _lime_variants(d: torch.Tensor, w: float, expected: torch.Tensor) -> dict[str, torch.Tensor]:
    """The weights of the usual wrong kernels for distances ``d`` and width ``w``."""
    return {
        "exp(−d²/w²) has no square root; lime's weight is √exp(−d²/w²) = exp(−d²/(2w²))": torch.exp(-d**2 / w**2),
        "exp(−d/w): the distance and the width must be squared": torch.exp(-d / w),
        "√exp(−d/w): the distance and the width must be squared": torch.sqrt(torch.exp(-d / w)),
        "√exp(−d²/w): the width must be squared too": torch.sqrt(torch.exp(-d**2 / w)),
        "√exp(−d/w²): the distance must be squared": torch.sqrt(torch.exp(-d / w**2)),
        "the exponent's sign is wrong: √exp(+d²/w²) grows with the distance": torch.sqrt(torch.exp(d**2 / w**2)),
        "the weights were normalised to sum to 1; lime's are not (the instance itself weighs 1)":
            expected / expected.sum(),
    }


def check_lime_kernel(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(distances (N,), kernel_width) -> weights (N,)`` must be lime's √exp(−d²/w²)."""
    from bigtut.explain.lime import lime_kernel

    gen, seed = checker_generator(seed)
    name = "lime_kernel"
    for width in (0.75, 2.0, 25.0):
        distances = random_float64(gen, 50).abs() * width * 1.5  # (N,) from 0 to a few widths
        distances[0] = 0.0  # the instance itself: weight 1
        expected = torch.as_tensor(lime_kernel(distances.numpy(), width))
        given = distances.clone()
        inputs = f"50 distances, kernel_width={width} (seed={seed})"
        got = guarded(name, f"kernel_weights(distances, {width}) ({inputs})", candidate, given, width)
        assert_not_modified(name, inputs, {"distances": (distances, given)})
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=1e-10, rtol=1e-8,
                             variants=partial(_lime_variants, distances, width, expected))
    assert_does_not_use(name, candidate, {"lime_kernel": OWN_ANSWER.format("bigtut.explain's lime_kernel")})
    passed(name, "√exp(−d²/w²) for three kernel widths")


def _wls(features: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, *, row_scale: torch.Tensor | None = None,
         target_scale: torch.Tensor | None = None, intercept: bool = True) -> torch.Tensor:
    """The weighted least-squares coefficients (intercept first when ``intercept``), rows scaled by √weights unless
    ``row_scale`` / ``target_scale`` say otherwise: the right fit and its usual wrong variants."""
    root = weights.sqrt()
    design = torch.cat([torch.ones(len(features), 1, dtype=features.dtype), features], 1) if intercept else features
    rows = (root if row_scale is None else row_scale)[:, None]
    ys = (root if target_scale is None else target_scale)[:, None]
    return torch.linalg.lstsq(design * rows, targets[:, None] * ys).solution[:, 0]


def _wls_variants(Z: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> dict[str, Any]:
    """The coefficients of the usual wrong fits (computed only when asked for)."""
    from bigtut.explain.lime import fit_surrogate

    return {
        "an unweighted fit: the weights were not used": _wls(Z, y, torch.ones_like(w))[1:],
        "the rows were multiplied by w, not √w (that minimises Σ w²·residual²)": _wls(Z, y, w**2)[1:],
        "only [1, Z] was multiplied by √w; y must be too": _wls(Z, y, w, target_scale=torch.ones_like(w))[1:],
        "only y was multiplied by √w; the rows of [1, Z] must be too": _wls(Z, y, w, row_scale=torch.ones_like(w))[1:],
        "no intercept: add a column of ones to Z (the intercept is fitted, not 0)": _wls(Z, y, w, intercept=False),
        "a ridge penalty (lime's default alpha=1); this exercise asks for none":
            torch.as_tensor(fit_surrogate(Z.numpy(), y.numpy(), w.numpy(), alpha=1.0)[0]),
        "the weights were inverted (1 / w)": _wls(Z, y, 1 / w)[1:],
    }


def check_weighted_least_squares(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(features (N, K), targets (N,), weights (N,)) -> (coefficients (K,), intercept)`` must
    minimise Σ weights · (targets − intercept − features @ coefficients)²."""
    from bigtut.explain.lime import fit_surrogate

    gen, seed = checker_generator(seed)
    name = "weighted_least_squares"
    for n, k in ((40, 3), (200, 6)):
        features = (torch.rand(n, k, generator=gen, dtype=torch.float64) < 0.5).double()  # (N, K) on/off
        targets = random_float64(gen, n)  # (N,) not linear in the features: weights change the answer
        weights = torch.rand(n, generator=gen, dtype=torch.float64) ** 3  # (N,) very unequal
        coefficients, intercept, _ = fit_surrogate(features.numpy(), targets.numpy(), weights.numpy(), alpha=0.0)
        what = f"N={n} samples, K={k} features, unequal weights (seed={seed})"
        given = features.clone(), targets.clone(), weights.clone()
        got = guarded(name, f"weighted_least_squares(features, targets, weights) for {what}", candidate, *given)
        assert_not_modified(name, what, {"features": (features, given[0]), "targets": (targets, given[1]),
                                         "weights": (weights, given[2])})
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailure(f"{name}: expected (coefficients, intercept), got {_describe(got)} for {what}")
        shapes = [tuple(torch.as_tensor(g).shape) if _as_float64(g) is not None else None for g in got]
        if shapes[0] == () and shapes[1] == (k,):
            raise CheckFailure(f"{name}: got (a number, a ({k},) tensor) for {what}: return (coefficients (K,), "
                               f"intercept) in that order")
        if shapes[0] == (k + 1,):
            raise CheckFailure(f"{name}: coefficients of shape ({k + 1},) for {what}, expected ({k},): the "
                               f"intercept is still among them — return solution[1:] and solution[0] separately")
        assert_close_or_hint(got[0], torch.as_tensor(coefficients), what=f"{name} coefficients", inputs=what,
                             atol=1e-7, variants=partial(_wls_variants, features, targets, weights))
        assert_close(got[1], torch.as_tensor(intercept), what=f"{name} intercept", inputs=what, atol=1e-7)
    assert_does_not_use(name, candidate, {"fit_surrogate": OWN_ANSWER.format("bigtut.explain's fit_surrogate")})
    passed(name, "the weighted fit on two random neighbourhoods")


# ------------------------------------------------------------------------------------------------- SHAP
def check_shapley_weight(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(size, n_features) -> float``: the weight of a coalition of ``size`` players that player i
    joins, among ``n_features`` players, |S|!(M−|S|−1)!/M!."""
    from bigtut.explain.shap import coalition_weight

    _, seed = checker_generator(seed)
    name = "shapley_weight"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    pairs = [(size, m) for m in range(1, 9) for size in range(m)]
    got = {(size, m): _number(name, guarded(name, f"shapley_weight({size}, {m})", candidate, size, m),
                              f"|S|={size}, M={m}") for size, m in pairs}
    f = math.factorial
    variants = {
        "1/M is the weight of a coalition *size*; each coalition of that size gets 1/(M·C(M−1, |S|))":
            lambda s, m: 1 / m,
        "1/2^(M−1) treats every coalition alike; the weight depends on |S|": lambda s, m: 1 / 2 ** (m - 1),
        "|S|!(M−|S|)!/M! = 1/C(M, |S|): the second factorial is (M − |S| − 1)!, since the coalitions lack player i "
        "(= 1/(M·C(M−1, |S|)))": lambda s, m: f(s) * f(m - s) / f(m),
        "1/C(M−1, |S|): the factor 1/M is missing": lambda s, m: 1 / math.comb(m - 1, s),
        "|S|!(M−|S|−1)!/(M−1)!: divide by M!, not (M−1)!": lambda s, m: f(s) * f(m - s - 1) / f(m - 1),
        "integer division `//` rounds the weight down to 0: use `/`": lambda s, m: f(s) * f(m - s - 1) // f(m),
    }
    for size, m in pairs:
        expected = coalition_weight(size, m)
        if not math.isclose(got[size, m], expected, rel_tol=1e-12, abs_tol=0.0):
            hint = ""
            for label, wrong in variants.items():
                try:
                    if all(math.isclose(got[p], wrong(*p), rel_tol=1e-9, abs_tol=1e-15) for p in pairs):
                        hint = f"\n  Hint: {label}."
                        break
                except (ValueError, ZeroDivisionError):
                    continue
            raise CheckFailure(f"{name}: wrong weight for |S|={size}, M={m}: expected |S|!(M−|S|−1)!/M! = "
                               f"{size}!·{m - size - 1}!/{m}! = {expected:.6g}, got {got[size, m]:.6g}{hint}")
    assert_does_not_use(name, candidate, {"coalition_weight": OWN_ANSWER.format("bigtut.explain's coalition_weight")})
    passed(name, "every coalition size for M = 1 … 8 (the weights over S ⊆ N∖{i} sum to 1)")


def _random_game(gen: torch.Generator, n: int) -> dict[frozenset, float]:
    """A characteristic function: a random value per coalition, with player n-1 a dummy (adds nothing)."""
    values = {}
    for size in range(n):
        for coalition in itertools.combinations(range(n - 1), size):
            values[frozenset(coalition)] = float(torch.randn(1, generator=gen, dtype=torch.float64))
    for coalition in list(values):
        values[coalition | {n - 1}] = values[coalition]  # the dummy
    return values


class _Game:
    """The value function handed to the candidate: ``value(frozenset of players) -> float``, with a clear error
    for anything else (a tuple, a list, an unknown player)."""

    def __init__(self, table: dict[frozenset, float], n: int) -> None:
        self.table, self.n = table, n

    def __call__(self, coalition: Any) -> float:
        if not isinstance(coalition, (frozenset, set)):
            raise TypeError(f"value() takes a frozenset of players, got {type(coalition).__name__} {coalition!r}")
        coalition = frozenset(coalition)
        if not coalition <= set(range(self.n)):
            raise KeyError(f"value() got the coalition {set(coalition)}; the players are 0 … {self.n - 1}")
        return self.table[coalition]


def _shapley_sum(v: Callable, n: int, i: int, *, sizes: range | None = None, weight: Callable | None = None,
                 marginal: Callable | None = None) -> float:
    """Σ over S ⊆ N∖{i} with |S| in ``sizes`` of ``weight(|S|, n) · marginal(v, S, i)``: the Shapley value and,
    with other arguments, its usual wrong variants."""
    from bigtut.explain.shap import coalition_weight

    weight = coalition_weight if weight is None else weight
    marginal = (lambda v, s, i: v(s | {i}) - v(s)) if marginal is None else marginal
    others = [p for p in range(n) if p != i]
    return sum(weight(size, n) * marginal(v, frozenset(s), i)
               for size in (range(n) if sizes is None else sizes) for s in itertools.combinations(others, size))


def _shapley_value_variants(v: Callable, n: int, i: int, expected: float) -> dict[str, Callable[[], float]]:
    """The values the usual wrong formulas give player ``i`` of the game ``v`` (each computed only when asked for)."""
    f = math.factorial
    everyone = frozenset(range(n))
    return {
        "v(S) − v(S∖{i}) over the S that lack i is always 0: the marginal contribution is v(S∪{i}) − v(S)":
            lambda: _shapley_sum(v, n, i, marginal=lambda v, s, i: v(s) - v(s - {i})),
        "the sign is flipped: the marginal contribution is v(S∪{i}) − v(S)": lambda: -expected,
        "an unweighted average over the coalitions; each size |S| needs the weight |S|!(M−|S|−1)!/M!":
            lambda: _shapley_sum(v, n, i, weight=lambda s, m: 1 / 2 ** (m - 1)),
        "an unweighted sum over the coalitions; each needs the weight |S|!(M−|S|−1)!/M!":
            lambda: _shapley_sum(v, n, i, weight=lambda s, m: 1.0),
        "the weight |S|!(M−|S|)!/M!: the second factorial is (M − |S| − 1)!":
            lambda: _shapley_sum(v, n, i, weight=lambda s, m: f(s) * f(m - s) / f(m)),
        "the empty coalition is left out: sizes run 0 … M−1": lambda: _shapley_sum(v, n, i, sizes=range(1, n)),
        "the largest coalitions (all the other M−1 players) are left out: sizes run 0 … M−1, range(n_players), "
        "not range(n_players − 1)": lambda: _shapley_sum(v, n, i, sizes=range(n - 1)),
        "leave-one-out v(N) − v(N∖{i}) is one marginal contribution, not the Shapley value":
            lambda: v(everyone) - v(everyone - {i}),
        "v({i}) − v(∅) is one marginal contribution, not the Shapley value": lambda: v(frozenset({i})) - v(frozenset()),
    }


def check_shapley_value(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(value, n_players, player) -> float`` with ``value(frozenset) -> float`` must be the
    Shapley value φ_player = Σ_{S⊆N∖{i}} |S|!(M−|S|−1)!/M! · [v(S∪{i}) − v(S)]."""
    gen, seed = checker_generator(seed)
    name = "shapley_value"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for n in (3, 5):
        table = _random_game(gen, n)
        for player in range(n):
            expected = _shapley_sum(table.__getitem__, n, player)
            what = f"a random {n}-player game, player {player}{' (a dummy)' if player == n - 1 else ''}"
            inputs = f"{what} (seed={seed})"
            got = _number(name, guarded(name, f"shapley_value(value, {n}, {player}) for {inputs}", candidate,
                                        _Game(table, n), n, player), inputs)
            assert_close_or_hint(torch.tensor(got, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                                 what=name, inputs=inputs, atol=1e-10,
                                 variants=partial(_shapley_value_variants, table.__getitem__, n, player, expected))
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}")
                                          for f in ("exact_shapley", "kernel_shap", "permutation_shap")})
    passed(name, "random 3- and 5-player games (efficiency and the dummy hold)")


# --------------------------------------------------------------------------------------- Integrated Gradients
def _path(x: torch.Tensor, baseline: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """The points x′ + α(x − x′) ``(len(alphas), M)``."""
    return baseline + alphas[:, None] * (x - baseline)


def _float32_alphas(n_steps: int) -> torch.Tensor:
    """``torch.arange(1, n + 1) / n`` as a student writes it without ``dtype=``: float32 nodes, in float64."""
    return (torch.arange(1, n_steps + 1) / n_steps).double()


def _path_variants(x: torch.Tensor, baseline: torch.Tensor, n_steps: int, expected: torch.Tensor) -> dict[str, Any]:
    """The points ``(n, M)`` of the usual wrong paths."""
    k = torch.arange(1, n_steps + 1, dtype=torch.float64)  # (n,)
    return {
        "x′ + αx: the step is α(x − x′)": baseline + (k / n_steps)[:, None] * x,
        "αx: the path starts at the baseline x′, not at 0": (k / n_steps)[:, None] * x,
        "α = 0, 1/n, …, (n−1)/n are the left nodes; the right nodes are α = k/n for k = 1 … n":
            _path(x, baseline, (k - 1) / n_steps),
        "α = linspace(0, 1, n) spaces n points from 0 to 1; the right nodes are k/n for k = 1 … n":
            _path(x, baseline, torch.linspace(0, 1, n_steps, dtype=torch.float64)),
        "α = (k − ½)/n are the midpoints; the right nodes are k/n": _path(x, baseline, (k - 0.5) / n_steps),
        "the points run from x towards x′: x + α(x′ − x); the path goes from x′ to x": _path(baseline, x, k / n_steps),
        "the points are in reverse order: the first row is α = 1/n, the last α = 1": expected.flip(0),
        "the α are float32 (torch.arange(1, n + 1) / n): give torch.arange dtype=x.dtype":
            _path(x, baseline, _float32_alphas(n_steps)),
    }


def check_interpolation_path(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(x (M,), baseline (M,), n_steps) -> (n_steps, M)``: the points x′ + (k/n)(x − x′), k = 1 … n."""
    gen, seed = checker_generator(seed)
    name = "interpolation_path"
    for n_steps in (4, 20, 1):
        x, baseline = random_float64(gen, 6), random_float64(gen, 6)  # (M,), (M,): a non-zero baseline
        expected = _path(x, baseline, torch.arange(1, n_steps + 1, dtype=torch.float64) / n_steps)  # (n, M)
        inputs = f"M=6, non-zero baseline, n_steps={n_steps} (seed={seed})"
        given = x.clone(), baseline.clone()
        got = guarded(name, f"interpolation_path(x, baseline, {n_steps}) for {inputs}", candidate, *given, n_steps)
        assert_not_modified(name, inputs, {"x": (x, given[0]), "baseline": (baseline, given[1])})
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else None
        if shape == (6, n_steps) and n_steps != 6:
            raise CheckFailure(f"{name}: shape (6, {n_steps}) for {inputs}, expected ({n_steps}, 6): one row per "
                               f"path point — alphas[:, None] * (x − baseline), not the transpose")
        if shape == (n_steps + 1, 6):
            raise CheckFailure(f"{name}: {n_steps + 1} points for {inputs}, expected {n_steps}: α = k/n for "
                               f"k = 1 … n — the baseline itself (k = 0) is not one of the right Riemann nodes")
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=1e-12, rtol=1e-10,
                             variants=partial(_path_variants, x, baseline, n_steps, expected))
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}")
                                          for f in ("integration_rule", "integrated_gradients")})
    passed(name, "right-Riemann points from a non-zero baseline")


def _gradients(forward: Callable, points: torch.Tensor) -> torch.Tensor:
    """∇F at every row of ``points`` ``(n, M)`` -> ``(n, M)``."""
    points = points.detach().clone().requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(points).sum(), points)
    return grads


def _ig_variants(forward: Callable, x: torch.Tensor, baseline: torch.Tensor, n_steps: int) -> dict[str, torch.Tensor]:
    """The attributions ``(M,)`` of the usual wrong IG formulas."""
    d, k = x - baseline, torch.arange(1, n_steps + 1, dtype=torch.float64)  # (M,), (n,)
    right = _gradients(forward, _path(x, baseline, k / n_steps))  # (n, M)
    left = _gradients(forward, _path(x, baseline, (k - 1) / n_steps))  # (n, M)
    return {
        "the (x − x′) factor is missing: IG multiplies the mean path gradient by x − x′": right.mean(0),
        "x ⊙ gradients: multiply by (x − x′), not x (they agree only for a zero baseline)": x * right.mean(0),
        "the gradients were summed, not averaged: the 1/n is missing": d * right.sum(0),
        "divided by n twice: forward(path).mean() already divides every gradient by n": d * right.mean(0) / n_steps,
        "α = 0 … (n−1)/n are the left nodes; this exercise uses the right nodes α = k/n, k = 1 … n": d * left.mean(0),
        "α = (k − ½)/n are the midpoints; this exercise uses the right nodes α = k/n":
            d * _gradients(forward, _path(x, baseline, (k - 0.5) / n_steps)).mean(0),
        "the trapezoid rule; this exercise uses the right nodes α = k/n with equal weights 1/n":
            d * (left.sum(0) + right.sum(0)) / (2 * n_steps),
        "the gradient at x alone, (x − x′) ⊙ ∇F(x), is not the path average": d * _gradients(forward, x[None])[0],
        "gradients with respect to x through the path weigh point k by α_k; take them with respect to the path "
        "points themselves": d * ((k / n_steps)[:, None] * right).mean(0),
        "the α are float32 (torch.arange(1, n + 1) / n): give torch.arange dtype=x.dtype":
            d * _gradients(forward, _path(x, baseline, _float32_alphas(n_steps))).mean(0),
    }


def check_riemann_integrated_gradients(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(forward, x (M,), baseline (M,), n_steps) -> attributions (M,)``: right-Riemann IG,
    (x − x′) ⊙ (1/n) Σ_k ∇F(x′ + (k/n)(x − x′)), where ``forward`` maps a batch ``(N, M)`` to ``(N,)`` — and
    ``forward`` must be called once, on all the ``n_steps`` path points together."""
    from bigtut.explain.integrated_gradients import integrated_gradients

    gen, seed = checker_generator(seed)
    name = "riemann_integrated_gradients"
    w1, w2 = random_float64(gen, 5, 8), random_float64(gen, 8)  # a small tanh network

    def forward(batch: torch.Tensor) -> torch.Tensor:  # (N, 5) -> (N,)
        return torch.tanh(batch @ w1) @ w2

    for n_steps in (7, 40, 1):
        x, baseline = random_float64(gen, 5), random_float64(gen, 5)
        expected = integrated_gradients(forward, x[None], baseline=baseline[None], n_steps=n_steps,
                                        method="riemann_right").attributions[0]  # (M,) float64 NumPy
        inputs = f"a tanh network of 5 inputs, non-zero baseline, n_steps={n_steps} (seed={seed})"
        recorded = RecordedCalls(forward)
        given = x.clone(), baseline.clone()
        got = guarded(name, f"riemann_integrated_gradients(forward, x, baseline, {n_steps}) for {inputs}", candidate,
                      recorded, *given, n_steps)
        assert_not_modified(name, inputs, {"x": (x, given[0]), "baseline": (baseline, given[1])})
        if isinstance(got, torch.Tensor):
            got = got.detach()
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=1e-9, rtol=1e-8,
                             variants=partial(_ig_variants, forward, x, baseline, n_steps))
        assert_does_not_use(name, candidate, {
            "integrated_gradients": OWN_ANSWER.format("bigtut.explain's integrated_gradients"),
            "token_integrated_gradients": OWN_ANSWER.format("bigtut.explain's token_integrated_gradients"),
            "IntegratedGradients": OWN_ANSWER.format("captum's IntegratedGradients")})
        if recorded.shapes != [(n_steps, 5)]:
            raise CheckFailure(
                f"{name}: forward was called {len(recorded.shapes)} time(s) for {inputs}, on inputs of shape "
                f"{recorded.describe() or 'none'}; the exercise asks for ONE call of forward on all the path points, "
                f"a batch of shape ({n_steps}, 5): build the (n_steps, M) path, call forward(path) once and take the "
                f"gradient of its sum with respect to the path")
    passed(name, "right-Riemann IG on a small network, non-zero baselines")
