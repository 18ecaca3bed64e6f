"""Explanation methods (chapters 06–09), each written from scratch and proven equal to the library
practitioners use, one file per idea:

==================================  =========================================================================
module                              what it holds (notebook)
==================================  =========================================================================
``explain.lime``                    weighted local surrogates, the shared fit, and tables (06) — = lime
``explain.lime_tokens``             LIME on a text, token by token (06) — = lime's LimeTextExplainer
``explain.lime_images``             LIME on images, by patches (06) — = lime's LimeImageExplainer
``explain.shap``                    Shapley values of a game: exact, KernelSHAP, permutation; tables (07) — = shap
``explain.shap_designs``            which coalitions KernelSHAP and permutation sampling evaluate; shap's, replayed
``explain.shap_tokens``             Shapley values of a text's tokens, absent = mask / pad / delete (07) — = shap
``explain.interactions``            Shapley interaction values of pairs of players, exact (09) — = shapiq
``explain.integrated_gradients``    path integrals of gradients, every integration rule, tokens (08) — = captum
``explain.noise``                   gradients averaged over noise: SmoothGrad, VarGrad, GradientSHAP (09) — = captum
``explain.occlusion``               occlusion with a sliding window, features and tokens (09) — = captum
``explain.generation``              what GPT writes, step by step: IG, occlusion, KernelSHAP per generated token (11)
``explain.generation_task``         the arguments the generation methods share: prompt, continuation, steps (11)
``explain.generation_words``        token scores summed to words; a tokenizer adapter for captum's LLM classes (11)
``explain.logit_lens``              what each layer of a GPT predicts; which heads attend where (11)
``explain.gradients``               one-gradient yardsticks: gradient × input, gradient norm (09)
``explain.attention_scores``        attention read as an explanation: raw attention, attention rollout (09)
``explain.interventions``           ground truth by editing the input: minimal pairs, smallest flipping sets (09)
``explain.patching``                activation patching: a clean run's activation restored into a corrupted run (09)
``explain.metrics``                 is an explanation right? deletion/insertion, ERASER/ferret AOPC, precision@k (09)
``explain.sanity``                  is a *method* sane? cascading model randomisation, stability across seeds (09)
``explain.render``                  token attributions as coloured HTML, pixel attributions beside the image
``explain.common``                  what they share: the explained output (logits), positions, token deletion
``explain.token_rows``              perturbed copies of a text through a model: repeats once, short rows together
``explain.arguments``               the refusals they share: shapes, dtypes, NaN/inf, targets, budgets
==================================  =========================================================================

One shape for every attribution method
--------------------------------------
Read this before adding a method; ``tests/test_explain_family.py`` walks the family and fails a method that
breaks it::

    result = method(model_or_f, <data>, *, target=None, <reference>, <budget>, [seed=None,]
                    batch_size=None, probabilities=False, ...)

* **Positional: the model and the data it explains, nothing else.** ``<data>`` is ``inputs`` ``(B, ...)`` for
  methods on features (table rows ``(B, M)``, images ``(B, H, W)``/``(B, C, H, W)``), or ``input_ids,
  attention_mask`` ``(B, L)`` for methods on tokens (mask None = every token real). Always a batch, ``B >= 1``:
  one example is ``x[None]``. Token methods work on ids and mask through the classifier contract; they never
  re-tokenise text.
* **Everything else is keyword-only**, under one name across the family:

  - ``target`` — the class explained, an int or one per row; for a language model ``(B, L, V)``, the token
    whose logit is read at ``position``. ``None`` only for a model that returns one number per row.
  - ``baseline`` — IG's reference input (a tensor shaped like ``inputs`` or a number; for tokens ``"pad"``,
    ``"mask"``, ``"zero"`` or ``(B, L)`` ids, embedded and *attended*).
  - ``absent`` — what an absent token becomes in a perturbation method (LIME, SHAP): ``"pad"`` (attention
    mask 0: invisible, the others keep their positions — what the metrics do), ``"delete"`` (removed, the
    rest move left), ``"mask"`` (replaced by ``mask_id``, still seen). Tabular methods take ``background``
    (SHAP) or ``training_data`` (LIME) rows instead.
  - the budget — ``n_steps`` (IG), ``n_samples`` (LIME, KernelSHAP), ``n_permutations``.
  - ``seed`` — every method that samples has one; ``None`` means :data:`~bigtut.explain.common.DEFAULT_SEED`,
    so a call is reproducible (the course's numbers are), and every row of a batch uses the same seed (a row
    explained alone = the same row explained in a batch). Deterministic methods have none.
  - ``batch_size`` — at most this many rows per model call; ``None`` =
    :data:`~bigtut.explain.common.DEFAULT_BATCH_SIZE`. It never changes a result beyond rounding.
  - ``probabilities=False`` — methods explain the **logit** (attributions then add up to logit differences,
    which is what completeness and Shapley efficiency speak about); ``True`` explains the softmax
    probability. The *metrics* default to ``True``: ERASER and ferret define them on probabilities (said
    where the default is, in :mod:`bigtut.explain.metrics`).
  - ``position`` (language models; rollout's read position) — **one rule for negative positions**: a
    non-negative value is a position of the padded row, a negative one counts back from the row's *last real
    token* (``-1`` = the last real token, wherever the padding is).
* **One result shape**: a NamedTuple whose first field is ``attributions``, shaped like the explained input
  (``(B, M)``, ``(B, H, W)``, ``(B, L)``; 0 at padding and at tokens that are not players), followed by the
  method's own diagnostics (IG ``delta``, SHAP ``base_value``, LIME ``intercept``/``score``, evaluations used).
* **One array type: float64 NumPy on the CPU**, for attributions and diagnostics alike. An explanation is
  read, ranked, plotted and compared with shap, lime and scikit-learn, which all speak NumPy; a GPU tensor
  cannot be plotted; float64 keeps the equality tests tight. The metrics take a method's result as it comes
  (they read ``.attributions``), or any tensor or array. Building blocks on the model's internals
  (:func:`model_attentions`, :func:`attention_rollout`) stay tensors, like the model.
* **Bad input** is refused with a ``ValueError``/``TypeError`` that names the argument and the fix, before any
  model call where it can be (``explain.arguments`` holds the checks).

Checks of a method (:func:`randomisation_check`, :func:`stability`) take it as ``explain_fn`` with this very
signature, e.g. ``functools.partial(lime_text, n_samples=500)``. Call ``model.eval()`` first: no function
here changes the model's mode, and dropout would make every evaluation see a different model.
"""

from bigtut.explain.attention_scores import attention_rollout, model_attentions, raw_attention_scores, rollout_scores
from bigtut.explain.common import DEFAULT_BATCH_SIZE, DEFAULT_SEED, Attribution
from bigtut.explain.generation import (
    GenerationIGResult,
    GenerationOcclusionResult,
    GenerationShapResult,
    generation_integrated_gradients,
    generation_kernel_shap,
    generation_occlusion,
)
from bigtut.explain.generation_words import WORD_PATTERN, CaptumTokenizer, WordScores, encode_text, word_scores
from bigtut.explain.gradients import gradient_norm, gradient_x_input
from bigtut.explain.integrated_gradients import (
    INTEGRATION_RULES,
    IGResult,
    TokenIGResult,
    integrated_gradients,
    integration_rule,
    token_integrated_gradients,
)
from bigtut.explain.interactions import (
    INTERACTION_ORDERS,
    MAX_INTERACTION_PLAYERS,
    InteractionResult,
    exact_interaction_game,
    interaction_weight,
    shapley_interactions,
    token_shapley_interactions,
)
from bigtut.explain.interventions import (
    CounterfactualEffects,
    InterventionalEvidence,
    counterfactual_effects,
    interventional_evidence,
)
from bigtut.explain.lime import LimeExplanation, fit_surrogate, lime_from_neighbourhood, lime_kernel, lime_tabular
from bigtut.explain.lime_images import digit_segments, lime_image
from bigtut.explain.lime_tokens import lime_text
from bigtut.explain.logit_lens import LogitLens, attention_to_positions, evidence_in_top_k, logit_lens
from bigtut.explain.metrics import (
    ERASER_FRACTIONS,
    FERRET_FRACTIONS,
    Agreement,
    Curve,
    aopc,
    auprc,
    comprehensiveness,
    deletion_curve,
    insertion_curve,
    precision_at_k,
    rank_agreement,
    recall_at_k,
    sufficiency,
    token_f1,
)
from bigtut.explain.noise import (
    NOISE_BASES,
    GradientShapResult,
    NoiseTunnelResult,
    TokenGradientShapResult,
    TokenNoiseTunnelResult,
    gradient_shap,
    smoothgrad,
    token_gradient_shap,
    token_smoothgrad,
)
from bigtut.explain.occlusion import OcclusionResult, occlusion, token_occlusion, window_cover
from bigtut.explain.patching import PATCHING_SITES, PatchingResult, activation_patching, transformer_blocks
from bigtut.explain.render import plot_image_attributions, token_attributions_html
from bigtut.explain.sanity import RandomisationResult, randomisation_check, stability
from bigtut.explain.shap import ShapleyValues, coalition_weight, exact_shapley, kernel_shap, permutation_shap
from bigtut.explain.shap_tokens import token_permutation_shap, token_shap

# The attribution methods: every one keeps the shape above (tests/test_explain_family.py walks this tuple).
TOKEN_METHODS = (counterfactual_effects, gradient_norm, gradient_x_input, lime_text, raw_attention_scores,
                 rollout_scores, token_gradient_shap, token_integrated_gradients, token_occlusion,
                 token_permutation_shap, token_shap, token_shapley_interactions, token_smoothgrad)
FEATURE_METHODS = (exact_shapley, gradient_shap, integrated_gradients, kernel_shap, lime_image, lime_tabular, occlusion,
                   permutation_shap, shapley_interactions, smoothgrad)
# Generation (chapter 11): the data is the prompt, target= the continuation; attributions (B, steps, P + T).
GENERATION_METHODS = (generation_integrated_gradients, generation_kernel_shap, generation_occlusion)
ATTRIBUTION_METHODS = FEATURE_METHODS + TOKEN_METHODS + GENERATION_METHODS

__all__ = [
    "ATTRIBUTION_METHODS", "Agreement", "Attribution", "CaptumTokenizer", "CounterfactualEffects", "Curve",
    "DEFAULT_BATCH_SIZE", "DEFAULT_SEED", "ERASER_FRACTIONS", "FEATURE_METHODS", "FERRET_FRACTIONS",
    "GENERATION_METHODS", "GenerationIGResult", "GenerationOcclusionResult", "GenerationShapResult",
    "GradientShapResult", "IGResult", "INTEGRATION_RULES", "INTERACTION_ORDERS", "InteractionResult",
    "InterventionalEvidence", "LimeExplanation", "LogitLens", "MAX_INTERACTION_PLAYERS", "NOISE_BASES",
    "NoiseTunnelResult", "OcclusionResult", "PATCHING_SITES", "PatchingResult", "RandomisationResult",
    "ShapleyValues", "TOKEN_METHODS", "TokenGradientShapResult", "TokenIGResult", "TokenNoiseTunnelResult",
    "WORD_PATTERN", "WordScores", "activation_patching", "aopc", "attention_rollout", "attention_to_positions",
    "auprc", "coalition_weight", "comprehensiveness", "counterfactual_effects", "deletion_curve", "digit_segments",
    "encode_text", "evidence_in_top_k", "exact_interaction_game", "exact_shapley", "fit_surrogate",
    "generation_integrated_gradients", "generation_kernel_shap", "generation_occlusion", "gradient_norm",
    "gradient_shap", "gradient_x_input", "insertion_curve", "integrated_gradients", "integration_rule",
    "interaction_weight", "interventional_evidence", "kernel_shap", "lime_from_neighbourhood", "lime_image",
    "lime_kernel", "lime_tabular", "lime_text", "logit_lens", "model_attentions", "occlusion", "permutation_shap",
    "plot_image_attributions", "precision_at_k", "randomisation_check", "rank_agreement", "raw_attention_scores",
    "recall_at_k", "rollout_scores", "shapley_interactions", "smoothgrad", "stability", "sufficiency",
    "token_attributions_html", "token_f1", "token_gradient_shap", "token_integrated_gradients", "token_occlusion",
    "token_permutation_shap", "token_shap", "token_shapley_interactions", "token_smoothgrad", "transformer_blocks",
    "window_cover", "word_scores",
]
