"""Bad input to bigtut.explain: every public function refuses wrong shapes, dtypes, NaN/inf, empty batches,
out-of-range targets/positions/fractions and models returning the wrong shape with a ValueError/TypeError that
comes from bigtut and names the argument -- never an error from deep inside torch/NumPy, never a silent answer.

Each row: (what, the call as source text, the exception type, a regex its message must match). The calls are
evaluated against the small models and arrays of ``namespace``."""

import re
import traceback

import numpy as np
import pytest
import torch
from torch import nn

import bigtut.explain as E
from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.gpt import GPT, GPTConfig
from bigtut.tokenizers import CharTokenizer


def namespace() -> dict:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()
    bert = BertForSequenceClassification(BertConfig(vocab_size=30, max_len=8, d_model=16, num_layers=2,
                                                    num_heads=2, d_ff=32, num_labels=3, pad_id=0,
                                                    dropout=0.0)).double().eval()
    x = torch.randn(3, 4, dtype=torch.float64)  # (B, M)
    nan_x = x.clone()
    nan_x[0, 0] = float("nan")
    ids = torch.randint(3, 30, (2, 6))
    gpt = GPT(GPTConfig(vocab_size=30, block_size=16, n_layer=1, n_head=2, d_model=16)).double().eval()
    return dict(
        chars=CharTokenizer(list("abcdefghijklmnopqrstuvwxyz "), ["<pad>"], unk_token="<unk>"),
        E=E, np=np, nn=nn, torch=torch, mlp=mlp, bert=bert, gpt=gpt, x=x, nan_x=nan_x, ids=ids,
        mask=torch.ones_like(ids),
        bg=np.random.default_rng(0).normal(size=(5, 4)),
        fewer=lambda z: mlp(z)[:-1], wrong3d=lambda z: mlp(z)[:, None, :],
        scores=np.random.default_rng(1).normal(size=(2, 6)),
        att=[torch.softmax(torch.randn(2, 2, 6, 6), -1)],
    )


CASES = [
    ('IG empty', 'E.integrated_gradients(mlp, x[:0], target=0)', ValueError, 'inputs must'),
    ('IG fewer rows', 'E.integrated_gradients(fewer, x, target=0)', ValueError, 'the model returned'),
    ('IG 3d out', 'E.integrated_gradients(wrong3d, x, target=0)', ValueError, 'the model must'),
    ('IG nan', 'E.integrated_gradients(mlp, nan_x, target=0)', ValueError, 'inputs must'),
    ('IG baseline nan', 'E.integrated_gradients(mlp, x, baseline=nan_x, target=0)', ValueError, 'baseline must'),
    ('IG baseline inf number', 'E.integrated_gradients(mlp, x, baseline=float("inf"), target=0)',
     ValueError, 'baseline must'),
    ('IG baseline str', 'E.integrated_gradients(mlp, x, baseline="zero", target=0)', TypeError, 'baseline must'),
    ('IG target float', 'E.integrated_gradients(mlp, x, target=1.0)', TypeError, 'target must'),
    ('IG target neg', 'E.integrated_gradients(mlp, x, target=-1)', ValueError, 'target must'),
    ('IG target bool', 'E.integrated_gradients(mlp, x, target=True)', TypeError, 'target must'),
    ('IG target tensor float', 'E.integrated_gradients(mlp, x, target=torch.tensor([0., 1., 2.]))',
     TypeError, 'target must'),
    ('IG n_steps float', 'E.integrated_gradients(mlp, x, target=0, n_steps=2.5)', ValueError, 'n_steps must'),
    ('IG method None', 'E.integrated_gradients(mlp, x, target=0, method=None)',
     ValueError, 'unknown integration method None; choose '),
    ('IG captum_compatible str', 'E.integrated_gradients(mlp, x, target=0, captum_compatible="yes")',
     TypeError, 'captum_compatible must'),
    ('IG forward_kwargs bad', 'E.integrated_gradients(mlp, x, target=0, forward_kwargs=5)',
     TypeError, 'forward_kwargs must'),
    ('IG list inputs', 'E.integrated_gradients(mlp, [[1.0, 2, 3, 4]], target=0)', TypeError, 'inputs must'),
    ('IG model int out', 'E.integrated_gradients(lambda z: mlp(z).long(), x, target=0)',
     ValueError, "the model's output does not depend on it"),
    ('IG f not callable', 'E.integrated_gradients(5, x, target=0)', TypeError, 'f must'),
    ('rule n bool', 'E.integration_rule("riemann_left", True)', ValueError, 'n_steps must'),
    ('rule bad', 'E.integration_rule("foo", 3)', ValueError, "unknown integration method 'foo'; choose"),
    ('rule captum str', 'E.integration_rule("riemann_left", 3, captum_compatible="x")',
     TypeError, 'captum_compatible must'),
    ('tokIG mask 2', 'E.token_integrated_gradients(bert, ids, mask * 2, target=0)', ValueError, 'attention_mask must'),
    ('tokIG keep_ids str', 'E.token_integrated_gradients(bert, ids, mask, target=0, keep_ids="ab")',
     TypeError, 'keep_ids must'),
    ('tokIG keep_ids float', 'E.token_integrated_gradients(bert, ids, mask, target=0, keep_ids=[1.5])',
     TypeError, 'keep_ids must'),
    ('tokIG pad_id neg', 'E.token_integrated_gradients(bert, ids, mask, target=0, pad_id=-1)',
     ValueError, 'pad_id must'),
    ('tokIG tt ids float', 'E.token_integrated_gradients(bert, ids, mask, target=0, token_type_ids=ids.double())',
     ValueError, 'token_type_ids must'),
    ('tokIG ids out of vocab', 'E.token_integrated_gradients(bert, ids + 100, mask, target=0)',
     ValueError, 'input_ids must'),
    ('tokIG mask float half', 'E.token_integrated_gradients(bert, ids, mask * 0.5, target=0)',
     ValueError, 'attention_mask must'),
    ('tokIG mask numpy', 'E.token_integrated_gradients(bert, ids, mask.numpy(), target=0)',
     TypeError, 'attention_mask must'),
    ('tokIG baseline ids float', 'E.token_integrated_gradients(bert, ids, mask, target=0, baseline=ids.double())',
     TypeError, 'input_ids must'),
    ('gxi target 5', 'E.gradient_x_input(bert, ids, mask, target=5)', ValueError, 'target must'),
    ('gxi position on clf', 'E.gradient_x_input(bert, ids, mask, target=0, position=1)', ValueError, 'position= only'),
    ('gxi no get_input_embeddings', 'E.gradient_x_input(mlp, ids, mask, target=0)', TypeError, 'model must'),
    ('gnorm probs str', 'E.gradient_norm(bert, ids, mask, target=0, probabilities="no")',
     TypeError, 'probabilities must'),
    ('rollout head bad', 'E.rollout_scores(bert, ids, mask, head_reduction="sum")', ValueError, 'head_reduction must'),
    ('rollout layer str', 'E.raw_attention_scores(bert, ids, mask, layer="1")', ValueError, 'layer must'),
    ('rollout residual int', 'E.rollout_scores(bert, ids, mask, residual=1)', TypeError, 'residual must'),
    ('attention_rollout mask shape', 'E.attention_rollout(att, mask[:, :3])', ValueError, 'attention_mask must'),
    ('attention_rollout mask 2', 'E.attention_rollout(att, mask * 2)', ValueError, 'attention_mask must'),
    ('attention_rollout not list', 'E.attention_rollout(att[0])', ValueError, 'attentions must'),
    ('attention_rollout 3d', 'E.attention_rollout([att[0][0]])', ValueError, "every layer's attention must"),
    ('model_attentions mlp', 'E.model_attentions(mlp, ids, mask)', TypeError, 'model must'),
    ('exact M=25', 'E.exact_shapley(lambda z: z.sum(1), np.zeros((1, 25)), background=np.ones((2, 25)))',
     ValueError, 'exact_shapley enumerates'),
    ('exact bg 1d', 'E.exact_shapley(mlp, x.numpy(), background=bg[0], target=0)', ValueError, 'background must'),
    ('exact bg empty', 'E.exact_shapley(mlp, x.numpy(), background=bg[:0], target=0)', ValueError, 'background must'),
    ('exact bg int', 'E.exact_shapley(mlp, x.numpy(), background=bg.astype(int), target=0)',
     TypeError, 'background must'),
    ('kernel n_samples 0', 'E.kernel_shap(mlp, x.numpy(), background=bg, target=0, n_samples=0)',
     ValueError, 'n_samples must'),
    ('kernel seed neg', 'E.kernel_shap(mlp, x.numpy(), background=bg, target=0, seed=-1)', ValueError, 'seed must'),
    ('kernel seed float', 'E.kernel_shap(mlp, x.numpy(), background=bg, target=0, seed=1.5)', ValueError, 'seed must'),
    ('perm n 0', 'E.permutation_shap(mlp, x.numpy(), background=bg, target=0, n_permutations=0)',
     ValueError, 'n_permutations must'),
    ('coalition size neg', 'E.coalition_weight(-1, 3)', ValueError, 'size must'),
    ('coalition size>=n', 'E.coalition_weight(3, 3)', ValueError, 'size must'),
    ('coalition float', 'E.coalition_weight(1.0, 3)', ValueError, 'size must'),
    ('tokshap mask no id', 'E.token_shap(bert, ids, mask, target=0, absent="mask")',
     ValueError, "absent='mask' replaces"),
    ('tokshap mask_id big', 'E.token_shap(bert, ids, mask, target=0, absent="mask", mask_id=99)',
     ValueError, 'mask_id must'),
    ('tokshap exact_up_to 30', 'E.token_shap(bert, ids, mask, target=0, mask_id=2, exact_up_to=30)',
     ValueError, 'exact_up_to must'),
    ('tokshap keep_ids bad', 'E.token_shap(bert, ids, mask, target=0, mask_id=2, keep_ids=[None])',
     TypeError, 'keep_ids must'),
    ('tokshap pad no keep', 'E.token_shap(bert, ids, mask, target=0, absent="pad")',
     ValueError, "absent='pad' with every token a player leaves"),
    ('lime_tab n 2', 'E.lime_tabular(mlp, x.numpy(), training_data=bg, target=0, n_samples=2)',
     ValueError, 'n_samples must'),
    ('lime_tab around', 'E.lime_tabular(mlp, x.numpy(), training_data=bg, target=0, sample_around="x")',
     ValueError, 'sample_around must'),
    ('lime_tab discretize', 'E.lime_tabular(mlp, x.numpy(), training_data=bg, target=0, discretize="decile")',
     ValueError, 'discretize must'),
    ('lime_tab fs', 'E.lime_tabular(mlp, x.numpy(), training_data=bg, target=0, feature_selection="auto")',
     ValueError, 'only'),
    ('lime_text kw inf', 'E.lime_text(bert, ids, mask, target=0, kernel_width=float("inf"))',
     ValueError, 'kernel_width must'),
    ('lime_text 1 token', 'E.lime_text(bert, ids[:, :1], mask[:, :1], target=0)', ValueError, 'input_ids row 0 has'),
    ('lime_image 1d', 'E.lime_image(mlp, np.zeros((2, 4)), target=0)', ValueError, 'inputs must'),
    ('lime_image seg float',
     'E.lime_image(lambda z: z.reshape(len(z), -1)[:, :3], np.zeros((1, 4, 4)), target=0, segments=np.zeros((4, 4)))',
     ValueError, 'segments must'),
    ('lime_image hide nan',
     'E.lime_image(lambda z: z.reshape(len(z), -1)[:, :3], np.zeros((1, 4, 4)), target=0, hide_value=float("nan"))',
     ValueError, 'hide_value must'),
    ('lime_kernel nan d', 'E.lime_kernel(np.array([np.nan]), 1.0)', ValueError, 'distances must'),
    ('lime_kernel neg d', 'E.lime_kernel(np.array([-1.0]), 1.0)', ValueError, 'distances must'),
    ('lime_kernel w 0', 'E.lime_kernel(np.array([1.0]), 0.0)', ValueError, 'kernel_width must'),
    ('fit nan feat', 'E.fit_surrogate(np.array([[np.nan], [1.0]]), np.ones(2), np.ones(2))',
     ValueError, 'features and targets must'),
    ('fit nan y', 'E.fit_surrogate(np.ones((2, 1)), np.array([np.nan, 1.0]), np.ones(2))',
     ValueError, 'features and targets must'),
    ('fit empty', 'E.fit_surrogate(np.ones((0, 1)), np.ones(0), np.ones(0))', ValueError, 'features must'),
    ('fit alpha neg', 'E.fit_surrogate(np.ones((2, 1)), np.ones(2), np.ones(2), alpha=-1)', ValueError, 'alpha must'),
    ('digit_segments patch 0', 'E.digit_segments((8, 8), 0)', ValueError, 'patch must'),
    ('digit_segments shape neg', 'E.digit_segments((-8, 8), 2)', ValueError, 'H must'),
    ('digit_segments shape 3', 'E.digit_segments((8, 8, 8), 2)', ValueError, 'shape must'),
    ('digit_segments shape float', 'E.digit_segments((8.5, 8), 2)', ValueError, 'H must'),
    ('comp frac str', 'E.comprehensiveness(bert, ids, mask, scores, target=0, fraction="0.2")',
     ValueError, 'fraction must'),
    ('comp keep_ids float', 'E.comprehensiveness(bert, ids, mask, scores, target=0, keep_ids=[0.5])',
     TypeError, 'keep_ids must'),
    ('comp keep shape', 'E.comprehensiveness(bert, ids, mask, scores, target=0, keep=np.ones((2, 3)))',
     ValueError, 'keep \\(2, 3\\) and the attributions \\(2, 6\\) must'),
    ('comp model 3d',
     'E.comprehensiveness(lambda i, attention_mask: torch.zeros(len(i), 6, 3), ids, mask, scores, target=0)',
     ValueError, 'the model must'),
    ('aopc fractions str', 'E.aopc(bert, ids, mask, scores, target=0, fractions="abc")', TypeError, 'fractions must'),
    ('aopc fractions float', 'E.aopc(bert, ids, mask, scores, target=0, fractions=0.5)', TypeError, 'fractions must'),
    ('deletion steps float', 'E.deletion_curve(bert, ids, mask, scores, target=0, steps=2.0)',
     ValueError, 'steps must'),
    ('p@k k float', 'E.precision_at_k(scores, scores > 0, k=1.5)', ValueError, 'k must'),
    ('p@k ev shape', 'E.precision_at_k(scores, np.ones((2, 3)))',
     ValueError, 'evidence \\(2, 3\\) and attributions \\(2, 6\\) must'),
    ('p@k nan', 'E.precision_at_k(scores * np.nan, scores > 0)', ValueError, 'attributions must'),
    ('p@k 1d', 'E.precision_at_k(scores[0], scores[0] > 0)', ValueError, 'attributions must'),
    ('auprc ev nan', 'E.auprc(scores, scores * np.nan)', ValueError, 'evidence must'),
    ('agree mask shape', 'E.rank_agreement(scores, scores, mask=np.ones((2, 2)))',
     ValueError, 'mask \\(2, 2\\) and the attributions \\(2, 6\\) must'),
    ('random explain_fn bad sig', 'E.randomisation_check(bert, ids, mask, explain_fn=lambda m: 0, target=0)',
     TypeError, 'explain_fn must'),
    ('random layers not list',
     'E.randomisation_check(bert, ids, mask, explain_fn=E.gradient_x_input, target=0, layers="x")',
     ValueError, 'layers must'),
    ('random seed neg', 'E.randomisation_check(bert, ids, mask, explain_fn=E.gradient_x_input, target=0, seed=-1)',
     ValueError, 'seed must'),
    ('stability seeds str', 'E.stability(bert, ids, mask, explain_fn=E.lime_text, target=0, seeds="ab")',
     TypeError, 'seeds must'),
    ('seed too large', 'E.lime_text(bert, ids, mask, target=0, seed=2**33, n_samples=20)', ValueError, 'seed must'),
    ('keep_ids huge', 'E.token_integrated_gradients(bert, ids, mask, target=0, keep_ids=[2**70])', ValueError,
     'keep_ids must'),
    ('keep_ids negative', 'E.comprehensiveness(bert, ids, mask, scores, target=0, keep_ids=[-1])', ValueError,
     'keep_ids must'),
    ('IG NaN gradient', 'E.integrated_gradients(lambda z: z.abs().sqrt().sum(1), x, method="riemann_left")',
     ValueError, 'gradient is NaN'),
    ('probabilities on one output', 'E.integrated_gradients(lambda z: z.sum(1), x, probabilities=True)', ValueError,
     'probabilities=True needs'),
    ('target on one output', 'E.exact_shapley(lambda z: z.sum(1), x.numpy(), background=bg, target=0)', ValueError,
     'target must'),
    ('target with a string', 'E.integrated_gradients(mlp, x, target=[0, "a", 1])', TypeError, 'target must'),
    ('model returns strings', 'E.exact_shapley(lambda z: np.array(["a"] * len(z)), x.numpy(), background=bg)',
     TypeError, 'must return numbers'),
    ('lime_kernel strings', 'E.lime_kernel(["a", "b"], 1.0)', TypeError, 'must hold numbers'),
    ('stability repeated seeds', 'E.stability(bert, ids, mask, explain_fn=E.gradient_x_input, target=0, seeds=[1, 1])',
     ValueError, 'all different'),
    ('randomise no parameters', 'E.randomisation_check(nn.Identity(), ids, mask, explain_fn=E.gradient_x_input)',
     ValueError, 'no parameters'),
    ('html legend str', 'E.token_attributions_html(["a", "b"], [0.1, 0.2], legend="no")', TypeError, 'legend must'),
    ('lime_text mask without id', 'E.lime_text(bert, ids, mask, target=0, absent="mask")', ValueError,
     'pass mask_id'),
    ('lime_text absent unknown', 'E.lime_text(bert, ids, mask, target=0, absent="unk")', ValueError, 'absent must'),
    ('html tokens int', 'E.token_attributions_html([1, 2], [0.1, 0.2])', TypeError, 'tokens must'),
    ('html neg range', 'E.token_attributions_html(["a", "b"], [0.1, 0.2], max_abs=-1)', ValueError, 'max_abs must'),
    # chapter 09, second edition: noise, occlusion, interactions, interventions, patching
    ('smoothgrad base', 'E.smoothgrad(mlp, x, target=0, base="lime")', ValueError, 'base must'),
    ('smoothgrad stdev neg', 'E.smoothgrad(mlp, x, target=0, stdev=-1.0)', ValueError, 'stdev .* must'),
    ('smoothgrad n_samples 0', 'E.smoothgrad(mlp, x, target=0, n_samples=0)', ValueError, 'n_samples must'),
    ('gradshap baseline shape', 'E.gradient_shap(mlp, x, target=0, baseline=torch.zeros(2, 3, dtype=torch.float64))',
     ValueError, 'baseline'),
    ('occlusion window big', 'E.occlusion(mlp, x, target=0, window=9)', ValueError, 'window'),
    ('occlusion stride 0', 'E.occlusion(mlp, x, target=0, window=2, stride=0)', ValueError, 'stride'),
    ('tok smoothgrad nan target', 'E.token_smoothgrad(bert, ids, mask, target=7)', ValueError, 'target must'),
    ('tok gradshap ids shape', 'E.token_gradient_shap(bert, ids, mask, target=0, baseline=ids[:, :3])',
     ValueError, 'baseline'),
    ('tok occlusion absent', 'E.token_occlusion(bert, ids, mask, target=0, absent="zero")', ValueError, 'absent must'),
    ('tok occlusion window big', 'E.token_occlusion(bert, ids, mask, target=0, mask_id=2, window=9)',
     ValueError, 'window'),
    ('interactions order 3', 'E.shapley_interactions(mlp, x.numpy(), target=0, background=bg, order=3)',
     ValueError, 'order'),
    ('tok interactions order 1', 'E.token_shapley_interactions(bert, ids, mask, target=0, order=1, keep_ids=(3,))',
     ValueError, 'order'),
    ('tok interactions too many', 'E.token_shapley_interactions(bert, ids, mask, target=0, absent="mask", mask_id=2, '
     'max_players=3)', ValueError, 'max_players'),
    ('counterfactual edits shape', 'E.counterfactual_effects(bert, ids, mask, target=0, edits=ids[:, :3])',
     ValueError, 'edits must'),
    ('counterfactual no target', 'E.counterfactual_effects(bert, ids, mask)', ValueError, 'target'),
    ('evidence threshold', 'E.interventional_evidence(bert, ids, mask, target=0, threshold=1.5)',
     ValueError, 'threshold must'),
    ('evidence max_size', 'E.interventional_evidence(bert, ids, mask, target=0, max_size=0)',
     ValueError, 'max_size must'),
    ('patching lengths', 'E.activation_patching(bert, ids, ids[:, :4], target=0)', ValueError, 'aligned'),
    ('patching layer', 'E.activation_patching(bert, ids, ids.flip(1), target=0, layers=[7])', ValueError, 'layers'),
    ('patching head', 'E.activation_patching(bert, ids, ids.flip(1), target=0, site="head", heads=[5])',
     ValueError, 'heads'),
    ('generation empty prompt', 'E.generation_occlusion(gpt, ids[:, :0], target=ids[:, :2])', ValueError, 'empty'),
    ('generation too long', 'E.generation_occlusion(gpt, ids.repeat(1, 3), target=ids)', ValueError, 'block_size'),
    ('generation contrast = target', 'E.generation_occlusion(gpt, ids, target=ids[:, :2], contrast=ids[:, :2])',
     ValueError, 'contrast'),
    ('generation step out of range', 'E.generation_integrated_gradients(gpt, ids, target=ids[:, :2], steps=[2], '
     'baseline="zero")', ValueError, 'steps must'),
    ('generation no target', 'E.generation_kernel_shap(gpt, ids)', ValueError, 'target'),
    ('generation text not encodable', 'E.encode_text(chars, "h\u2211llo", name="target")', ValueError, 'vocabulary'),
    ('generation text empty', 'E.encode_text(chars, "", name="prompt")', ValueError, 'prompt is empty'),
    ('patching site', 'E.activation_patching(bert, ids, ids.flip(1), target=0, site="mlp")', ValueError, 'site must'),
]


@pytest.mark.parametrize(("what", "call", "kind", "pattern"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_refused_by_bigtut(what, call, kind, pattern):
    with pytest.raises((ValueError, TypeError)) as caught:
        eval(call, namespace())  # noqa: S307 (the table's own source text)
    assert caught.type is kind, f"{what}: {caught.type.__name__}: {caught.value}"
    assert re.search(pattern, str(caught.value)), f"{what}: {caught.value}"
    raised_in = traceback.extract_tb(caught.tb)[-1].filename
    assert "/bigtut/" in raised_in, f"{what}: raised in {raised_in}, not by bigtut"


def test_the_table_is_large_and_covers_the_family():
    assert len(CASES) >= 90
    called = " ".join(call for _, call, _, _ in CASES)
    for method in E.ATTRIBUTION_METHODS:
        assert f"E.{method.__name__}(" in called, method.__name__
