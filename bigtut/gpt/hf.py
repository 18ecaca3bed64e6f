"""Weight exchange with Hugging Face's GPT-2: our :class:`~bigtut.gpt.GPT` <-> ``GPT2LMHeadModel``.

Our module names follow the GPT-2 checkpoint, so the mapping is one table (:func:`_name_table`); the only
real work is layout: GPT-2's ``Conv1D`` stores weights ``(in, out)`` where ``nn.Linear`` stores ``(out, in)``,
and it packs the query, key and value projections into one ``c_attn``. Tests prove the logits of both models
equal on tiny random configs, both ways, without any download.
"""

from __future__ import annotations

import torch

from bigtut.gpt.model import GPT, GPTConfig

__all__ = ["gpt_from_hf", "gpt_to_hf", "hf_config", "load_gpt2_pretrained"]


def hf_config(config: GPTConfig):
    """The ``transformers.GPT2Config`` of the same architecture (GELU tanh = ``"gelu_new"``, eps 1e-5)."""
    from transformers import GPT2Config

    if not config.bias:
        raise ValueError("GPT-2 (Hugging Face) layers always have biases; a GPTConfig with bias=False cannot be "
                         "mapped to GPT2LMHeadModel")
    return GPT2Config(vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.d_model,
                      n_layer=config.n_layer, n_head=config.n_head, activation_function="gelu_new",
                      resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
                      layer_norm_epsilon=1e-5, tie_word_embeddings=config.tie_weights,
                      bos_token_id=None, eos_token_id=None)


def _name_table(n_layer: int) -> list[tuple[str, str, str]]:
    """``(our name, HF name, how)`` with how = "copy", "transpose" (Conv1D stores (in, out)) or "qkv"."""
    table = [("tok_emb.weight", "transformer.wte.weight", "copy"), ("pos_emb.weight", "transformer.wpe.weight", "copy"),
             ("ln_f.weight", "transformer.ln_f.weight", "copy"), ("ln_f.bias", "transformer.ln_f.bias", "copy"),
             ("lm_head.weight", "lm_head.weight", "copy")]
    for i in range(n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            table += [(ours + f"{ln}.{p}", theirs + f"{ln}.{p}", "copy") for p in ("weight", "bias")]
        table += [(ours + "attn.attn.{}_proj.{}", theirs + "attn.c_attn.{}", "qkv")]
        for a, b in (("attn.attn.out_proj", "attn.c_proj"), ("mlp.fc", "mlp.c_fc"), ("mlp.proj", "mlp.c_proj")):
            table += [(ours + f"{a}.weight", theirs + f"{b}.weight", "transpose"),
                      (ours + f"{a}.bias", theirs + f"{b}.bias", "copy")]
    return table


@torch.no_grad()
def gpt_to_hf(model: GPT):
    """A ``transformers.GPT2LMHeadModel`` with the same weights (and dtype/device) as ``model``."""
    from transformers import GPT2LMHeadModel

    try:  # skip the random initialisation: every weight is overwritten below
        from transformers.initialization import no_init_weights
    except ImportError:  # other transformers versions: initialise, then overwrite
        from contextlib import nullcontext as no_init_weights
    ours, weight = model.state_dict(), model.lm_head.weight
    with no_init_weights():
        hf = GPT2LMHeadModel(hf_config(model.config)).to(dtype=weight.dtype, device=weight.device)
    hf.tie_weights()  # (skipped with the initialisation) lm_head.weight is wte.weight when tie_weights
    theirs = {}
    for a, b, how in _name_table(model.config.n_layer):
        if how == "qkv":  # Conv1D c_attn: (d, 3d) = [Wq^T | Wk^T | Wv^T], bias (3d,)
            theirs[b.format("weight")] = torch.cat([ours[a.format(x, "weight")].T for x in "qkv"], dim=1)
            theirs[b.format("bias")] = torch.cat([ours[a.format(x, "bias")] for x in "qkv"])
        else:
            theirs[b] = ours[a].T if how == "transpose" else ours[a]
    hf.load_state_dict(theirs, strict=False)
    missing = set(hf.state_dict()) - set(theirs)
    if missing:
        raise RuntimeError(f"weights of GPT2LMHeadModel left unset: {sorted(missing)[:5]}")
    return hf.eval()


@torch.no_grad()
def gpt_from_hf(hf_model) -> GPT:
    """A :class:`GPT` with the weights of a ``transformers.GPT2LMHeadModel`` (same dtype and device).

    Raises:
        ValueError: the Hugging Face model uses options this GPT does not have (another activation, a custom
            inner width, layer-index scaling of the scores, another LayerNorm epsilon).
    """
    c = hf_model.config
    problems = [f"{k}={getattr(c, k)!r} (need {v!r})" for k, v in (
        ("activation_function", "gelu_new"), ("n_inner", None), ("scale_attn_by_inverse_layer_idx", False),
        ("scale_attn_weights", True), ("add_cross_attention", False)) if getattr(c, k, v) != v]
    if abs(c.layer_norm_epsilon - 1e-5) > 1e-12:
        problems.append(f"layer_norm_epsilon={c.layer_norm_epsilon} (need 1e-5)")
    if problems:
        raise ValueError("cannot map this GPT-2 to bigtut.gpt.GPT: " + "; ".join(problems))
    config = GPTConfig(vocab_size=c.vocab_size, block_size=c.n_positions, n_layer=c.n_layer, n_head=c.n_head,
                       d_model=c.n_embd, dropout=0.0, bias=True, tie_weights=bool(c.tie_word_embeddings))
    weight = hf_model.lm_head.weight
    with torch.device("meta"):  # no time spent on a random initialisation that is overwritten below
        model = GPT(config)
    model = model.to_empty(device=weight.device).to(weight.dtype)
    if config.tie_weights:
        model.lm_head.weight = model.tok_emb.weight  # to_empty made two tensors of the tied one
    theirs, ours = hf_model.state_dict(), {}
    d = config.d_model
    for a, b, how in _name_table(config.n_layer):
        if how == "qkv":
            w, bias = theirs[b.format("weight")], theirs[b.format("bias")]  # (d, 3d), (3d,)
            for j, x in enumerate("qkv"):
                ours[a.format(x, "weight")] = w[:, j * d : (j + 1) * d].T  # (d_out, d_in)
                ours[a.format(x, "bias")] = bias[j * d : (j + 1) * d]
        else:
            ours[a] = theirs[b].T if how == "transpose" else theirs[b]
    model.load_state_dict(ours, strict=True)
    return model.eval()


def load_gpt2_pretrained(name: str = "gpt2"):
    """Load genuine GPT-2 weights **from the local Hugging Face cache only** (never downloads).

    Returns:
        ``(model, tokenizer)``: a :class:`GPT` and the Hugging Face GPT-2 tokenizer.

    Raises:
        FileNotFoundError: the weights are not in the local cache (e.g. offline, never downloaded).
    """
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    try:
        hf = GPT2LMHeadModel.from_pretrained(name, local_files_only=True, use_safetensors=True)
        tokenizer = GPT2TokenizerFast.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"GPT-2 weights {name!r} are not in the local Hugging Face cache (nothing is "
                                f"downloaded here): {type(err).__name__}") from None
    return gpt_from_hf(hf), tokenizer
