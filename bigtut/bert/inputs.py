"""What BERT reads: its special tokens, ``[CLS] text [SEP]`` encoding, and masked-token corruption.

Shape legend:  N texts   B batch   L sequence length   V vocabulary   C classes
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bigtut.runtime import eval_mode

__all__ = ["IGNORE_INDEX", "SPECIAL_TOKENS", "BertVocab", "classify", "encode_for_classifier", "mask_tokens",
           "trim_to_longest"]

#: The special tokens BERT needs (the tokenizer decides their ids: see :class:`BertVocab`).
SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")
IGNORE_INDEX = -100  # label of positions the MLM loss skips


@dataclass(frozen=True)
class BertVocab:
    """What :func:`mask_tokens` needs to know about a vocabulary: its size and the special ids."""

    size: int
    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    unk_id: int | None = None

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Ids that are never selected for prediction (and never drawn as random replacements)."""
        ids = (self.pad_id, self.cls_id, self.sep_id, self.mask_id, self.unk_id)
        return tuple(sorted({i for i in ids if i is not None}))

    @classmethod
    def from_tokenizer(cls, tokenizer) -> BertVocab:
        """Read ``[PAD] [CLS] [SEP] [MASK]`` (and ``[UNK]`` if present) from a bigtut tokenizer."""
        try:
            ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        except (ValueError, KeyError, AttributeError) as err:
            raise ValueError(f"the tokenizer needs the special tokens {SPECIAL_TOKENS}: {err}") from None
        unk = tokenizer.token_to_id("[UNK]") if "[UNK]" in getattr(tokenizer, "special_tokens", ()) else None
        return cls(tokenizer.vocab_size, *ids, unk_id=unk)


def mask_tokens(ids: torch.Tensor, vocab, mask_prob: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt ``ids`` for masked-language modelling with BERT's 80/10/10 rule.

    Every non-special position is selected independently with probability ``mask_prob``. A selected position
    becomes [MASK] with probability 0.8, a random non-special token with 0.1, and stays unchanged with 0.1.
    Special tokens ([PAD], [CLS], [SEP], [MASK], [UNK]) are never selected.

    Args:
        ids: integer tensor of any shape, e.g. ``(B, L)``.
        vocab: a :class:`BertVocab`, or a tokenizer with the special tokens (read by ``BertVocab.from_tokenizer``).
        mask_prob: selection probability, in ``(0, 1]``.
        generator: a seeded ``torch.Generator`` on ``ids``' device, for reproducible masks.

    Returns:
        ``(masked_ids, labels)``, both shaped like ``ids``: labels are the original ids at the selected
        positions and ``-100`` everywhere else.
    """
    if not isinstance(vocab, BertVocab):
        vocab = BertVocab.from_tokenizer(vocab)
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"ids must be an integer tensor, got {type(ids).__name__} "
                         f"{getattr(ids, 'dtype', '')}")
    if isinstance(mask_prob, bool) or not isinstance(mask_prob, (int, float)) or not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"mask_prob must lie in (0, 1], got {mask_prob!r}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab.size):
        raise ValueError(f"ids must lie in [0, {vocab.size}), got values from {int(ids.min())} to {int(ids.max())}")
    ids = ids.long()
    specials = torch.tensor(vocab.special_ids, device=ids.device)  # (S,)
    ordinary = torch.ones(vocab.size, dtype=torch.bool, device=ids.device)  # (V,)
    ordinary[specials] = False
    candidates = ordinary.nonzero().squeeze(1)  # (V - S,): ids a random replacement may take
    probs = torch.full(ids.shape, float(mask_prob), device=ids.device)  # (B, L)
    probs[torch.isin(ids, specials)] = 0.0
    selected = torch.bernoulli(probs, generator=generator).bool()  # (B, L)
    labels = torch.where(selected, ids, IGNORE_INDEX)  # (B, L)
    decide = torch.rand(ids.shape, generator=generator, device=ids.device)  # (B, L): one die per position
    random_tokens = candidates[torch.randint(len(candidates), ids.shape, generator=generator,
                                             device=ids.device)]  # (B, L)
    masked = ids.clone()  # (B, L)
    masked[selected & (decide < 0.8)] = vocab.mask_id  # 80 %: [MASK]
    swap = selected & (decide >= 0.8) & (decide < 0.9)  # 10 %: a random token; the last 10 % stay
    masked[swap] = random_tokens[swap]
    return masked, labels


def trim_to_longest(lengths: torch.Tensor, *tensors: torch.Tensor):
    """Cut ``(N, L)`` tensors to the longest row and add the ``(N, L')`` attention mask."""
    width = int(lengths.max())
    mask = torch.arange(width)[None, :] < lengths[:, None]  # (N, L')
    return (*(t[:, :width] for t in tensors), mask)


def encode_for_classifier(texts, tokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] text [SEP]`` rows, cut to ``max_len`` and to the longest row: ``(ids, attention_mask)``, ``(N, L)``."""
    from bigtut.data.batching import encode_texts

    vocab = BertVocab.from_tokenizer(tokenizer)
    ids, lengths = encode_texts(texts, tokenizer, max_len, vocab.pad_id, prefix=[vocab.cls_id],
                                suffix=[vocab.sep_id])  # (N, max_len), (N,)
    return trim_to_longest(lengths, ids)  # (N, L), (N, L)


@torch.no_grad()
def classify(model, tokenizer, texts, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities ``(N, C)`` (on the CPU) of ``texts``, encoded as in training (``[CLS] text [SEP]``)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single string; wrap it in a list")
    device = next(model.parameters()).device
    probs = [torch.zeros(0, model.config.num_labels)]
    with eval_mode(model):
        for i in range(0, len(texts), batch_size):
            ids, mask = encode_for_classifier(texts[i : i + batch_size], tokenizer, model.config.max_len)  # (B, L)
            probs.append(model(ids.to(device), attention_mask=mask.to(device)).softmax(-1).cpu())  # (B, C)
    return torch.cat(probs)
