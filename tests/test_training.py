import pytest
import torch
from torch import nn

import bigtut
from bigtut.training import History, evaluate, fit, load_checkpoint, lr_lambda, save_checkpoint


def _regression_task():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, generator=generator)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.3
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]

    def loss_fn(model, batch):
        inputs, targets = batch
        return nn.functional.mse_loss(model(inputs).squeeze(-1), targets)

    return batches, loss_fn


def test_fit_learns_a_linear_map_and_records_history():
    bigtut.seed_everything(0)
    batches, loss_fn = _regression_task()
    model = nn.Linear(3, 1)
    before = evaluate(model, loss_fn, batches, torch.device("cpu"))
    history = fit(model, loss_fn, batches, steps=300, lr=0.05, val_batches=batches[:2], eval_every=100,
                  device="cpu", progress=False, grad_clip=1.0, schedule="cosine", warmup_steps=10)
    after = evaluate(model, loss_fn, batches)
    assert after < 1e-3 < before
    assert history.step == list(range(1, 301)) and len(history.train_loss) == 300
    assert history.val_step == [100, 200, 300]
    assert history.seconds > 0


def test_fit_accepts_a_batch_sampler_and_is_reproducible():
    batches, loss_fn = _regression_task()

    def run():
        bigtut.seed_everything(1)
        model = nn.Linear(3, 1)
        sample = lambda: batches[torch.randint(len(batches), ()).item()]  # noqa: E731
        fit(model, loss_fn, sample, steps=20, device="cpu", progress=False)
        return model.weight.detach().clone()

    assert torch.equal(run(), run())


def test_bad_arguments():
    batches, loss_fn = _regression_task()
    with pytest.raises(ValueError, match="steps"):
        fit(nn.Linear(3, 1), loss_fn, batches, steps=0, progress=False)
    with pytest.raises(ValueError, match="schedule"):
        lr_lambda("linear", 10)
    with pytest.raises(ValueError, match="no batches"):
        evaluate(nn.Linear(3, 1), loss_fn, [])


def test_cosine_schedule_warms_up_then_decays_to_ten_percent():
    f = lr_lambda("cosine", steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 100))


def test_checkpoint_round_trip_with_metadata(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    save_checkpoint(model, tmp_path / "m.safetensors", {"width": 8})
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert load_checkpoint(other, tmp_path / "m.safetensors") == {"width": 8}
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError):
        load_checkpoint(nn.Linear(4, 3), tmp_path / "m.safetensors")


def test_smoothed_loss():
    h = History(step=[1, 2, 3], train_loss=[3.0, 1.0, 2.0])
    assert h.smoothed_train_loss(2) == [3.0, 2.0, 1.5]


def test_centred_smoothing_has_no_lag_and_trailing_keeps_its_meaning():
    h = History(step=list(range(1, 201)), train_loss=[1.0] * 100 + [0.0] * 100)  # a drop between step 100 and 101
    centred, trailing = h.smoothed_train_loss(21, centred=True), h.smoothed_train_loss(21)
    assert centred[:90] == [1.0] * 90 and centred[110:] == [0.0] * 90
    assert centred[99] == pytest.approx(11 / 21) and centred[100] == pytest.approx(10 / 21)  # symmetric about it
    assert trailing[110] == pytest.approx(10 / 21)  # the trailing mean crosses half-way 10 steps late
    ramp = History(train_loss=[float(i) for i in range(50)])
    assert ramp.smoothed_train_loss(9, centred=True) == pytest.approx(ramp.train_loss)  # ends too: no bias
    with pytest.raises(ValueError, match="window"):
        h.smoothed_train_loss(0)


def _run_loops(monkeypatch, capfd, mode):
    from bigtut.training import progress_bar

    monkeypatch.setenv("BIGTUT_PROGRESS", mode)
    bar = progress_bar(range(300), desc="loop", mininterval=0)
    for i in bar:
        bar.set_postfix({"loss": f"{i / 100:.3f}"}, refresh=False)
    for _ in progress_bar(range(5), desc="hidden", disable=True):
        pass
    history = fit(nn.Linear(3, 1), _regression_task()[1], _regression_task()[0], steps=25, device="cpu",
                  desc="fit", lr=0.01)
    return capfd.readouterr(), history


def test_text_progress_writes_one_finished_line_per_loop(monkeypatch, capfd):
    captured, _ = _run_loops(monkeypatch, capfd, "text")
    assert captured.out == ""
    lines = captured.err.split("\n")
    assert "\r" not in captured.err and lines[-1] == "" and len(lines) == 3, captured.err
    assert lines[0].startswith("loop: 100%|") and "300/300" in lines[0] and "it/s, loss=2.990]" in lines[0]
    assert lines[1].startswith("fit: 100%|") and "25/25" in lines[1] and "loss=" in lines[1]


def test_text_progress_of_an_interrupted_loop_shows_where_it_stopped(monkeypatch, capfd):
    from bigtut.training import progress_bar

    monkeypatch.setenv("BIGTUT_PROGRESS", "text")
    for i in progress_bar(range(100), desc="early", mininterval=0):
        if i == 9:
            break
    # leaving the loop drops the bar; tqdm closes it (9 iterations finished)
    import gc

    gc.collect()
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "9/100" in err and "\r" not in err


def test_without_the_variable_the_bar_is_tqdm_auto(monkeypatch):
    from tqdm.auto import tqdm

    from bigtut.training import progress_bar

    monkeypatch.delenv("BIGTUT_PROGRESS", raising=False)
    bar = progress_bar(range(3), disable=True)
    assert type(bar) is tqdm


def test_weight_decay_groups_decay_only_weight_matrices():
    """GPT-2 / nanoGPT hygiene: biases, LayerNorm gains and embeddings (a tied head included) are not decayed."""
    from bigtut.gpt import GPT, GPTConfig
    from bigtut.training import weight_decay_groups

    model = GPT(GPTConfig(vocab_size=11, block_size=8, d_model=16, n_layer=2, n_head=2))
    decay, no_decay = weight_decay_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed, kept = {names[id(p)] for p in decay["params"]}, {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decayed.isdisjoint(kept) and decayed | kept == set(names.values())  # every parameter exactly once
    assert {"tok_emb.weight", "pos_emb.weight", "blocks.0.ln_1.weight", "blocks.0.mlp.fc.bias"} <= kept
    assert "blocks.0.mlp.fc.weight" in decayed and "blocks.1.attn.attn.q_proj.weight" in decayed
    assert all(p.dim() == 2 for p in decay["params"])
    with pytest.raises(ValueError, match="weight_decay"):
        weight_decay_groups(model, -0.1)


def test_fit_decays_a_weight_matrix_but_not_its_bias():
    """With a zero loss only weight decay moves a parameter: the weight shrinks, the bias stays put."""
    bigtut.seed_everything(0)
    model = nn.Linear(4, 4)
    weight, bias = model.weight.detach().clone(), model.bias.detach().clone()
    fit(model, lambda m, batch: (m(batch) * 0).sum(), [torch.ones(1, 4)], steps=5, lr=0.1, weight_decay=0.5,
        device="cpu", progress=False)
    torch.testing.assert_close(model.weight.detach(), weight * (1 - 0.1 * 0.5) ** 5)
    torch.testing.assert_close(model.bias.detach(), bias)
