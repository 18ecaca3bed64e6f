"""Diagrams of the architectures the course builds, drawn with matplotlib patches and text (no image files):
the encoder–decoder Transformer (03), multi-head split and merge (02), the GPT block (04) and BERT's input sum (05).

Each function draws on the ``ax`` it is given (or a new one) and returns it; call ``plt.show()`` after.
Import them from here (``from bigtut.diagrams import draw_gpt_block``); :mod:`bigtut.plots` holds the curves.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

__all__ = ["draw_bert_inputs", "draw_gpt_block", "draw_multihead", "draw_transformer"]

# Colours of the diagrams: one per kind of sublayer, the same in every picture.
_ATTN, _FFN, _NORM, _EMB, _OUT = "#fcd9a8", "#c6e2f5", "#f3f1b5", "#f6c8c8", "#d5ecd1"


def new_ax(ax: plt.Axes | None, figsize: tuple[float, float]) -> plt.Axes:
    """``ax`` itself, or the Axes of a new figure of ``figsize``."""
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


# -------------------------------------------------------------------------------------------- diagrams

def _box(ax, x, y, text, w=3.0, h=0.6, color="white", fontsize=8.5, **text_kw):
    """A rounded box centred on ``(x, y)`` with ``text`` in it."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.12",
                                facecolor=color, edgecolor="black", linewidth=0.9))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, **text_kw)


def _path(ax, *points, color="black", head=True, lw=1.0):
    """A polyline through ``points``, with an arrow head on its last segment."""
    xs, ys = zip(*points)
    ax.plot(xs[:-1], ys[:-1], color=color, linewidth=lw, solid_capstyle="butt")
    ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>" if head else "-", mutation_scale=10,
                                 color=color, linewidth=lw, shrinkA=0, shrinkB=0))


def _plus(ax, x, y, r=0.18):
    ax.add_patch(plt.Circle((x, y), r, facecolor="white", edgecolor="black", linewidth=0.9))
    ax.text(x, y, "+", ha="center", va="center", fontsize=10)


def _finish(ax, xlim, ylim, title):
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def _stack(ax, x, ys, labels, colors, residual_side, w=3.0):
    """Boxes at heights ``ys`` joined by arrows; each box followed by "add & norm" gets a residual line."""
    for (y0, y1) in zip(ys[:-1], ys[1:]):
        _path(ax, (x, y0 + 0.3), (x, y1 - 0.3))
    for y, label, color in zip(ys, labels, colors):
        _box(ax, x, y, label, w=w, color=color)
    side = x + residual_side * (w / 2 + 0.35)
    for i, label in enumerate(labels):
        if label == "add & norm":  # residual: from below the previous sublayer around it into the add & norm
            y_from = ys[i - 1] - 0.45
            _path(ax, (x, y_from), (side, y_from), (side, ys[i]), (x + residual_side * w / 2, ys[i]))


def draw_transformer(ax: plt.Axes | None = None) -> plt.Axes:
    """The encoder–decoder Transformer of "Attention Is All You Need", as a block diagram.

    Left, the encoder layer (self-attention, add & norm, feed-forward, add & norm), repeated N times; right,
    the decoder layer (masked self-attention, cross-attention whose keys and values are the encoder's output,
    feed-forward, each followed by add & norm), repeated N times. Token embeddings plus positional encodings
    enter at the bottom; a linear layer and a softmax give the next-token probabilities at the top. Drawn as
    in the paper (post-LN: the norm after each residual sum); :mod:`bigtut.transformer` also offers the pre-LN
    wiring (``norm_first=True``), where each sublayer reads ``LN(x)`` and the sum is left un-normalised.
    """
    ax = new_ax(ax, (7.5, 8))
    ex, dx = 2.5, 8.0
    for x, words, label in ((ex, "source tokens", "input embedding"),
                            (dx, "target tokens (shifted right)", "output embedding")):
        ax.text(x, -0.2, words, ha="center", va="center", fontsize=8.5, style="italic")
        _path(ax, (x, 0.05), (x, 0.6))
        _box(ax, x, 0.9, label, color=_EMB)
        _path(ax, (x, 1.2), (x, 1.72))
        _plus(ax, x, 1.9)
        ax.text(x - 1.9, 1.9, "positional\nencoding", ha="center", va="center", fontsize=7.5)
        _path(ax, (x - 1.3, 1.9), (x - 0.18, 1.9))
    # encoder layer, ×N
    enc_ys = [3.2, 4.1, 5.2, 6.1]
    _path(ax, (ex, 2.08), (ex, enc_ys[0] - 0.3))
    ax.add_patch(Rectangle((ex - 2.15, 2.55), 4.3, 4.0, facecolor="#f4f4f4", edgecolor="grey", zorder=-1))
    _stack(ax, ex, enc_ys, ["multi-head\nself-attention", "add & norm", "feed-forward", "add & norm"],
           [_ATTN, _NORM, _FFN, _NORM], residual_side=-1)
    ax.text(ex - 2.35, 4.5, "N×", ha="right", va="center", fontsize=11, weight="bold")
    ax.text(ex - 2.1, 6.75, "encoder", ha="left", fontsize=9, weight="bold")
    # decoder layer, ×N
    dec_ys = [3.2, 4.1, 5.2, 6.1, 7.2, 8.1]
    _path(ax, (dx, 2.08), (dx, dec_ys[0] - 0.3))
    ax.add_patch(Rectangle((dx - 2.15, 2.55), 4.3, 6.0, facecolor="#f4f4f4", edgecolor="grey", zorder=-1))
    _stack(ax, dx, dec_ys, ["masked multi-head\nself-attention", "add & norm", "multi-head\ncross-attention",
                            "add & norm", "feed-forward", "add & norm"],
           [_ATTN, _NORM, _ATTN, _NORM, _FFN, _NORM], residual_side=1)
    ax.text(dx + 2.35, 5.6, "×N", ha="left", va="center", fontsize=11, weight="bold")
    ax.text(dx - 2.1, 8.75, "decoder", ha="left", fontsize=9, weight="bold")
    ax.text(dx + 2.3, 3.2, "causal mask:\nno peeking\nat later\ntargets", ha="left", va="center", fontsize=7)
    # the encoder's output ("memory") gives the keys and values of every decoder layer's cross-attention
    mid = (ex + dx) / 2 + 0.1
    _path(ax, (ex, 6.4), (ex, 7.1), (mid, 7.1), (mid, 5.2), (dx - 1.5, 5.2), color="tab:red", lw=1.3)
    ax.text(ex + 0.1, 7.25, "encoder output (memory)", ha="left", va="bottom", fontsize=7.5, color="tab:red")
    ax.text(mid + 0.1, 5.3, "K, V", ha="left", va="bottom", fontsize=7.5, color="tab:red")
    ax.text(dx + 0.1, 4.6, "Q", ha="left", va="center", fontsize=7.5)
    # output head
    _path(ax, (dx, 8.4), (dx, 9.1))
    _box(ax, dx, 9.4, "linear (d_model → vocabulary)", color=_OUT)
    _path(ax, (dx, 9.7), (dx, 10.0))
    _box(ax, dx, 10.3, "softmax", color=_OUT)
    _path(ax, (dx, 10.6), (dx, 11.0))
    ax.text(dx, 11.2, "next-token probabilities", ha="center", va="center", fontsize=8.5, style="italic")
    return _finish(ax, (-0.6, 11.2), (-0.5, 11.6), None)


def draw_gpt_block(ax: plt.Axes | None = None) -> plt.Axes:
    """One GPT (GPT-2) block: pre-LN, causal self-attention and an MLP, each added back to the residual stream.

    ``x = x + attn(LN₁(x))`` then ``x = x + MLP(LN₂(x))`` with ``MLP = Linear(d→4d) → GELU → Linear(4d→d)``
    (:class:`bigtut.gpt.model.Block`). The stream (left) carries ``(B, L, d)`` through unchanged in shape.
    """
    ax = new_ax(ax, (7, 6))
    sx, bx = 1.0, 4.2
    ax.add_patch(Rectangle((sx - 0.9, 0.55), 5.6, 7.4, facecolor="#f4f4f4", edgecolor="grey", zorder=-1))
    ax.text(sx, -0.1, "x  (B, L, d)", ha="center", va="center", fontsize=8.5, style="italic")
    for branch_y, top_y, boxes in ((1.0, 3.6, [(1.7, "LayerNorm 1", _NORM, 0.5),
                                                (2.75, "causal (masked)\nself-attention", _ATTN, 0.8)]),
                                   (4.4, 7.4, [(5.1, "LayerNorm 2", _NORM, 0.5),
                                               (6.3, "MLP: Linear d → 4d\nGELU\nLinear 4d → d", _FFN, 1.1)])):
        _path(ax, (sx, branch_y), (bx, branch_y), (bx, boxes[0][0] - boxes[0][3] / 2))
        (y1, t1, c1, h1), (y2, t2, c2, h2) = boxes
        _box(ax, bx, y1, t1, w=2.6, h=h1, color=c1)
        _path(ax, (bx, y1 + h1 / 2), (bx, y2 - h2 / 2))
        _box(ax, bx, y2, t2, w=2.6, h=h2, color=c2)
        _path(ax, (bx, y2 + h2 / 2), (bx, top_y), (sx + 0.18, top_y))
        _plus(ax, sx, top_y)
    _path(ax, (sx, 0.1), (sx, 3.6 - 0.18))
    _path(ax, (sx, 3.6 + 0.18), (sx, 7.4 - 0.18))
    _path(ax, (sx, 7.4 + 0.18), (sx, 8.5))
    ax.text(sx, 8.7, "x  (B, L, d)", ha="center", va="center", fontsize=8.5, style="italic")
    ax.text(sx - 0.3, 5.4, "residual stream", rotation=90, ha="right", va="center", fontsize=8, color="grey")
    ax.text(sx + 5.0, 7.6, "×N", ha="left", va="center", fontsize=11, weight="bold")
    notes = ("x = x + attn(LN₁(x))\nx = x + MLP(LN₂(x))\n\ncausal: position t attends\nonly to positions ≤ t\n\n"
             "after the last block:\nLayerNorm → linear (weight\ntied to the token embedding)\n→ logits (B, L, V)")
    ax.text(sx + 6.1, 4.3, notes, ha="left", va="center", fontsize=8)
    return _finish(ax, (-0.5, 10.6), (-0.5, 9.0), None)


def draw_multihead(ax: plt.Axes | None = None, num_heads: int = 4, d_model: int = 8) -> plt.Axes:
    """Multi-head attention's split and merge: ``(L, d_model)`` → h heads of ``(L, d_head)`` → concat → ``W_O``.

    The projected queries ``Q = x W_Q`` (and likewise K, V) are cut into ``num_heads`` blocks of
    ``d_head = d_model / num_heads`` columns (in code: ``view(B, L, h, d_head).transpose(1, 2)``); each head
    attends on its own block; the outputs are put side by side again (``transpose(1, 2).reshape(B, L, d_model)``,
    head ``i`` in columns ``i·d_head … (i+1)·d_head - 1``) and mixed by the output projection ``W_O``.
    """
    for name, value in (("num_heads", num_heads), ("d_model", d_model)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if d_model % num_heads:
        raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
    d_head, rows, cell_h, width = d_model // num_heads, 4, 0.3, 3.0
    colors = plt.get_cmap("tab10")
    shown = list(range(num_heads)) if num_heads <= 6 else [0, 1, 2, None, num_heads - 1]
    ax = new_ax(ax, (12, 1.2 + 0.8 * len(shown)))
    gap = rows * cell_h + 0.6
    head_y = [(len(shown) - 1 - i) * gap for i in range(len(shown))]  # bottom edge of each head's row
    mid = (head_y[0] + rows * cell_h) / 2  # vertical centre

    def matrix(x, y, n_cols, color_of_col, label):
        col_w = width / d_model
        for c in range(n_cols):
            ax.add_patch(Rectangle((x + c * col_w, y), col_w, rows * cell_h, facecolor=color_of_col(c),
                                   edgecolor="white" if d_model <= 32 else "none", linewidth=0.5))
        ax.add_patch(Rectangle((x, y), n_cols * col_w, rows * cell_h, facecolor="none", edgecolor="black"))
        ax.text(x + n_cols * col_w / 2, y - 0.12, label, ha="center", va="top", fontsize=7.5)

    def head_color(c):
        return (*colors(c // d_head % 10)[:3], 0.75)

    y0 = mid - rows * cell_h / 2
    matrix(0, y0, d_model, head_color, f"$Q = x W_Q$\n(L, d_model={d_model})")
    x_head, x_att, x_out, x_cat, x_fin, att_w = 4.6, 7.95, 10.8, 13.8, 18.4, 3.2
    head_w = width / num_heads
    for row, i in zip(head_y, shown):
        if i is None:
            ax.text(x_att, row + rows * cell_h / 2, "⋮", ha="center", va="center", fontsize=16)
            continue
        centre = row + rows * cell_h / 2
        edge = y0 + rows * cell_h if centre >= mid else y0  # leave/enter a wide matrix on the side facing the head
        _path(ax, (i * head_w + head_w / 2, edge), (x_head - 0.1, centre), lw=0.6)
        matrix(x_head, row, d_head, lambda c, i=i: head_color(i * d_head + c), f"$Q_{{{i + 1}}}$  (L, d_h={d_head})")
        _path(ax, (x_head + head_w + 0.1, centre), (x_att - att_w / 2, centre), lw=0.8)
        _box(ax, x_att, centre, f"head {i + 1}\n$\\mathrm{{softmax}}(Q_{{{i + 1}}} K_{{{i + 1}}}^\\top / "
             f"\\sqrt{{d_h}})\\, V_{{{i + 1}}}$", w=att_w, h=rows * cell_h, color=_ATTN, fontsize=7)
        _path(ax, (x_att + att_w / 2, centre), (x_out - 0.1, centre), lw=0.8)
        matrix(x_out, row, d_head, lambda c, i=i: head_color(i * d_head + c), f"(L, {d_head})")
        _path(ax, (x_out + head_w + 0.1, centre), (x_cat + i * head_w + head_w / 2, edge), lw=0.6)
    matrix(x_cat, y0, d_model, head_color, f"concat\n(L, {d_model})")
    _path(ax, (x_cat + width + 0.1, mid), (x_fin - 0.1, mid))
    ax.text((x_cat + width + x_fin) / 2, mid + 0.1, "$W_O$", ha="center", va="bottom", fontsize=9)
    matrix(x_fin, y0, d_model, lambda c: (0.6, 0.6, 0.6, 0.8), f"output\n(L, {d_model})")
    top = head_y[0] + rows * cell_h + 0.5
    for x, text in ((width / 2, "queries (keys and values\nare split the same way)"),
                    (x_head + head_w / 2, f"split into\nh = {num_heads} heads"), (x_att, "each head\nattends alone"),
                    (x_out + head_w / 2, "head\noutputs"),
                    (x_cat + width / 2, "concatenate"), (x_fin + width / 2, "mix the heads")):
        ax.text(x, top, text, ha="center", va="bottom", fontsize=8, weight="bold")
    return _finish(ax, (-0.3, x_fin + width + 0.3), (-0.8, top + 0.9), None)


def draw_bert_inputs(ax: plt.Axes | None = None, tokens: Sequence[str] | None = None) -> plt.Axes:
    """BERT's input: per token, token + segment + position embeddings, summed, then LayerNorm (and dropout).

    Segment A runs up to and including the first ``[SEP]``, segment B after it (the sentence pair of next-
    sentence prediction). Position ``i`` has its own learned vector. See :class:`bigtut.bert.model.BertEmbeddings`.
    """
    tokens = ["[CLS]", "the", "cat", "[SEP]", "it", "sat", "[SEP]"] if tokens is None else list(tokens)
    if not tokens or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"tokens must be a non-empty sequence of strings, got {tokens!r}")
    first_sep = tokens.index("[SEP]") if "[SEP]" in tokens else len(tokens)
    n, step = len(tokens), 1.45
    ax = new_ax(ax, (1.4 + 1.1 * n, 4.2))
    for i, token in enumerate(tokens):
        x = i * step
        segment = "A" if i <= first_sep else "B"
        ax.text(x, 6.3, token, ha="center", va="center", fontsize=9, weight="bold")
        _box(ax, x, 5.4, f"E({token})", w=1.3, h=0.55, color=_EMB, fontsize=7.5)
        ax.text(x, 4.85, "+", ha="center", va="center", fontsize=11)
        _box(ax, x, 4.3, f"E_{segment}", w=1.3, h=0.55, color=_ATTN if segment == "A" else _OUT, fontsize=7.5)
        ax.text(x, 3.75, "+", ha="center", va="center", fontsize=11)
        _box(ax, x, 3.2, f"P_{i}", w=1.3, h=0.55, color=_FFN, fontsize=7.5)
        _path(ax, (x, 2.9), (x, 2.3))
        _path(ax, (x, 1.7), (x, 1.1))
    for y, label in ((5.4, "token\nembeddings"), (4.3, "segment\nembeddings"), (3.2, "position\nembeddings")):
        ax.text(-1.0, y, label, ha="right", va="center", fontsize=8)
    right = (n - 1) * step
    _box(ax, right / 2, 2.0, "sum  →  LayerNorm  (→ dropout)", w=right + 1.3, h=0.6, color=_NORM)
    ax.text(right / 2, 0.8, "input to the first encoder layer  (B, L, d)", ha="center", va="center",
            fontsize=8.5, style="italic")
    return _finish(ax, (-2.6, right + 0.9), (0.4, 6.7), None)
