"""Explanation methods (chapters 06–09), each written from scratch and proven equal to the library
practitioners use, one file per method:

==================================  =========================================================================
module                              what it holds (notebook)
==================================  =========================================================================
``explain.lime``                    weighted local surrogates: tabular, text (tokens), images (06) — = lime
``explain.shap``                    Shapley values: exact, KernelSHAP, permutation, tokens (07) — = shap
``explain.integrated_gradients``    path integrals of gradients, every integration rule, tokens (08) — = captum
``explain.metrics``                 is an explanation right? deletion/insertion, ERASER/ferret AOPC, precision@k (09)
``explain.baselines``               gradient×input, gradient norm, attention rollout, the randomisation check (09)
``explain.render``                  token attributions as coloured HTML, pixel attributions beside the image
``explain.common``                  what they share: the explained output (logit of ``target``), input checks
==================================  =========================================================================

Convention: attributions explain the model's **logit** for ``target`` unless ``probabilities=True``; every
method that samples takes ``seed``; results are small NamedTuples whose first field has the input's shape.
Token-level methods work on ``input_ids`` + ``attention_mask`` through the classifier contract (they never
re-tokenise text).
"""

from bigtut.explain.baselines import (
    RandomisationResult,
    attention_rollout,
    gradient_norm,
    gradient_x_input,
    model_attentions,
    randomisation_check,
    raw_attention_scores,
    rollout_scores,
)
from bigtut.explain.integrated_gradients import (
    METHODS,
    IGResult,
    TokenIGResult,
    integrated_gradients,
    integration_rule,
    token_integrated_gradients,
)
from bigtut.explain.lime import (
    LimeExplanation,
    digit_segments,
    fit_surrogate,
    lime_from_neighbourhood,
    lime_image,
    lime_kernel,
    lime_tabular,
    lime_text,
)
from bigtut.explain.metrics import (
    ERASER_FRACTIONS,
    FERRET_FRACTIONS,
    aopc,
    auprc,
    comprehensiveness,
    deletion_curve,
    insertion_curve,
    precision_at_k,
    rank_agreement,
    recall_at_k,
    stability,
    sufficiency,
    token_f1,
)
from bigtut.explain.render import plot_image_attributions, token_attributions_html
from bigtut.explain.shap import (
    ShapleyValues,
    coalition_weight,
    exact_shapley,
    kernel_shap,
    permutation_shap,
    token_shap,
)

__all__ = [
    "ERASER_FRACTIONS", "FERRET_FRACTIONS", "METHODS", "IGResult", "LimeExplanation", "RandomisationResult",
    "ShapleyValues", "TokenIGResult", "aopc", "attention_rollout", "auprc", "coalition_weight", "comprehensiveness",
    "deletion_curve", "digit_segments", "exact_shapley", "fit_surrogate", "gradient_norm", "gradient_x_input",
    "insertion_curve", "integrated_gradients", "integration_rule", "kernel_shap", "lime_from_neighbourhood",
    "lime_image", "lime_kernel", "lime_tabular", "lime_text", "model_attentions", "permutation_shap",
    "plot_image_attributions", "precision_at_k", "randomisation_check", "rank_agreement", "raw_attention_scores",
    "recall_at_k", "rollout_scores", "stability", "sufficiency", "token_attributions_html", "token_f1",
    "token_integrated_gradients", "token_shap",
]
