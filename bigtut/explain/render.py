"""Pictures of explanations: token attributions as coloured text (HTML), and pixel attributions beside the image.

The HTML is self-contained — inline styles, no script, no font or stylesheet from the internet — so it shows
the same in JupyterLab, in a stored notebook on GitHub and in a static page. Colours are diverging: blue for
evidence *for* the explained output, red for evidence *against*, white for none, scaled to the largest
absolute score shown (or to ``max_abs``), with a legend that states the scale.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from bigtut.explain.common import as_numpy

__all__ = ["TokenAttributionHTML", "attribution_color", "plot_image_attributions", "token_attributions_html"]

_FOR, _AGAINST = (33, 102, 172), (178, 24, 43)  # blue, red (ColorBrewer RdBu ends)


def _number(name: str, value: Any, *, positive: bool = False, allow_zero: bool = False) -> float:
    """``value`` as a float if a finite real number (``> 0`` with ``positive``, ``>= 0`` with ``allow_zero``);
    a 0-d tensor or array counts as its number."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and not (value > 0 or (allow_zero and value == 0))):
        need = "a finite number" + (" >= 0" if allow_zero else " > 0" if positive else "")
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return float(value)


def _array(name: str, value: Any, legend: str) -> np.ndarray:
    """``value`` (tensor, array, list) as a non-empty, finite float64 array; else ``TypeError``/``ValueError``."""
    try:
        if value is None or isinstance(value, (str, bytes)):
            raise TypeError
        array = as_numpy(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numbers {legend} (a tensor, an array or a list), got "
                        f"{type(value).__name__}") from None
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if bad := int((~np.isfinite(array)).sum()):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {bad} NaN/inf value{'s' if bad > 1 else ''}")
    return array


def attribution_color(score: float, max_abs: float) -> str:
    """CSS colour ``rgb(r, g, b)`` of ``score`` on a white-centred blue (positive) / red (negative) scale.

    ``max_abs`` (``>= 0``) is the score that gets the full colour; with 0 every score is white.
    """
    score = _number("score", score)
    max_abs = _number("max_abs", max_abs, positive=True, allow_zero=True)
    strength = 0.0 if max_abs == 0 else min(abs(score) / max_abs, 1.0)
    end = _FOR if score >= 0 else _AGAINST
    r, g, b = (round(255 + (c - 255) * strength) for c in end)
    return f"rgb({r}, {g}, {b})"


def _text_color(score: float, max_abs: float) -> str:
    return "white" if max_abs > 0 and abs(score) / max_abs > 0.6 else "black"


class TokenAttributionHTML(str):
    """An HTML string that JupyterLab renders (``_repr_html_``) and a static page can embed as it is."""

    def _repr_html_(self) -> str:
        return str(self)


def token_attributions_html(tokens: Sequence[str], scores, *, title: str | None = None,
                            max_abs: float | None = None, legend: bool = True,
                            mask: Sequence[bool] | None = None) -> TokenAttributionHTML:
    """Colour each token by its score; hovering a token shows the score.

    Args:
        tokens: the ``L`` token strings, as the tokenizer decodes them (a leading space is shown as a space).
        scores: ``(L,)`` attributions (tensor or array).
        title: a line above the text (e.g. the method and the explained class).
        max_abs: the score that gets the full colour (default: the largest ``|score|`` shown); pass the same
            value to several texts to make their colours comparable.
        mask: ``(L,)`` True for the tokens to show (e.g. the attention mask); padding is left out.

    Raises:
        TypeError: tokens that are not a sequence of strings, scores or mask that are not numbers, a title that
            is not a string.
        ValueError: no token, a number of scores (or mask entries) other than ``L``, scores of more than one
            row, NaN/inf scores, a mask that is not 0/1 or hides every token, ``max_abs`` not a finite number > 0.
    """
    if not isinstance(tokens, Sequence):
        raise TypeError(f"tokens must be a list of L strings, got {type(tokens).__name__}")
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"tokens must be strings (decode the ids first), got {type(token).__name__} "
                            f"{token!r} at position {i}")
    if len(tokens) == 0:
        raise ValueError("tokens is empty: nothing to show")
    values = _array("scores", getattr(scores, "attributions", scores), "(L,)")  # a method's result goes in too
    if sum(n > 1 for n in values.shape) > 1:
        raise ValueError(f"scores must be one row (L,) = ({len(tokens)},), got shape {values.shape}")
    values = values.reshape(-1)  # (L,)
    if len(values) != len(tokens):
        raise ValueError(f"got {len(tokens)} tokens but {len(values)} scores: tokens and scores must both have "
                         "length L")
    if mask is None:
        show = np.ones(len(tokens), dtype=bool)
    else:
        flags = _array("mask", mask, "(L,)").reshape(-1)
        if len(flags) != len(tokens):
            raise ValueError(f"mask has {len(flags)} entries for {len(tokens)} tokens: it must be (L,)")
        if not np.isin(flags, (0, 1)).all():
            raise ValueError("mask must hold 0/1 or True/False (1 = show the token), got other values")
        show = flags.astype(bool)  # (L,)
        if not show.any():
            raise ValueError("mask hides every token: nothing to show")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")
    if not isinstance(legend, (bool, np.bool_)):
        raise TypeError(f"legend must be True or False, got {legend!r}")
    if max_abs is not None:
        _number("max_abs", max_abs, positive=True)
    scale = float(np.abs(values[show]).max(initial=0.0)) if max_abs is None else float(max_abs)
    spans = []
    for token, score, visible in zip(tokens, values, show):
        if not visible:
            continue
        text = html.escape(token).replace("\n", "⏎").replace(" ", "&nbsp;") or "∅"
        spans.append(f'<span title="{score:+.4g}" style="background:{attribution_color(score, scale)};'
                     f'color:{_text_color(score, scale)};padding:1px 0;border-radius:2px">{text}</span>')
    parts = ['<div style="font-family:monospace;line-height:1.9;white-space:normal">']
    if title:
        parts.append(f'<div style="font-family:sans-serif;font-weight:bold;margin-bottom:2px">'
                     f'{html.escape(title)}</div>')
    parts.append("".join(spans))
    if legend:
        swatches = "".join(f'<span style="background:{attribution_color(v * scale, scale)};padding:0 6px">&nbsp;'
                           "</span>" for v in np.linspace(-1, 1, 9))
        parts.append(f'<div style="font-family:sans-serif;font-size:80%;margin-top:4px">against {-scale:+.3g} '
                     f'{swatches} {scale:+.3g} for (hover a token for its score)</div>')
    parts.append("</div>")
    return TokenAttributionHTML("".join(parts))


def plot_image_attributions(image, attributions, *, title: str | None = None, axes=None,
                            max_abs: float | None = None, cmap_image: str = "gray_r"):
    """The image and its pixel attributions side by side, the attributions on a diverging scale centred at 0.

    ``image`` and ``attributions`` are ``(H, W)`` (e.g. an 8×8 digit). Returns the two axes.

    Raises:
        TypeError: an image or attributions that are not numbers, axes that are not two matplotlib axes, a title
            that is not a string, an unknown colour map.
        ValueError: image and attributions not both ``(H, W)``, empty, or holding NaN/inf; ``max_abs`` not a
            finite number > 0.
    """
    picture, scores = _array("image", image, "(H, W)"), _array("attributions", attributions, "(H, W)")
    if picture.ndim != 2 or scores.shape != picture.shape:
        raise ValueError(f"image and attributions must both be (H, W), got {picture.shape} and {scores.shape}")
    if max_abs is not None:
        _number("max_abs", max_abs, positive=True)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")
    if not (isinstance(cmap_image, matplotlib.colors.Colormap)
            or (isinstance(cmap_image, str) and cmap_image in matplotlib.colormaps)):
        raise TypeError(f"cmap_image must be a matplotlib colour map or its name (e.g. 'gray_r'), got {cmap_image!r}")
    if axes is not None and (isinstance(axes, (str, bytes)) or not hasattr(axes, "__len__") or len(axes) < 2
                             or not all(hasattr(ax, "imshow") for ax in list(axes)[:2])):
        raise TypeError(f"axes must be two matplotlib axes (image, attributions), got {type(axes).__name__}")
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(6, 3))[1]
    scale = float(np.abs(scores).max()) if max_abs is None else float(max_abs)
    scale = scale if scale > 0 else 1.0
    axes[0].imshow(picture, cmap=cmap_image)
    axes[0].set_title("input")
    shown = axes[1].imshow(scores, cmap="RdBu", vmin=-scale, vmax=scale)  # blue: for, red: against
    axes[1].set_title(title or "attribution")
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].figure.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
    return axes
