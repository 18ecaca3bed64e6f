"""The token-attribution HTML is self-contained, escapes its input, and colours by sign and size."""

import re

import matplotlib
import numpy as np
import pytest
import torch

from bigtut.explain.render import attribution_color, plot_image_attributions, token_attributions_html

matplotlib.use("Agg")


def test_colours_diverge_from_white():
    assert attribution_color(0.0, 1.0) == "rgb(255, 255, 255)"
    assert attribution_color(1.0, 1.0) == "rgb(33, 102, 172)"  # full blue: for
    assert attribution_color(-1.0, 1.0) == "rgb(178, 24, 43)"  # full red: against
    assert attribution_color(5.0, 1.0) == attribution_color(1.0, 1.0)  # clipped at max_abs
    assert attribution_color(0.3, 0.0) == "rgb(255, 255, 255)"  # nothing to scale by
    with pytest.raises(ValueError, match="finite"):
        attribution_color(float("nan"), 1.0)


def test_html_is_offline_escaped_and_scaled():
    tokens = ["<b>", " the", "&", "\n", "[PAD]"]
    out = token_attributions_html(tokens, torch.tensor([0.5, -1.0, 0.0, 0.25, 9.0]), title="IG <x>",
                                  mask=[1, 1, 1, 1, 0])
    assert out._repr_html_() == str(out)
    assert "<script" not in out and "http" not in out and "@import" not in out  # nothing fetched, nothing run
    assert "&lt;b&gt;" in out and "IG &lt;x&gt;" in out and "&amp;" in out and "⏎" in out
    assert "[PAD]" not in out  # masked positions are left out ...
    assert "-1 " in out and "+1 " in out  # ... and do not set the scale (max |score| of the shown ones)
    titles = re.findall(r'title="([^"]+)"', out)
    assert titles == ["+0.5", "-1", "+0", "+0.25"]
    fixed = token_attributions_html(tokens[:2], np.array([0.5, -1.0]), max_abs=2.0, legend=False)
    assert "against" not in fixed and attribution_color(0.5, 2.0) in fixed
    with pytest.raises(ValueError, match="2 tokens but 3 scores"):
        token_attributions_html(tokens[:2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite"):
        token_attributions_html(tokens[:1], [float("inf")])


def test_image_attributions_side_by_side():
    axes = plot_image_attributions(np.random.rand(8, 8), np.random.randn(8, 8), title="IG")
    assert axes[1].get_title() == "IG"
    lo, hi = axes[1].images[0].get_clim()
    assert lo == -hi  # centred at zero
    with pytest.raises(ValueError, match="both be"):
        plot_image_attributions(np.zeros((8, 8)), np.zeros((4, 4)))
