"""Per-step attributions of a continuation: equal to captum's LLM attribution on the same weights in Hugging Face's
GPT2LMHeadModel, lower triangular, complete, batch- and chunk-invariant, and refusing bad input by name."""

import numpy as np
import pytest
import torch

from bigtut.explain.generation import (
    generation_integrated_gradients,
    generation_kernel_shap,
    generation_occlusion,
)
from bigtut.explain.generation_words import CaptumTokenizer, word_scores
from bigtut.gpt import GPT, GPTConfig, gpt_to_hf
from bigtut.tokenizers import CharTokenizer

CHARS = "abcdefghijk"  # ids 0..10


def tiny_gpt(seed=0, block_size=16):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=len(CHARS), block_size=block_size, n_layer=2, n_head=2, d_model=8)).double()
    with torch.no_grad():  # larger weights than GPT-2's 0.02: log-probabilities that vary with the input
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(1)
    return tiny_gpt(), torch.randint(0, len(CHARS), (2, 5)), torch.randint(0, len(CHARS), (2, 4))


def log_prob(model, ids, P, t, token):
    """F_t by hand: log p(token | ids[:P+t]) from one plain forward of the prefix."""
    with torch.no_grad():
        return model(ids[None, :P + t]).logits[0, -1].log_softmax(-1)[token].item()


# ----------------------------------------------------------------------------------------------- captum equality
def test_ig_equals_captum_llm_gradient_attribution(case):
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    model, prompt, target = case
    hf = gpt_to_hf(model)
    tok = CaptumTokenizer(CharTokenizer(list(CHARS)))
    ours = generation_integrated_gradients(model, prompt[:1], target=target[:1], baseline=0, prompt_only=True,
                                           captum_compatible=True)
    llm = LLMGradientAttribution(LayerIntegratedGradients(hf, hf.transformer.wte), tok)
    theirs = llm.attribute(TextTokenInput(tok.decode(prompt[0]), tok), target=target[0]).token_attr  # (T, P)
    np.testing.assert_allclose(ours.attributions[0, :, :5], theirs.double().numpy(), atol=1e-10, rtol=0)
    assert not ours.attributions[0, :, 5:].any()  # prompt_only: the written tokens keep their embedding


@pytest.mark.parametrize("forward_in_tokens", [True, False])
def test_occlusion_equals_captum_llm_feature_ablation(case, forward_in_tokens):
    # use_cached_outputs=False: captum's default KV-cache path feeds GPT2LMHeadModel (transformers 5.x) position
    # ids past n_positions (IndexError in wpe); token by token without the cache is the same computation.
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput

    model, prompt, target = case
    hf = gpt_to_hf(model)
    tok = CaptumTokenizer(CharTokenizer(list(CHARS)))
    ours = generation_occlusion(model, prompt[:1], target=target[:1], absent="mask", mask_id=0, prompt_only=True)
    llm = LLMAttribution(FeatureAblation(hf), tok)
    result = llm.attribute(TextTokenInput(tok.decode(prompt[0]), tok), target=target[0],
                           forward_in_tokens=forward_in_tokens, use_cached_outputs=False)
    np.testing.assert_allclose(ours.attributions[0, :, :5], result.token_attr.double().numpy(), atol=1e-5, rtol=0)


def test_occlusion_of_probabilities_equals_captum_prob_target(case):
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput

    model, prompt, target = case
    tok = CaptumTokenizer(CharTokenizer(list(CHARS)))
    ours = generation_occlusion(model, prompt[1:], target=target[1:], absent="mask", mask_id=4, prompt_only=True,
                                probabilities=True)
    llm = LLMAttribution(FeatureAblation(gpt_to_hf(model)), tok, attr_target="prob")
    result = llm.attribute(TextTokenInput(tok.decode(prompt[1]), tok, baselines=4), target=target[1],
                           forward_in_tokens=False)
    np.testing.assert_allclose(ours.attributions[0, :, :5], result.token_attr.double().numpy(), atol=1e-6, rtol=0)


def test_signatures_keep_the_family_pattern():
    from test_explain_family import pattern_violations

    for method in (generation_integrated_gradients, generation_occlusion, generation_kernel_shap):
        assert pattern_violations(method) == [], method.__name__


# ----------------------------------------------------------------------------------------------- properties
def test_lower_triangle_and_ig_completeness(case):
    model, prompt, target = case
    P, T = prompt.shape[1], target.shape[1]
    result = generation_integrated_gradients(model, prompt, target=target, baseline="zero", n_steps=64)
    assert result.attributions.shape == (2, T, P + T)
    for t in range(T):
        assert not result.attributions[:, t, P + t:].any()
    assert np.abs(result.delta).max() < 1e-6  # Gauss-Legendre, 64 nodes, a smooth model
    ids = torch.cat([prompt, target], 1)
    expected = [[log_prob(model, ids[b], P, t, int(target[b, t])) for t in range(T)] for b in range(2)]
    np.testing.assert_allclose(result.output, expected, atol=1e-12)
    # the baseline's value: every position before the step at zero embedding
    with torch.no_grad():
        zero = model(inputs_embeds=torch.zeros(2, P + T, 8, dtype=torch.float64)).logits.log_softmax(-1)
    base = np.array([[zero[b, P + t - 1, target[b, t]].item() for t in range(T)] for b in range(2)])
    np.testing.assert_allclose(result.attributions.sum(-1) - result.delta, result.output - base, atol=1e-12)


def test_contrastive_ig_is_complete(case):
    model, prompt, target = case
    contrast = (target + 1) % len(CHARS)
    result = generation_integrated_gradients(model, prompt, target=target, contrast=contrast, baseline=3, n_steps=64)
    a = generation_integrated_gradients(model, prompt, target=target, baseline=3, n_steps=64)
    assert np.abs(result.delta).max() < 1e-6
    padded = generation_integrated_gradients(model, prompt, target=target, contrast=contrast, baseline="pad",
                                             pad_id=3, n_steps=64)
    np.testing.assert_allclose(padded.attributions, result.attributions, atol=1e-12)
    ids = torch.cat([prompt, target], 1)
    P = prompt.shape[1]
    b_out = [[log_prob(model, ids[b], P, t, int(contrast[b, t])) for t in range(4)] for b in range(2)]
    np.testing.assert_allclose(result.output, a.output - np.array(b_out), atol=1e-12)


def test_occlusion_is_a_plain_leave_one_out_loop(case):
    model, prompt, target = case
    ids, P, T = torch.cat([prompt, target], 1), prompt.shape[1], target.shape[1]
    for absent in ("delete", "mask", "pad"):
        result = generation_occlusion(model, prompt, target=target, absent=absent, mask_id=2)
        expected = np.zeros((2, T, P + T))
        for b in range(2):
            for t in range(T):
                full = log_prob(model, ids[b], P, t, int(target[b, t]))
                for j in range(P + t):
                    if absent == "delete":
                        gone = log_prob(model, torch.cat([ids[b, :j], ids[b, j + 1:]]), P - 1, t, int(target[b, t]))
                    elif absent == "mask":
                        gone = log_prob(model, torch.where(torch.arange(P + T) == j, 2, ids[b]), P, t,
                                        int(target[b, t]))
                    elif j == P + t - 1:
                        continue  # "pad" never hides a step's read token from that step
                    else:
                        keep = (torch.arange(P + t) != j).long()[None]
                        with torch.no_grad():
                            logits = model(ids[b, None, :P + t], attention_mask=keep).logits[0, -1]
                        gone = logits.log_softmax(-1)[target[b, t]].item()
                    expected[b, t, j] = full - gone
        np.testing.assert_allclose(result.attributions, expected, atol=1e-12, err_msg=absent)


def test_occlusion_contrast_is_a_difference_of_two_runs(case):
    model, prompt, target = case
    contrast = (target + 3) % len(CHARS)
    both = generation_occlusion(model, prompt, target=target, contrast=contrast)
    a = generation_occlusion(model, prompt, target=target)
    # the alternative's own run: the same text (teacher forcing on target), read for the contrast tokens
    b_run = generation_occlusion(model, prompt, target=contrast, steps=[0])
    np.testing.assert_allclose(both.attributions[:, 0], a.attributions[:, 0] - b_run.attributions[:, 0], atol=1e-12)
    ids, P = torch.cat([prompt, target], 1), prompt.shape[1]
    for t in range(4):  # later steps: the difference against a plain leave-one-out of log p(b)
        for j in range(P + t):
            kept = torch.cat([ids[0, :j], ids[0, j + 1:]])
            drop_b = log_prob(model, ids[0], P, t, int(contrast[0, t])) - log_prob(model, kept, P - 1, t,
                                                                                   int(contrast[0, t]))
            assert abs(both.attributions[0, t, j] - (a.attributions[0, t, j] - drop_b)) < 1e-12


@pytest.mark.parametrize("method", ["ig", "occlusion", "shap"])
def test_row_alone_equals_row_in_batch_and_batch_size_invariance(case, method):
    model, prompt, target = case
    run = {"ig": lambda **k: generation_integrated_gradients(model, baseline="zero", n_steps=8, **k),
           "occlusion": lambda **k: generation_occlusion(model, **k),
           "shap": lambda **k: generation_kernel_shap(model, **k)}[method]
    batch = run(input_ids=prompt, target=target)
    alone = run(input_ids=prompt[1:], target=target[1:])
    chunked = run(input_ids=prompt, target=target, batch_size=3)
    np.testing.assert_allclose(alone.attributions[0], batch.attributions[1], atol=1e-12)
    np.testing.assert_allclose(chunked.attributions, batch.attributions, atol=1e-12)
    subset = run(input_ids=prompt, target=target, steps=[3, 1])
    np.testing.assert_allclose(subset.attributions, batch.attributions[:, [3, 1]], atol=1e-12)


def test_kernel_shap_is_efficient_and_exact_matches_sampled(case):
    model, prompt, target = case
    for absent, m in (("delete", 4), ("mask", 5), ("pad", 4)):
        exact = generation_kernel_shap(model, prompt, target=target, absent=absent, mask_id=2)
        np.testing.assert_allclose(exact.attributions.sum(-1), exact.output - exact.base_value, atol=1e-10)
        assert not exact.attributions[..., m:].any()  # the continuation (and the kept last prompt token) play not
        assert exact.n_evaluations == 2 * 2**m  # the steps share every coalition
    kernel = generation_kernel_shap(model, prompt, target=target, exact_up_to=0)  # 4 players: every coalition
    exact = generation_kernel_shap(model, prompt, target=target)
    np.testing.assert_allclose(kernel.attributions, exact.attributions, atol=1e-10)


# ----------------------------------------------------------------------------------------------- words
def test_word_scores_sum_rule():
    tokens = ["def", " f", "(x", "):", "\n", " ret", "urn"]
    scores = np.array([[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]])
    words = word_scores(scores, tokens)
    assert words.words == ["def", "f", "(", "x", "):", "return"]
    np.testing.assert_allclose(words.scores, [[1.0, 1.0, 2.0, 2.0, 8.0, 24.0 + 64.0]])
    np.testing.assert_allclose(words.scores.sum(-1) + words.whitespace, scores.sum(-1))
    assert words.spans[0] == (0, 3)
    np.testing.assert_allclose(word_scores(scores[0], tokens, rule="max").scores[-1], 64.0)


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, match", [
    ({"target": None}, ValueError, "target= is required"),
    ({"target": torch.zeros(1, 0, dtype=torch.long)}, ValueError, "target is empty"),
    ({"target": torch.zeros(1, 3)}, TypeError, "encode a text"),
    ({"target": "abc"}, TypeError, "encode a text"),
    ({"target": torch.tensor([1, 2])}, ValueError, r"batch dimension"),
    ({"target": torch.zeros(2, 3, dtype=torch.long)}, ValueError, r"shaped \(1, T\)"),
    ({"input_ids": torch.zeros(1, 0, dtype=torch.long)}, ValueError, "prompt input_ids is empty"),
    ({"target": torch.zeros(1, 14, dtype=torch.long)}, ValueError, r"block_size=16; keep the last 2 prompt tokens"),
    ({"contrast": torch.tensor([4, 2, 5])}, ValueError, r"contrast equals target at steps \[1\]"),
    ({"steps": [0, 3]}, ValueError, r"steps must lie in \[0, 3\)"),
    ({"steps": []}, TypeError, "non-empty list"),
    ({"steps": 1}, TypeError, "list of step indices"),
    ({"attention_mask": torch.tensor([[1, 1, 1, 0, 1]])}, ValueError, "separate calls"),
    ({"target": torch.tensor([[1, 99, 2]])}, ValueError, r"token ids in \[0, 11\)"),
])
@pytest.mark.parametrize("method", [generation_integrated_gradients, generation_occlusion, generation_kernel_shap])
def test_bad_input_is_refused_by_name(method, kwargs, error, match):
    model = tiny_gpt()
    args = {"input_ids": torch.tensor([[1, 2, 3, 4, 5]]), "target": torch.tensor([[1, 2, 3]]), **kwargs}
    extra = {"baseline": 0} if method is generation_integrated_gradients else {}
    with pytest.raises(error, match=match):
        method(model, args.pop("input_ids"), args.pop("attention_mask", None), **args, **extra)


def test_method_specific_refusals():
    model, prompt, target = tiny_gpt(), torch.tensor([[1]]), torch.tensor([[2, 3]])
    with pytest.raises(ValueError, match="pad_id="):
        generation_integrated_gradients(model, prompt, target=target)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        generation_occlusion(model, prompt, target=target)
    with pytest.raises(ValueError, match="no player"):
        generation_kernel_shap(model, prompt, target=target, absent="pad")
    with pytest.raises(ValueError, match="mask_id="):
        generation_occlusion(model, prompt, target=target, absent="mask")
    with pytest.raises(ValueError, match="absent must be"):
        generation_occlusion(model, prompt, target=target, absent="zero")
    with pytest.raises(ValueError, match="n_samples=3 is too small"):
        generation_kernel_shap(model, torch.arange(8)[None], target=target, exact_up_to=2, n_samples=3)
    with pytest.raises(TypeError, match="sequence of strings"):
        word_scores(np.zeros(3), "abc")
    with pytest.raises(ValueError, match="one score per token"):
        word_scores(np.zeros(2), ["a", "b", "c"])


def test_encode_text_reads_back_exactly():
    from bigtut.explain import encode_text
    from bigtut.tokenizers import CharTokenizer

    tok = CharTokenizer(list("ab ()"), ["<pad>"], unk_token="<unk>")
    ids = encode_text(tok, "ab (a)")
    assert ids.shape == (1, 6) and tok.decode(ids[0].tolist()) == "ab (a)"
    with pytest.raises(ValueError, match=r"\['c'\] are not in its vocabulary"):
        encode_text(tok, "abc", name="target")
