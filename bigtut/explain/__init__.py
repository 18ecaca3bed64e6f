"""Explanation methods (chapters 06–09), each written from scratch and proven equal to the library
practitioners use: LIME (lime), SHAP (shap) and Integrated Gradients (captum).

Convention: attributions explain the model's **logit** for ``target`` unless ``probabilities=True``.
"""
