"""Small models shared by the explanation tests, each built so the right answer is known by hand."""

import torch
from torch import nn

from bigtut.bert import BertConfig, BertForSequenceClassification

PAD, CLS = 0, 1
#                     PAD  CLS   2    3    4    5    6    7
WEIGHTS = torch.tensor([5.0, 0.25, 3.0, -1.0, 2.0, 0.5, 1.0, -2.0], dtype=torch.float64)


class Additive(nn.Module):
    """logits ``(B, 2)``: class 0 is 0, class 1 is ``Σ_t w[id_t] · mask_t``. The embedding of id ``i`` is the
    one-hot ``e_i`` and the class-1 logit reads it through the fixed projection ``w``, so ``inputs_embeds``
    works and the logit is linear in the embeddings."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.eye(len(WEIGHTS), dtype=torch.float64))  # one-hot rows
        self.register_buffer("w", WEIGHTS.clone())

    def get_input_embeddings(self):
        return self.embedding

    def forward(self, input_ids=None, attention_mask=None, *, inputs_embeds=None):
        x = self.embedding(input_ids) if inputs_embeds is None else inputs_embeds  # (B, L, V)
        mask = torch.ones(x.shape[:2], dtype=x.dtype) if attention_mask is None else attention_mask.to(x.dtype)
        logit = ((x @ self.w) * mask).sum(-1)  # (B,)
        return torch.stack([torch.zeros_like(logit), logit], -1)  # (B, 2)


def additive_case():
    """The additive model, a padded batch and its perfect attribution (each token's own weight):
    row 0: [CLS] 2 3 4 5 -> weights 0.25 | 3, -1, 2, 0.5;  row 1: [CLS] 6 7 [PAD] [PAD] -> 0.25 | 1, -2.
    Padding gets the largest score, 5, and must not count."""
    ids = torch.tensor([[CLS, 2, 3, 4, 5], [CLS, 6, 7, PAD, PAD]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return Additive(), ids, mask, WEIGHTS[ids].clone()


class FixedAttention(nn.Module):
    """A 'model' whose attention weights are given: ``model(ids, attention_mask=..., return_attention=True)``
    returns ``(logits (B, 2) of zeros, attentions)``, each row of the batch reading its own slice."""

    def __init__(self, attentions):
        super().__init__()
        self.attentions = attentions  # n x (B, h, L, L)

    def forward(self, input_ids, attention_mask=None, return_attention=False):
        logits = torch.zeros(len(input_ids), 2, dtype=torch.float64)
        return (logits, self.attentions) if return_attention else logits


def tiny_bert(seed=0, num_labels=2):
    """A 2-layer, 16-wide BERT classifier in float64 with weights large enough to give varied logits, and a
    padded batch ``(ids (4, 10), mask (4, 10))`` with [CLS] (id 1) first."""
    torch.manual_seed(seed)
    model = BertForSequenceClassification(BertConfig(vocab_size=40, max_len=16, d_model=16, num_layers=2,
                                                     num_heads=2, d_ff=32, num_labels=num_labels, dropout=0.0))
    with torch.no_grad():  # the 0.02 init gives nearly constant logits: re-draw larger weights
        for p in model.parameters():
            p.normal_(0, 0.5)
    model = model.double().eval()
    torch.manual_seed(seed + 1)
    ids, mask = torch.randint(3, 40, (4, 10)), torch.ones(4, 10, dtype=torch.long)
    ids[:, 0], mask[1, 7:], mask[3, 5:] = 1, 0, 0  # [CLS] first; rows 1 and 3 padded
    return model, ids.masked_fill(mask == 0, 0), mask
