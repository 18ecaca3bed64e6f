"""bigtut.plots: every picture draws and returns its Axes; the curves show exactly what they claim to."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from bigtut import diagrams, plots  # noqa: E402
from bigtut.training import History, lr_lambda  # noqa: E402

DIAGRAMS = [diagrams.draw_transformer, diagrams.draw_multihead, diagrams.draw_gpt_block, diagrams.draw_bert_inputs,
            plots.plot_label_smoothing, plots.plot_lr_schedule]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(ax):
    return [t.get_text() for t in ax.texts]


@pytest.mark.parametrize("draw", DIAGRAMS, ids=lambda f: f.__name__)
def test_each_picture_draws_on_a_new_or_given_axes(draw):
    ax = draw()
    assert isinstance(ax, plt.Axes) and (ax.patches or ax.lines)
    ax.figure.canvas.draw()  # lays out every text (mathtext included) without error
    _, given = plt.subplots()
    assert draw(ax=given) is given
    assert draw.__doc__


def test_diagrams_name_their_parts():
    joined = " ".join(_texts(diagrams.draw_transformer()))
    for part in ("masked multi-head\nself-attention", "cross-attention", "feed-forward", "add & norm",
                 "positional\nencoding", "softmax", "N×", "×N", "K, V"):
        assert part in joined
    joined = " ".join(_texts(diagrams.draw_gpt_block()))
    for part in ("LayerNorm 1", "causal", "4d", "GELU", "x = x + attn(LN₁(x))"):
        assert part in joined
    texts = _texts(diagrams.draw_bert_inputs())
    assert [t for t in texts if t.startswith("E_")] == ["E_A"] * 4 + ["E_B"] * 3  # segment B after the first [SEP]
    assert "P_6" in texts and any("LayerNorm" in t for t in texts)
    assert "E(dog)" in _texts(diagrams.draw_bert_inputs(tokens=["[CLS]", "dog"]))


def test_multihead_checks_its_sizes_and_abbreviates_many_heads():
    texts = _texts(diagrams.draw_multihead(num_heads=2, d_model=6))
    assert sum(t.startswith("head ") and "\n" in t for t in texts) == 2
    texts = _texts(diagrams.draw_multihead(num_heads=12, d_model=768))
    assert "⋮" in texts and any(t.startswith("head 12\n") for t in texts)
    with pytest.raises(ValueError, match="not divisible"):
        diagrams.draw_multihead(num_heads=3, d_model=8)
    with pytest.raises(ValueError, match="num_heads"):
        diagrams.draw_multihead(num_heads=0)


def test_lr_curve_is_what_the_scheduler_gives_each_step():
    steps, warmup, peak = 120, 15, 3e-3
    ax = plots.plot_lr_schedule(steps=steps, warmup_steps=warmup, schedule="cosine", peak_lr=peak)
    x, y = ax.lines[0].get_data()
    f = lr_lambda("cosine", steps, warmup)
    assert list(x) == list(range(1, steps + 1))
    np.testing.assert_allclose(y, [peak * f(s - 1) for s in x], rtol=0, atol=0)
    # and what LambdaLR (as fit() uses it) sets before each optimizer step
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, f)
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(y, seen, rtol=1e-12)
    _, y = plots.plot_lr_schedule(steps=50, warmup_steps=0, schedule="constant", peak_lr=1.0).lines[0].get_data()
    assert set(y) == {1.0}


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_bars_are_the_target_torch_uses(smoothing):
    k, target = 7, 2
    ax = plots.plot_label_smoothing(num_classes=k, target=target, smoothing=smoothing)
    one_hot = [bar.get_height() for bar in ax.patches[:k]]
    smoothed = torch.tensor([bar.get_height() for bar in ax.patches[k : 2 * k]], dtype=torch.float64)
    assert one_hot == [1.0 if c == target else 0.0 for c in range(k)]
    assert float(smoothed.sum()) == pytest.approx(1.0)
    logits = torch.randn(1, k, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([target]), label_smoothing=smoothing)
    assert float(-(smoothed * logits.log_softmax(-1)[0]).sum()) == pytest.approx(float(expected), abs=1e-12)
    with pytest.raises(ValueError, match="target"):
        plots.plot_label_smoothing(num_classes=3, target=3)


def test_history_curve_is_centred_no_lag_on_a_step():
    n = 200
    history = History(step=list(range(1, n + 1)), train_loss=[2.0] * 100 + [1.0] * 100, val_step=[100, 200],
                      val_loss=[2.0, 1.0])
    ax = plots.plot_history(history, smooth=21)
    raw, smoothed, val = ax.lines
    x, y = smoothed.get_data()
    crossing = x[np.argmax(np.asarray(y) < 1.5)]  # first step where the smoothed curve is below half-way
    assert crossing == 101  # the raw loss drops at step 101; a trailing mean would cross at step 111
    assert "centred" in smoothed.get_label()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [raw.get_label(), smoothed.get_label(), "validation"]


def _contrast(a, b):
    def luminance(rgba):
        rgb = np.asarray(to_rgba(rgba))[:3]
        lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return lin @ [0.2126, 0.7152, 0.0722]

    hi, lo = sorted([luminance(a), luminance(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("cmap", ["Blues", "viridis", "RdBu", "Greys", "magma"])
def test_heatmap_annotations_contrast_with_their_cell(cmap):
    values = np.linspace(0, 1, 30).reshape(5, 6)
    ax = plots.plot_heatmap(values, annotate=True, cmap=cmap, colorbar=False)
    image = ax.images[0]
    assert len(ax.texts) == values.size
    for text in ax.texts:
        col, row = (round(v) for v in text.get_position())
        cell = image.cmap(image.norm(values[row, col]))
        assert _contrast(text.get_color(), cell) >= 4.5, (cmap, values[row, col], text.get_color())
    colors = {t.get_text(): t.get_color() for t in ax.texts}
    if cmap == "Blues":  # light at the bottom, dark at the top: the case that was white on white
        assert colors["0"] == "black" and colors["1"] == "white"
    if cmap == "viridis":
        assert colors["0"] == "white" and colors["1"] == "black"


def test_heatmap_rejects_non_matrices_and_skips_nan():
    with pytest.raises(ValueError, match="2-D"):
        plots.plot_heatmap(np.zeros(3))
    ax = plots.plot_heatmap(np.array([[np.nan, 1.0]]), annotate=True)
    assert _texts(ax) == ["1"]
