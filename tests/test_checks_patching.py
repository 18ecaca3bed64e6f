"""The activation-patching checker passes right answers on seeds 0–2 and catches the usual wrong ones, each with a
message naming the mistake."""

import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut import eval_mode
from bigtut.checks import CheckFailure
from bigtut.checks.patching import check_patch_one_position


# ------------------------------------------------------------------------- right answers (the notebook's solution)
def patch_one_position(model, clean_ids, corrupted_ids, attention_mask, layer, position, target):
    block = model.bert.layers[layer]  # its output: (hidden states (B, L, d), attention weights)
    rows = torch.arange(len(clean_ids))
    kept = {}

    def keep(module, args, output):
        kept["clean"] = output[0][:, position].clone()  # (B, d)

    def patch(module, args, output):
        hidden = output[0].clone()  # (B, L, d)
        hidden[:, position] = kept["clean"]
        return (hidden, *output[1:])

    def difference(ids, hook=None):  # d = logit[target] - logit[1 - target], (B,)
        handle = block.register_forward_hook(hook) if hook else None
        try:
            logits = model(ids, attention_mask=attention_mask)  # (B, 2)
        finally:
            if handle:
                handle.remove()
        return logits[rows, target] - logits[rows, 1 - target]

    with eval_mode(model), torch.no_grad():
        difference(clean_ids, keep)
        return difference(corrupted_ids, patch) - difference(corrupted_ids)


def _forward(model, ids, mask, layer, replace=None):
    """BERT written out; ``replace(hidden)`` acts on block ``layer``'s output. Returns (logits, that output)."""
    bert = model.bert
    x = bert.embeddings(bert.embeddings.token(ids), torch.zeros_like(ids))
    seen = None
    for i, block in enumerate(bert.layers):
        x, _ = block(x, mask.bool()[:, None, None, :])
        if i == layer:
            seen = x
            x = replace(x) if replace else x
    return model.classifier(torch.tanh(bert.pooler(x[:, 0]))), seen


def patched_by_hand(model, clean_ids, corrupted_ids, attention_mask, layer, position, target):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, clean = _forward(model, clean_ids, attention_mask, layer)

            def swap(x):
                x = x.clone()
                x[:, position] = clean[:, position]
                return x

            patched, _ = _forward(model, corrupted_ids, attention_mask, layer, swap)
            corrupted, _ = _forward(model, corrupted_ids, attention_mask, layer)
    finally:
        model.train(was_training)
    d = lambda z: z.gather(1, target[:, None])[:, 0] - z.gather(1, 1 - target[:, None])[:, 0]  # noqa: E731
    return (d(patched) - d(corrupted)).tolist()  # a list of Python floats is read in float64


def patched_in_place(model, clean_ids, corrupted_ids, attention_mask, layer, position, target):
    """The hook writes into the block's output and returns None; the clean activation is kept without a clone."""
    block = model.bert.layers[layer]
    rows = torch.arange(len(clean_ids))
    kept = {}

    def d(ids, hook):
        handle = block.register_forward_hook(hook)
        try:
            logits = model(ids, attention_mask=attention_mask)  # (B, 2)
        finally:
            handle.remove()
        return logits[rows, target] - logits[rows, 1 - target]

    def patch(module, args, output):
        output[0][:, position] = kept["clean"][:, position]

    with eval_mode(model), torch.no_grad():
        d(clean_ids, lambda module, args, output: kept.update(clean=output[0]))
        return d(corrupted_ids, patch) - d(corrupted_ids, lambda *_: None)


def patched_before_the_last_norm(model, clean_ids, corrupted_ids, attention_mask, layer, position, target):
    """The residual entering the block's last LayerNorm (post-LN), patched at `position`: a LayerNorm acts on each
    position alone, so this is the block's output patched; float32 at the end (its rounding is harmless here)."""
    norm = model.bert.layers[layer].norm2
    rows = torch.arange(len(clean_ids))
    kept = {}

    def patch(module, args):
        x = args[0].clone()
        x[:, position] = kept["clean"]
        return (x,)

    def log_odds(ids, hook):  # log p(target) − log p(1 − target) = the logit difference
        handle = norm.register_forward_pre_hook(hook)
        try:
            logp = model(ids, attention_mask=attention_mask).log_softmax(-1)  # (B, 2)
        finally:
            handle.remove()
        return logp[rows, target] - logp[rows, 1 - target]

    with eval_mode(model), torch.no_grad():
        log_odds(clean_ids, lambda module, args: kept.update(clean=args[0][:, position].clone()))
        return (log_odds(corrupted_ids, patch) - log_odds(corrupted_ids, lambda *_: None)).float()


RIGHT = [patch_one_position, patched_by_hand, patched_in_place, patched_before_the_last_norm]


@pytest.mark.parametrize("solution", RIGHT, ids=lambda s: s.__name__)
def test_checker_passes_the_right_answer_on_seeds_0_to_2(solution, capsys):
    assert_passes_on_seeds(check_patch_one_position, solution, capsys)


def test_committed_solution_prints_the_committed_pass_line(capsys):
    check_patch_one_position(patch_one_position, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS patch_one_position: random 2- and 4-layer BERT classifiers, one block output at one position, padding, "
        "eval mode, no grad, no hook left"]


# ------------------------------------------------------------------------------------------- wrong answers
def stub(*args):
    raise NotImplementedError("Exercise: replace this line with your code")


def _variant(*, where="one", hook="output", index=None, value="restored", mask=True, swap_runs=False, keep_hook=False,
             mode="eval", grad=False, in_place=False, token=False, clean_mask=True, site=None):
    """A wrong patch_one_position: ``where`` which cells are patched, ``hook`` on the block's input or output,
    ``index`` of another block, the returned ``value``, the mask dropped, the runs swapped, the hook kept, the
    model left in training mode or run with autograd, the caller's ids changed in place, the token patched, the
    clean run without the mask, ``site`` another module of the block."""
    def wrong(model, clean_ids, corrupted_ids, attention_mask, layer, position, target):
        block = model.bert.layers[layer if index is None else index(layer)]
        block = block if site is None else getattr(block, site)
        rows = torch.arange(len(clean_ids))
        attended = attention_mask if mask else None
        source, into = (corrupted_ids, clean_ids) if swap_runs else (clean_ids, corrupted_ids)
        kept = {}

        def cells(x):
            everything = slice(None)
            return {"one": (everything, position), "layer": (everything,), "row": (position,),
                    "after": (everything, slice(position, None)), "row 0": (0, position)}[where]

        def keep(module, args, output=None):
            kept["x"] = (args[0] if hook == "input" else output[0]).clone()

        def patch(module, args, output=None):
            x = (args[0] if hook == "input" else output[0]).clone()
            x[cells(x)] = kept["x"][cells(x)]
            return (x, *args[1:]) if hook == "input" else (x, *output[1:])

        register = block.register_forward_pre_hook if hook == "input" else block.register_forward_hook

        def logits(ids, fn=None, remove=True, mask=True):
            handle = register(fn) if fn else None
            out = model(ids, attention_mask=attended if mask else None)
            if handle and remove:
                handle.remove()
            return out

        def d(z):
            if value == "probability":
                return z.softmax(-1)[rows, target]
            if value == "log probability":
                return z.log_softmax(-1)[rows, target]
            if value == "target logit":
                return z[rows, target]
            return z[rows, target] - z[rows, 1 - target]

        def run():
            if token:
                if in_place:
                    before = d(logits(corrupted_ids))
                    corrupted_ids[:, position] = clean_ids[:, position]  # the caller's ids overwritten
                    return d(logits(corrupted_ids)) - before
                ids = corrupted_ids.clone()
                ids[:, position] = clean_ids[:, position]
                return d(logits(ids)) - d(logits(corrupted_ids))
            logits(source, keep, mask=clean_mask)
            corrupted = d(logits(into))
            patched = d(logits(into, patch, remove=not keep_hook))
            return {"restored": patched - corrupted, "patched": patched, "flipped": corrupted - patched,
                    "probability": patched - corrupted, "target logit": patched - corrupted,
                    "log probability": patched - corrupted}[value]

        if mode == "train":
            with torch.no_grad():
                return run()
        if mode == "encoder only":
            model.bert.eval()  # the classifier's dropout stays on
            with torch.no_grad():
                return run()
        model.eval()
        if grad:
            return run().detach()
        with torch.no_grad():
            return run()

    return wrong


WRONG = {
    "whole layer": (_variant(where="layer"), "whole layer was patched"),
    "every position from position on": (_variant(where="after"), r"every position from `position` on"),
    "the batch row": (_variant(where="row"), "batch row `position` was patched"),
    "the block's input (a pre-hook)": (_variant(hook="input"), "block's input was patched"),
    "the next block": (_variant(index=lambda layer: layer + 1), "next block's output was patched"),
    "d(patched)": (_variant(value="patched"), r"d\(patched\) was returned"),
    "sign flipped": (_variant(value="flipped"), "sign is flipped"),
    "runs swapped": (_variant(swap_runs=True), "runs were swapped"),
    "probability": (_variant(value="probability"), "probabilities were compared"),
    "target logit": (_variant(value="target logit"), "target's logit alone"),
    "mask ignored": (_variant(mask=False), "attention mask was ignored"),
    "hook kept": (_variant(keep_hook=True), "hook was left on the model"),
    "training mode": (_variant(mode="train"), "ran in training mode"),
    "autograd": (_variant(grad=True), "autograd on"),
    "token patched": (_variant(token=True), "token was patched"),
    "token patched in place": (_variant(token=True, in_place=True), "changed its input `corrupted_ids` in place"),
    "row 0 only": (_variant(where="row 0"), "only row 0 was patched"),
    "attention sublayer": (_variant(site="self_attn"), "attention sublayer's output was patched"),
    "log-probability": (_variant(value="log probability"), "log-probabilities of the target were compared"),
    "clean run without mask": (_variant(clean_mask=False), "clean run had no attention mask"),
    "model.bert.eval() only": (_variant(mode="encoder only"), r"ran in training mode.*model\.bert\.eval\(\)"),
}


@pytest.mark.parametrize("label", list(WRONG))
def test_wrong_answers_are_named(label):
    wrong, message = WRONG[label]
    assert_fails_naming(check_patch_one_position, wrong, message)


def test_stub_and_bad_candidates_fail():
    assert_fails_naming(check_patch_one_position, stub, "not implemented yet")
    assert_fails_naming(check_patch_one_position, 3, "expected a function")


def test_the_course_function_is_refused():
    def calls_the_course(model, clean_ids, corrupted_ids, attention_mask, layer, position, target):
        from bigtut.explain.patching import activation_patching

        result = activation_patching(model, clean_ids, corrupted_ids, attention_mask, target=target,
                                     layers=[layer + 1])
        return torch.as_tensor(result.attributions[:, 0, position])

    assert_fails_naming(check_patch_one_position, calls_the_course, "course's own answer")


def test_a_model_converted_to_float32_is_named():
    def converted(model, *args):
        return patch_one_position(model.float(), *args)

    assert_fails_naming(check_patch_one_position, converted, "converted to another dtype")


def test_batch_mean_is_named():
    def batch_mean(*args):
        return patch_one_position(*args).mean()

    with pytest.raises(CheckFailure, match="do not average over the batch"):
        check_patch_one_position(batch_mean, seed=0)
