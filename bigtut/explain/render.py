"""Pictures of explanations: token attributions as coloured text (HTML), and pixel attributions beside the image.

The HTML is self-contained — inline styles, no script, no font or stylesheet from the internet — so it shows
the same in JupyterLab, in a stored notebook on GitHub and in a static page. Colours are diverging: blue for
evidence *for* the explained output, red for evidence *against*, white for none, scaled to the largest
absolute score shown (or to ``max_abs``), with a legend that states the scale.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from bigtut.explain.common import as_numpy

__all__ = ["TokenAttributionHTML", "attribution_color", "plot_image_attributions", "token_attributions_html"]

_FOR, _AGAINST = (33, 102, 172), (178, 24, 43)  # blue, red (ColorBrewer RdBu ends)


def attribution_color(score: float, max_abs: float) -> str:
    """CSS colour ``rgb(r, g, b)`` of ``score`` on a white-centred blue (positive) / red (negative) scale."""
    if not np.isfinite(score) or not np.isfinite(max_abs):
        raise ValueError(f"scores must be finite, got score={score}, max_abs={max_abs}")
    strength = 0.0 if max_abs <= 0 else min(abs(score) / max_abs, 1.0)
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
    """
    values = as_numpy(scores).reshape(-1)  # (L,)
    if len(values) != len(tokens):
        raise ValueError(f"got {len(tokens)} tokens but {len(values)} scores")
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite (no NaN or inf)")
    show = np.ones(len(tokens), dtype=bool) if mask is None else np.asarray(as_numpy(mask), dtype=bool).reshape(-1)
    if len(show) != len(tokens):
        raise ValueError(f"mask has {len(show)} entries for {len(tokens)} tokens")
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
    """
    picture, scores = as_numpy(image), as_numpy(attributions)
    if picture.ndim != 2 or scores.shape != picture.shape:
        raise ValueError(f"image and attributions must both be (H, W), got {picture.shape} and {scores.shape}")
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
