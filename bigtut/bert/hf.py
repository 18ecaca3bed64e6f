"""Weight exchange with Hugging Face ``transformers``: ``Bert``/``BertForPreTraining``/
``BertForSequenceClassification`` <-> ``BertModel``/``BertForPreTraining``/``BertForSequenceClassification``.

Our encoder reuses chapter 03's :class:`~bigtut.transformer.EncoderLayer` (PyTorch's parameter names), so the
mapping is a name table per block; tests prove the outputs of both equal on tiny random configs, both ways.
"""

from __future__ import annotations

from torch import nn

from bigtut.bert.heads import BertForPreTraining, BertForSequenceClassification
from bigtut.bert.model import Bert, BertConfig

__all__ = ["bert_from_hf", "bert_to_hf"]

#: Our parameter names -> Hugging Face's, for one encoder block (prefix ``layers.{i}.`` / ``encoder.layer.{i}.``).
_LAYER_NAMES = {
    "self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
    "norm1": "attention.output.LayerNorm", "linear1": "intermediate.dense", "linear2": "output.dense",
    "norm2": "output.LayerNorm",
}
_BASE_NAMES = {
    "embeddings.token": "embeddings.word_embeddings", "embeddings.position": "embeddings.position_embeddings",
    "embeddings.segment": "embeddings.token_type_embeddings", "embeddings.norm": "embeddings.LayerNorm",
    "pooler": "pooler.dense",
}
_HEAD_NAMES = {  # per model class: our head modules -> HF's
    "BertForPreTraining": {"mlm_dense": "cls.predictions.transform.dense",
                           "mlm_norm": "cls.predictions.transform.LayerNorm", "nsp": "cls.seq_relationship"},
    "BertForSequenceClassification": {"classifier": "classifier"},
    "Bert": {},
}


def _name_map(model: nn.Module) -> dict[str, str]:
    """``{our state-dict key: HF state-dict key}`` for every tensor of ``model``."""
    kind = type(model).__name__
    base = "" if kind == "Bert" else "bert."
    modules = dict(_BASE_NAMES)
    for i in range(model.config.num_layers):
        modules.update({f"layers.{i}.{ours}": f"encoder.layer.{i}.{theirs}" for ours, theirs in _LAYER_NAMES.items()})
    modules = {f"{base}{ours}": f"{base}{theirs}" for ours, theirs in modules.items()} | _HEAD_NAMES[kind]
    names = {}
    for ours, theirs in modules.items():
        names[f"{ours}.weight"] = f"{theirs}.weight"
        if ours not in (f"{base}embeddings.token", f"{base}embeddings.position", f"{base}embeddings.segment"):
            names[f"{ours}.bias"] = f"{theirs}.bias"  # every Linear and LayerNorm has a bias; embeddings do not
    if kind == "BertForPreTraining":
        names["mlm_bias"] = "cls.predictions.bias"
    return names


def _hf_config(config: BertConfig):
    import transformers

    return transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.d_ff, hidden_act="gelu",
        hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout,
        max_position_embeddings=config.max_len, type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps, pad_token_id=config.pad_id, num_labels=config.num_labels,
        tie_word_embeddings=True)


def bert_to_hf(model: Bert | BertForPreTraining | BertForSequenceClassification):
    """Copy a bigtut BERT into the matching ``transformers`` model (``BertModel``, ``BertForPreTraining`` or
    ``BertForSequenceClassification``), in eval mode, on the same device and dtype."""
    import transformers

    kind = type(model).__name__
    if kind not in _HEAD_NAMES:
        raise TypeError(f"expected a bigtut Bert, BertForPreTraining or BertForSequenceClassification, got {kind}")
    hf_class = {"Bert": transformers.BertModel}.get(kind) or getattr(transformers, kind)
    param = next(model.parameters())
    hf = hf_class(_hf_config(model.config)).to(device=param.device, dtype=param.dtype).eval()
    ours = model.state_dict()
    theirs = {hf_key: ours[key] for key, hf_key in _name_map(model).items()}
    if kind == "BertForPreTraining":  # the tied decoder: HF keeps the names, the tensors are the same
        theirs["cls.predictions.decoder.weight"] = ours["bert.embeddings.token.weight"]
        theirs["cls.predictions.decoder.bias"] = ours["mlm_bias"]
    missing, unexpected = hf.load_state_dict(theirs, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    return hf


def bert_from_hf(hf_model) -> Bert | BertForPreTraining | BertForSequenceClassification:
    """Copy a ``transformers`` ``BertModel``, ``BertForPreTraining`` or ``BertForSequenceClassification`` into
    the matching bigtut model (eval mode, same device and dtype).

    Raises:
        ValueError: the HF config uses something bigtut's BERT does not have (another activation, relative
            positions, a decoder, a model without pooler).
    """
    kind = {"BertModel": "Bert"}.get(type(hf_model).__name__, type(hf_model).__name__)
    if kind not in _HEAD_NAMES:
        raise TypeError(f"expected a transformers BertModel, BertForPreTraining or BertForSequenceClassification, "
                        f"got {type(hf_model).__name__}")
    c = hf_model.config
    if c.hidden_act != "gelu":
        raise ValueError(f"bigtut's BERT uses exact GELU; the HF config has hidden_act={c.hidden_act!r}")
    if getattr(c, "position_embedding_type", "absolute") != "absolute" or c.is_decoder:
        raise ValueError("bigtut's BERT is an encoder with absolute positions; this HF config is not")
    config = BertConfig(
        vocab_size=c.vocab_size, max_len=c.max_position_embeddings, type_vocab_size=c.type_vocab_size,
        d_model=c.hidden_size, num_layers=c.num_hidden_layers, num_heads=c.num_attention_heads,
        d_ff=c.intermediate_size, dropout=c.hidden_dropout_prob,
        layer_norm_eps=c.layer_norm_eps, pad_id=c.pad_token_id or 0, num_labels=c.num_labels)
    model = {"Bert": Bert, "BertForPreTraining": BertForPreTraining,
             "BertForSequenceClassification": BertForSequenceClassification}[kind](config)
    theirs = hf_model.state_dict()
    if kind == "Bert" and "pooler.dense.weight" not in theirs:
        raise ValueError("this BertModel has no pooler (add_pooling_layer=False); bigtut's Bert always has one")
    param = next(hf_model.parameters())
    model.to(device=param.device, dtype=param.dtype).eval()  # before loading: no round trip through float32
    model.load_state_dict({key: theirs[hf_key] for key, hf_key in _name_map(model).items()})
    return model
