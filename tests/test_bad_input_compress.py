"""Bad input to every public function of bigtut.compress and bigtut.explain.render raises a clear error.

One table: (the call, the exception type, a regex its message must match). Each message names the argument,
what was given and what is needed; none comes from deep inside torch, NumPy or the standard library, and no
bad input gets an answer. A last test checks that the table covers every public function of the two modules.
"""

import math
import warnings
from typing import NamedTuple

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

import bigtut.compress as compress
import bigtut.explain.render as render
from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.compress import (
    Int8Linear,
    MaskedLinear,
    QuantizedTensor,
    check_sparsity,
    compare_latency,
    count_heads,
    cpu_latency,
    dequantize,
    distill,
    distillation_loss,
    head_scores,
    linear_layers,
    magnitude_masks,
    make_pruning_permanent,
    make_student,
    parameter_bytes,
    prune_ffn_neurons,
    prune_heads,
    prune_magnitude,
    quantize_model,
    quantize_symmetric,
    size_on_disk,
    soft_target_loss,
    sparsity,
    sparsity_sweep,
    tied_to_embedding,
)
from bigtut.evaluation import accuracy, bits_per_character
from bigtut.explain.render import attribution_color, plot_image_attributions, token_attributions_html
from bigtut.gpt import GPT, GPTConfig

matplotlib.use("Agg")

NAN, INF = math.nan, math.inf


# ------------------------------------------------------------------------- tiny models (as test_compress)
def tiny_bert(num_layers=2):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, max_len=16, d_model=32, num_layers=num_layers, num_heads=4, d_ff=64,
                        dropout=0.0, num_labels=3)
    return BertForSequenceClassification(config).eval()


def tiny_gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=4, d_model=32)).eval()


def tiny_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5)).eval()


def with_nan(model, name):
    """``model`` with one NaN in the weight of its submodule ``name``."""
    with torch.no_grad():
        model.get_submodule(name).weight[0, 0] = NAN
    return model


def zero_wide():
    """A model whose only Linear layer has no weight at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Initializing zero-element tensors is a no-op"
        return nn.Sequential(nn.Linear(0, 0))


class WrongShape(nn.Module):
    """A 'classifier' that returns (B, 5, 7) instead of logits (B, C)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, input_ids, attention_mask=None):
        return torch.zeros(input_ids.shape[0], 5, 7)


class ReturnsTuple(WrongShape):
    def forward(self, input_ids, attention_mask=None):
        return (torch.zeros(input_ids.shape[0], 3),)


class Chars:
    """A character tokenizer over the GPT's 40 ids (enough for bits_per_character's input checks)."""

    def encode(self, text):
        return [ord(c) % 40 for c in text]

    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


IDS = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(0))  # (B, L)
MASK = torch.ones(2, 5, dtype=torch.long)  # (B, L)
LABELS = torch.tensor([0, 1])  # (B,)
LOGITS = torch.zeros(2, 3)  # (B, C)
BATCHES = [(IDS, MASK, LABELS)]
Q = quantize_symmetric(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))  # (3, 4) int8, (3, 1)
X = torch.zeros(1, 10)  # an input of tiny_mlp
TOKENS, SCORES = ["a", " b", "c"], [0.1, -0.2, 0.3]
IMAGE = np.zeros((8, 8))


def fit(teacher, student, batches=BATCHES, **kwargs):
    return distill(teacher, student, batches, steps=1, device="cpu", progress=False, **kwargs)


def job(*entry):
    return compare_latency({"m": entry}, rounds=1, repeats=1, warmup=0)


class Case(NamedTuple):
    target: object  # the public function under test
    call: object
    error: type
    match: str


CASES = {  # id: Case(function, call, exception type, regex of the message)
    # ----------------------------------------------------------------------------------- quantize
    "quantize_symmetric NaN": Case(quantize_symmetric, lambda: quantize_symmetric(torch.tensor([[1.0, NAN]])),
                                   ValueError, r"x must be finite .* got 1 NaN/inf value"),
    "quantize_symmetric inf": Case(quantize_symmetric, lambda: quantize_symmetric(torch.tensor([[INF, 1.0]])),
                                   ValueError, r"x must be finite to be quantised"),
    "quantize_symmetric -inf": Case(quantize_symmetric, lambda: quantize_symmetric(torch.tensor([[-INF, 1.0]])),
                                    ValueError, r"x must be finite"),
    "quantize_symmetric int": Case(quantize_symmetric, lambda: quantize_symmetric(torch.ones(2, 2, dtype=torch.long)),
                                   TypeError, r"floating-point tensor, got Tensor of dtype torch.int64"),
    "quantize_symmetric list": Case(quantize_symmetric, lambda: quantize_symmetric([[1.0]]),
                                    TypeError, r"floating-point tensor, got list"),
    "quantize_symmetric scalar": Case(quantize_symmetric, lambda: quantize_symmetric(torch.tensor(1.0)),
                                      ValueError, r"x must be a non-empty tensor \(\.\.\., K\).*got shape \(\)"),
    "quantize_symmetric no rows": Case(quantize_symmetric, lambda: quantize_symmetric(torch.zeros(0, 4)),
                                       ValueError, r"non-empty .* got shape \(0, 4\)"),
    "dequantize a str": Case(dequantize, lambda: dequantize("q"),
                             TypeError, r"q must be a QuantizedTensor\(values, scale\).*got str"),
    "dequantize float values": Case(dequantize, lambda: dequantize((torch.ones(3, 4), Q.scale)),
                                    TypeError, r"int8 values .* got torch.float32"),
    "dequantize scale shape": Case(dequantize, lambda: dequantize(QuantizedTensor(Q.values, torch.ones(2, 1))),
                                   ValueError, r"q.scale must have shape \(\.\.\., 1\) = \(3, 1\).*got \(2, 1\)"),
    "dequantize negative scale": Case(dequantize, lambda: dequantize(QuantizedTensor(Q.values, -Q.scale)),
                                      ValueError, r"q.scale must be finite and > 0"),
    "Int8Linear NaN scale": Case(Int8Linear, lambda: Int8Linear(QuantizedTensor(Q.values, torch.full((3, 1), NAN))),
                                 ValueError, r"weight.scale must be finite and > 0"),
    "Int8Linear bias shape": Case(Int8Linear, lambda: Int8Linear(Q, torch.zeros(5)),
                                  ValueError, r"bias must have shape \(O,\) = \(3,\), got \(5,\)"),
    "Int8Linear.from_linear ReLU": Case(Int8Linear, lambda: Int8Linear.from_linear(nn.ReLU()),
                                        TypeError, r"needs an nn.Linear, got ReLU"),
    "Int8Linear.from_linear NaN": Case(Int8Linear, lambda: Int8Linear.from_linear(with_nan(tiny_mlp(), "0")[0]),
                                       ValueError, r"weight must be finite .* got 1 NaN/inf"),
    "Int8Linear forward int": Case(Int8Linear, lambda: Int8Linear(Q)(torch.ones(2, 4, dtype=torch.long)),
                                   TypeError, r"floating-point tensor \(\.\.\., 4\), got dtype torch.int64"),
    "Int8Linear forward width": Case(Int8Linear, lambda: Int8Linear(Q)(torch.zeros(2, 5)),
                                     ValueError, r"expects \(\.\.\., 4\) inputs, got \(2, 5\)"),
    "quantize_model str": Case(quantize_model, lambda: quantize_model("model"),
                               TypeError, r"model must be a torch.nn.Module, got str"),
    "quantize_model NaN weight": Case(quantize_model, lambda: quantize_model(with_nan(tiny_mlp(), "2")),
                                      ValueError, r"parameter '2.weight' holds 1 NaN/inf value"),
    "quantize_model layers=5": Case(quantize_model, lambda: quantize_model(tiny_mlp(), layers=5),
                                    TypeError, r"layers must be a layer name or a list of names.*got int"),
    "quantize_model layers=[]": Case(quantize_model, lambda: quantize_model(tiny_mlp(), layers=[]),
                                     ValueError, r"layers is empty"),
    "quantize_model a ReLU": Case(quantize_model, lambda: quantize_model(tiny_mlp(), layers=["1"]),
                                  ValueError, r"layer '1' is a ReLU, not an nn.Linear"),
    # ------------------------------------------------------------------------------------ prune
    "prune_magnitude NaN sparsity": Case(prune_magnitude, lambda: prune_magnitude(tiny_mlp(), NAN),
                                         ValueError, r"sparsity must lie in \[0, 1\) .* got nan"),
    "prune_magnitude sparsity=1": Case(prune_magnitude, lambda: prune_magnitude(tiny_mlp(), 1.0),
                                       ValueError, r"sparsity must lie in \[0, 1\) .* got 1.0"),
    "prune_magnitude negative": Case(prune_magnitude, lambda: prune_magnitude(tiny_mlp(), -0.1),
                                     ValueError, r"sparsity must lie in \[0, 1\)"),
    "prune_magnitude bool": Case(prune_magnitude, lambda: prune_magnitude(tiny_mlp(), True),
                                 ValueError, r"sparsity must lie in \[0, 1\) .* got True"),
    "prune_magnitude scope": Case(prune_magnitude, lambda: prune_magnitude(tiny_mlp(), 0.5, scope="row"),
                                  ValueError, r"scope must be 'global' or 'layer', got 'row'"),
    "prune_magnitude NaN weight": Case(prune_magnitude, lambda: prune_magnitude(with_nan(tiny_mlp(), "0"), 0.5),
                                       ValueError, r"parameter '0.weight' holds 1 NaN/inf"),
    "prune_magnitude layer [0]": Case(prune_magnitude, lambda: prune_magnitude(tiny_mlp(), 0.5, layers=[0]),
                                      TypeError, r"layers must hold layer names \(str\), got 0 \(int\)"),
    "magnitude_masks empty": Case(magnitude_masks, lambda: magnitude_masks({}, 0.5),
                                  ValueError, r"weights is empty"),
    "magnitude_masks list": Case(magnitude_masks, lambda: magnitude_masks([torch.ones(3)], 0.5),
                                 TypeError, r"weights must be a dict name -> weight tensor, got list"),
    "magnitude_masks NaN": Case(magnitude_masks, lambda: magnitude_masks({"a": torch.tensor([1.0, NAN])}, 0.5),
                                ValueError, r"weights\['a'\] holds 1 NaN/inf value"),
    "magnitude_masks int": Case(magnitude_masks, lambda: magnitude_masks({"a": torch.ones(3, dtype=torch.long)}, 0.5),
                                TypeError, r"weights\['a'\] must be a floating-point tensor, got dtype torch.int64"),
    "MaskedLinear mask shape": Case(MaskedLinear, lambda: MaskedLinear(nn.Linear(3, 2), torch.ones(3)),
                                    ValueError, r"mask must have the weight's shape \(O, K\) = \(2, 3\), got \(3,\)"),
    "MaskedLinear mask values": Case(MaskedLinear, lambda: MaskedLinear(nn.Linear(3, 2), torch.full((2, 3), 0.5)),
                                     ValueError, r"mask must hold only 0 and 1"),
    "MaskedLinear not Linear": Case(MaskedLinear, lambda: MaskedLinear(nn.ReLU(), torch.ones(2, 3)),
                                    TypeError, r"linear must be an nn.Linear, got ReLU"),
    "check_sparsity str": Case(check_sparsity, lambda: check_sparsity("half"),
                               ValueError, r"sparsity must lie in \[0, 1\) .* got 'half'"),
    "check_sparsity 1.5": Case(check_sparsity, lambda: check_sparsity(1.5, "fraction"),
                               ValueError, r"fraction must lie in \[0, 1\) .* got 1.5"),
    "sparsity 0-wide layers": Case(sparsity, lambda: sparsity(zero_wide()),
                                   ValueError, r"hold no weights"),
    "sparsity unknown layer": Case(sparsity, lambda: sparsity(tiny_mlp(), ["nope"]),
                                   ValueError, r"no layer named 'nope'; its Linear layers are \['0', '2'\]"),
    "sparsity_sweep empty": Case(sparsity_sweep, lambda: sparsity_sweep(tiny_mlp(), [], lambda m: 1.0),
                                 ValueError, r"sparsities is empty"),
    "sparsity_sweep a float": Case(sparsity_sweep, lambda: sparsity_sweep(tiny_mlp(), 0.5, lambda m: 1.0),
                                   TypeError, r"sparsities must be a list of fractions in \[0, 1\), got float"),
    "sparsity_sweep repeat": Case(sparsity_sweep, lambda: sparsity_sweep(tiny_mlp(), [0.5, 0.5], lambda m: 1.0),
                                  ValueError, r"sparsities must be distinct .* got \[0.5, 0.5\]"),
    "sparsity_sweep 1.0": Case(sparsity_sweep, lambda: sparsity_sweep(tiny_mlp(), [0.5, 1.0], lambda m: 1.0),
                               ValueError, r"sparsity must lie in \[0, 1\) .* got 1.0"),
    "sparsity_sweep metric str": Case(sparsity_sweep, lambda: sparsity_sweep(tiny_mlp(), [0.5], "accuracy"),
                                      TypeError, r"metric must be a function model -> number, got str"),
    "sparsity_sweep metric NaN": Case(sparsity_sweep, lambda: sparsity_sweep(tiny_mlp(), [0.5], lambda m: NAN),
                                      ValueError, r"metric must return a finite number, got nan at sparsity 0.5"),
    "sparsity_sweep metric list": Case(sparsity_sweep, lambda: sparsity_sweep(tiny_mlp(), [0.5], lambda m: [1, 2]),
                                       TypeError, r"metric must return a number, got list"),
    "make_pruning_permanent str": Case(make_pruning_permanent, lambda: make_pruning_permanent("model"),
                                       TypeError, r"model must be a torch.nn.Module, got str"),
    "head_scores Linear": Case(head_scores, lambda: head_scores(nn.Linear(2, 2)),
                               TypeError, r"attention must be a bigtut MultiHeadAttention, got Linear"),
    "prune_heads all heads": Case(prune_heads, lambda: prune_heads(tiny_bert(), 0.9),
                                  ValueError, r"pruning a fraction 0.9 of 4 heads would leave none"),
    "prune_heads NaN fraction": Case(prune_heads, lambda: prune_heads(tiny_bert(), NAN),
                                     ValueError, r"fraction must lie in \[0, 1\) \(the fraction of heads .* got nan"),
    "prune_heads NaN weight": Case(prune_heads,
                                   lambda: prune_heads(with_nan(tiny_bert(), "bert.layers.0.self_attn.q_proj"), 0.5),
                                   ValueError, r"'bert.layers.0.self_attn.q_proj.weight' holds 1 NaN/inf"),
    "prune_heads no attention": Case(prune_heads, lambda: prune_heads(tiny_mlp(), 0.5),
                                     ValueError, r"no bigtut MultiHeadAttention"),
    "prune_ffn_neurons 1.0": Case(prune_ffn_neurons, lambda: prune_ffn_neurons(tiny_bert(), 1.0),
                                  ValueError, r"fraction must lie in \[0, 1\) \(the fraction of neurons .* got 1.0"),
    "prune_ffn_neurons NaN weight": Case(prune_ffn_neurons,
                                         lambda: prune_ffn_neurons(with_nan(tiny_bert(), "bert.layers.1.linear2"), 0.5),
                                         ValueError, r"'bert.layers.1.linear2.weight' holds 1 NaN/inf"),
    "prune_ffn_neurons masked": Case(prune_ffn_neurons,
                                     lambda: prune_ffn_neurons(prune_magnitude(tiny_bert(), 0.5), 0.5),
                                     ValueError, r"call make_pruning_permanent first"),
    "count_heads str": Case(count_heads, lambda: count_heads("model"),
                            TypeError, r"model must be a torch.nn.Module, got str"),
    "linear_layers str": Case(linear_layers, lambda: linear_layers("model"),
                              TypeError, r"model must be a torch.nn.Module, got str"),
    "linear_layers None name": Case(linear_layers, lambda: linear_layers(tiny_mlp(), [None]),
                                    TypeError, r"layers must hold layer names \(str\), got None"),
    "tied_to_embedding str": Case(tied_to_embedding, lambda: tied_to_embedding("model"),
                                  TypeError, r"model must be a torch.nn.Module, got str"),
    # ---------------------------------------------------------------------------------- distill
    "distillation_loss label 3 of 3": Case(distillation_loss,
                                           lambda: distillation_loss(LOGITS, LOGITS, torch.tensor([0, 3])),
                                           ValueError, r"labels must lie in \[0, 3\) .* got values from 0 to 3"),
    "distillation_loss label -1": Case(distillation_loss,
                                       lambda: distillation_loss(LOGITS, LOGITS, torch.tensor([-1, 0])),
                                       ValueError, r"labels must lie in \[0, 3\) .* from -1 to 0"),
    "distillation_loss label -100": Case(distillation_loss,  # cross_entropy's ignore_index, silently skipped
                                         lambda: distillation_loss(LOGITS, LOGITS, torch.tensor([-100, 0])),
                                         ValueError, r"labels must lie in \[0, 3\)"),
    "distillation_loss float labels": Case(distillation_loss,
                                           lambda: distillation_loss(LOGITS, LOGITS, torch.tensor([0.0, 1.0])),
                                           TypeError, r"labels must be an integer tensor .* got dtype torch.float32"),
    "distillation_loss labels (3,)": Case(distillation_loss,
                                          lambda: distillation_loss(LOGITS, LOGITS, torch.tensor([0, 1, 2])),
                                          ValueError, r"labels must have shape \(B,\) = \(2,\).* got \(3,\)"),
    "distillation_loss labels list": Case(distillation_loss, lambda: distillation_loss(LOGITS, LOGITS, [0, 1]),
                                          TypeError, r"labels must be a torch.Tensor .* got list"),
    "distillation_loss T=inf": Case(distillation_loss,
                                    lambda: distillation_loss(LOGITS, LOGITS, LABELS, temperature=INF),
                                    ValueError, r"temperature must be a finite number > 0, got inf"),
    "distillation_loss T=0": Case(distillation_loss, lambda: distillation_loss(LOGITS, LOGITS, LABELS, temperature=0),
                                  ValueError, r"temperature must be a finite number > 0, got 0"),
    "distillation_loss T<0": Case(distillation_loss,
                                  lambda: distillation_loss(LOGITS, LOGITS, LABELS, temperature=-1.0),
                                  ValueError, r"temperature must be a finite number > 0, got -1.0"),
    "distillation_loss T=NaN": Case(distillation_loss,
                                    lambda: distillation_loss(LOGITS, LOGITS, LABELS, temperature=NAN),
                                    ValueError, r"temperature must be a finite number > 0, got nan"),
    "distillation_loss alpha>1": Case(distillation_loss, lambda: distillation_loss(LOGITS, LOGITS, LABELS, alpha=1.5),
                                      ValueError, r"alpha \(the weight of the soft targets\) must be a finite number "
                                                  r"in \[0, 1\], got 1.5"),
    "distillation_loss alpha<0": Case(distillation_loss, lambda: distillation_loss(LOGITS, LOGITS, LABELS, alpha=-0.1),
                                      ValueError, r"alpha .* in \[0, 1\], got -0.1"),
    "distillation_loss alpha NaN": Case(distillation_loss, lambda: distillation_loss(LOGITS, LOGITS, LABELS, alpha=NAN),
                                        ValueError, r"alpha .* in \[0, 1\], got nan"),
    "distillation_loss no labels": Case(distillation_loss, lambda: distillation_loss(LOGITS, LOGITS, None, alpha=0.5),
                                        ValueError, r"labels are needed .* \(alpha=0.5 < 1\)"),
    "distillation_loss NaN logits": Case(distillation_loss,
                                         lambda: distillation_loss(torch.full((2, 3), NAN), LOGITS, LABELS),
                                         ValueError, r"student_logits must be finite, got 6 NaN/inf values"),
    "distillation_loss inf teacher": Case(distillation_loss,
                                          lambda: distillation_loss(LOGITS, torch.full((2, 3), INF), LABELS),
                                          ValueError, r"teacher_logits must be finite"),
    "distillation_loss empty batch": Case(distillation_loss,
                                          lambda: distillation_loss(torch.zeros(0, 3), torch.zeros(0, 3), alpha=1.0),
                                          ValueError, r"student_logits must not be empty, got shape \(0, 3\)"),
    "distillation_loss int logits": Case(distillation_loss,
                                         lambda: distillation_loss(LOGITS.long(), LOGITS.long(), LABELS),
                                         TypeError, r"student_logits must be a floating-point tensor \(B, C\)"),
    "distillation_loss 3-D": Case(distillation_loss,
                                  lambda: distillation_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), alpha=1.0),
                                  ValueError, r"student_logits must be a 2-D tensor \(B, C\), got shape \(2, 3, 4\)"),
    "soft_target_loss shapes": Case(soft_target_loss, lambda: soft_target_loss(LOGITS, torch.zeros(2, 4)),
                                    ValueError, r"must both be \(B, C\), got \(2, 3\) and \(2, 4\)"),
    "soft_target_loss T=inf": Case(soft_target_loss, lambda: soft_target_loss(LOGITS, LOGITS, INF),
                                   ValueError, r"temperature must be a finite number > 0, got inf"),
    "soft_target_loss str": Case(soft_target_loss, lambda: soft_target_loss("s", "t"),
                                 TypeError, r"student_logits must be a torch.Tensor \(B, C\), got str"),
    "make_student GPT": Case(make_student, lambda: make_student(tiny_gpt()),
                             TypeError, r"needs a BertForSequenceClassification, got GPT"),
    "make_student layers=0": Case(make_student, lambda: make_student(tiny_bert(), layers=0),
                                  ValueError, r"layers must be a non-empty list of distinct layer indices in "
                                              r"\[0, 2\), got 0"),
    "make_student repeat": Case(make_student, lambda: make_student(tiny_bert(), layers=[0, 0]),
                                ValueError, r"distinct .* got \[0, 0\] \(a repeat\)"),
    "make_student layer 2 of 2": Case(make_student, lambda: make_student(tiny_bert(), layers=[2]),
                                      ValueError, r"in \[0, 2\), got \[2\]"),
    "make_student d_ff": Case(make_student, lambda: make_student(tiny_bert(), d_ff=65),
                              ValueError, r"d_ff must be an int in \[1, 64\] .* got 65"),
    "distill T=inf": Case(distill, lambda: fit(tiny_bert(), tiny_bert(1), temperature=INF),
                          ValueError, r"temperature must be a finite number > 0, got inf"),
    "distill alpha=2": Case(distill, lambda: fit(tiny_bert(), tiny_bert(1), alpha=2),
                            ValueError, r"alpha .* in \[0, 1\], got 2"),
    "distill lr<0": Case(distill, lambda: fit(tiny_bert(), tiny_bert(1), lr=-1.0),
                         ValueError, r"lr must be a finite number > 0, got -1.0"),
    "distill teacher str": Case(distill, lambda: fit("teacher", tiny_bert(1)),
                                TypeError, r"teacher must be a torch.nn.Module, got str"),
    "distill teacher (B, 5, 7)": Case(distill, lambda: fit(WrongShape(), tiny_bert(1)),
                                      ValueError, r"the teacher's logits must be a 2-D tensor \(B, C\), got shape "
                                                  r"\(2, 5, 7\)"),
    "distill student tuple": Case(distill, lambda: fit(tiny_bert(), ReturnsTuple()),
                                  TypeError, r"the student's logits must be a torch.Tensor \(B, C\), got tuple"),
    "distill label 7": Case(distill, lambda: fit(tiny_bert(), tiny_bert(1), [(IDS, MASK, torch.tensor([0, 7]))]),
                            ValueError, r"labels must lie in \[0, 3\) .* from 0 to 7"),
    "distill batch of 2": Case(distill, lambda: fit(tiny_bert(), tiny_bert(1), [(IDS, MASK)]),
                               ValueError, r"batches \(input_ids, attention_mask, labels\), got a tuple of 2"),
    "distill batches str": Case(distill, lambda: fit(tiny_bert(), tiny_bert(1), "data"),
                                TypeError, r"train_batches must be a function .* got str"),
    # ---------------------------------------------------------------------------------- measure
    "size_on_disk str": Case(size_on_disk, lambda: size_on_disk("model"),
                             TypeError, r"model must be a torch.nn.Module, got str"),
    "parameter_bytes str": Case(parameter_bytes, lambda: parameter_bytes("model"),
                                TypeError, r"model must be a torch.nn.Module, got str"),
    "cpu_latency str": Case(cpu_latency, lambda: cpu_latency("model", X),
                            TypeError, r"model must be a torch.nn.Module, got str"),
    "cpu_latency repeats=0": Case(cpu_latency, lambda: cpu_latency(tiny_mlp(), X, repeats=0),
                                  ValueError, r"repeats must be a positive int, got 0"),
    "cpu_latency warmup=-1": Case(cpu_latency, lambda: cpu_latency(tiny_mlp(), X, warmup=-1),
                                  ValueError, r"warmup must be an int >= 0 \(untimed calls\), got -1"),
    "cpu_latency threads=0": Case(cpu_latency, lambda: cpu_latency(tiny_mlp(), X, threads=0),
                                  ValueError, r"threads must be a positive int, got 0"),
    "cpu_latency wrong input": Case(cpu_latency, lambda: cpu_latency(tiny_mlp(), torch.zeros(1, 7)),
                                    ValueError, r"the model fails on the inputs given \(1 positional"),
    "compare_latency empty": Case(compare_latency, lambda: compare_latency({}),
                                  ValueError, r"jobs is empty"),
    "compare_latency list": Case(compare_latency, lambda: compare_latency([tiny_mlp()]),
                                 TypeError, r"jobs must be a dict name -> \(model, args\).* got list"),
    "compare_latency bare model": Case(compare_latency, lambda: compare_latency({"m": tiny_mlp()}),
                                       ValueError, r"jobs\['m'\] must be \(model, args\) .* got a Sequential"),
    "compare_latency args tensor": Case(compare_latency, lambda: job(tiny_mlp(), X),
                                        TypeError, r"the args of jobs\['m'\] must be a tuple .* got Tensor"),
    "compare_latency kwargs list": Case(compare_latency, lambda: job(tiny_mlp(), (X,), [1]),
                                        TypeError, r"the kwargs of jobs\['m'\] must be a dict, got list"),
    "compare_latency warmup=-1": Case(compare_latency,
                                      lambda: compare_latency({"m": (tiny_mlp(), (X,))}, warmup=-1),
                                      ValueError, r"warmup must be an int >= 0"),
    "accuracy labels (1,)": Case(accuracy, lambda: accuracy(tiny_bert(), IDS, MASK, torch.tensor([0])),
                                 ValueError, r"labels must have shape \(N,\) = \(2,\).* got \(1,\)"),
    "accuracy float labels": Case(accuracy, lambda: accuracy(tiny_bert(), IDS, MASK, torch.tensor([0.0, 1.0])),
                                  TypeError, r"labels must be an integer tensor .* got dtype torch.float32"),
    "accuracy label 9": Case(accuracy, lambda: accuracy(tiny_bert(), IDS, MASK, torch.tensor([0, 9])),
                             ValueError, r"labels must lie in \[0, 3\) \(the model's C=3 classes\), got values "
                                         r"from 0 to 9"),
    "accuracy no rows": Case(accuracy, lambda: accuracy(tiny_bert(), IDS[:0], MASK[:0], LABELS[:0]),
                             ValueError, r"input_ids must not be empty, got shape \(0, 5\)"),
    "accuracy wrong model": Case(accuracy, lambda: accuracy(WrongShape(), IDS, MASK, LABELS),
                                 ValueError, r"the model must return class logits \(B, C\), got shape \(1, 5, 7\)"),
    "accuracy mask shape": Case(accuracy, lambda: accuracy(tiny_bert(), IDS, MASK[:, :3], LABELS),
                                ValueError, r"attention_mask must have shape \(B, L\) = \(2, 5\), got \(2, 3\)"),
    "bits_per_character empty": Case(bits_per_character, lambda: bits_per_character(tiny_gpt(), "", Chars()),
                                     ValueError, r"text is empty"),
    "bits_per_character classifier": Case(bits_per_character,
                                          lambda: bits_per_character(tiny_mlp(), "some text", Chars()),
                                          TypeError, r"model must be a language model with config.block_size"),
    "bits_per_character tokenizer": Case(bits_per_character,
                                         lambda: bits_per_character(tiny_gpt(), "some text", None),
                                         TypeError, r"tokenizer must have encode\(text\) and decode\(ids\), got "
                                                    r"NoneType"),
    "bits_per_character short": Case(bits_per_character, lambda: bits_per_character(tiny_gpt(), "short", Chars()),
                                     ValueError, r"need at least block_size \+ 1 = 17 tokens"),
    # ----------------------------------------------------------------------------------- render
    "attribution_color NaN": Case(attribution_color, lambda: attribution_color(NAN, 1.0),
                                  ValueError, r"score must be a finite number, got nan"),
    "attribution_color str": Case(attribution_color, lambda: attribution_color("x", 1.0),
                                  TypeError, r"score must be a number, got str"),
    "attribution_color max<0": Case(attribution_color, lambda: attribution_color(0.5, -1.0),
                                    ValueError, r"max_abs must be a finite number >= 0, got -1.0"),
    "attribution_color max=inf": Case(attribution_color, lambda: attribution_color(0.5, INF),
                                      ValueError, r"max_abs must be a finite number >= 0, got inf"),
    "html int tokens": Case(token_attributions_html, lambda: token_attributions_html([1, 2, 3], SCORES),
                            TypeError, r"tokens must be strings \(decode the ids first\), got int 1 at position 0"),
    "html None token": Case(token_attributions_html, lambda: token_attributions_html(["a", None, "c"], SCORES),
                            TypeError, r"got NoneType None at position 1"),
    "html length": Case(token_attributions_html, lambda: token_attributions_html(TOKENS, [0.1, 0.2]),
                        ValueError, r"got 3 tokens but 2 scores"),
    "html NaN": Case(token_attributions_html, lambda: token_attributions_html(TOKENS, [0.1, NAN, 0.2]),
                     ValueError, r"scores must be finite \(no NaN or inf\), got 1 NaN/inf value"),
    "html max_abs=0": Case(token_attributions_html, lambda: token_attributions_html(TOKENS, SCORES, max_abs=0),
                           ValueError, r"max_abs must be a finite number > 0, got 0"),
    "html max_abs<0": Case(token_attributions_html, lambda: token_attributions_html(TOKENS, SCORES, max_abs=-1.0),
                           ValueError, r"max_abs must be a finite number > 0, got -1.0"),
    "html max_abs str": Case(token_attributions_html, lambda: token_attributions_html(TOKENS, SCORES, max_abs="1"),
                             TypeError, r"max_abs must be a number, got str"),
    "html no tokens": Case(token_attributions_html, lambda: token_attributions_html([], []),
                           ValueError, r"tokens is empty"),
    "html scores (2, 3)": Case(token_attributions_html, lambda: token_attributions_html(["a"] * 6, np.zeros((2, 3))),
                               ValueError, r"scores must be one row \(L,\) = \(6,\), got shape \(2, 3\)"),
    "html scores None": Case(token_attributions_html, lambda: token_attributions_html(TOKENS, None),
                             TypeError, r"scores must be numbers \(L,\).* got NoneType"),
    "html mask 2": Case(token_attributions_html, lambda: token_attributions_html(TOKENS, SCORES, mask=[1, 2, 1]),
                        ValueError, r"mask must hold 0/1 or True/False"),
    "html mask hides all": Case(token_attributions_html,
                                lambda: token_attributions_html(TOKENS, SCORES, mask=[0, 0, 0]),
                                ValueError, r"mask hides every token"),
    "html title int": Case(token_attributions_html, lambda: token_attributions_html(TOKENS, SCORES, title=5),
                           TypeError, r"title must be a str or None, got int"),
    "image shapes": Case(plot_image_attributions, lambda: plot_image_attributions(IMAGE, np.zeros((4, 4))),
                         ValueError, r"image and attributions must both be \(H, W\), got \(8, 8\) and \(4, 4\)"),
    "image NaN attributions": Case(plot_image_attributions,
                                   lambda: plot_image_attributions(IMAGE, np.full((8, 8), NAN)),
                                   ValueError, r"attributions must be finite \(no NaN or inf\), got 64 NaN/inf"),
    "image inf pixels": Case(plot_image_attributions, lambda: plot_image_attributions(np.full((8, 8), INF), IMAGE),
                             ValueError, r"image must be finite"),
    "image empty": Case(plot_image_attributions, lambda: plot_image_attributions(np.zeros((0, 0)), np.zeros((0, 0))),
                        ValueError, r"image must not be empty, got shape \(0, 0\)"),
    "image max_abs=0": Case(plot_image_attributions, lambda: plot_image_attributions(IMAGE, IMAGE, max_abs=0),
                            ValueError, r"max_abs must be a finite number > 0, got 0"),
    "image max_abs NaN": Case(plot_image_attributions, lambda: plot_image_attributions(IMAGE, IMAGE, max_abs=NAN),
                              ValueError, r"max_abs must be a finite number > 0, got nan"),
    "image one axis": Case(plot_image_attributions, lambda: plot_image_attributions(IMAGE, IMAGE, axes=[object()]),
                           TypeError, r"axes must be two matplotlib axes \(image, attributions\), got list"),
    "image cmap": Case(plot_image_attributions, lambda: plot_image_attributions(IMAGE, IMAGE, cmap_image="nope"),
                       TypeError, r"cmap_image must be a matplotlib colour map or its name .* got 'nope'"),
    "image str": Case(plot_image_attributions, lambda: plot_image_attributions("image", IMAGE),
                      TypeError, r"image must be numbers \(H, W\).* got str"),
}


@pytest.mark.parametrize("call, error, match", [(c.call, c.error, c.match) for c in CASES.values()],
                         ids=list(CASES))
def test_bad_input_raises_a_clear_error(call, error, match):
    """The stated exception type (never an AttributeError/IndexError/RuntimeError from inside torch or NumPy),
    raised from bigtut, with a message naming the argument, what was given and what is needed."""
    with pytest.raises(error, match=match) as raised:
        call()
    assert "/bigtut/" in raised.traceback[-1].path.as_posix(), "raised outside bigtut, not by one of its checks"


NOT_FUNCTIONS = {"Latency", "QuantizedTensor", "TokenAttributionHTML"}  # plain result types, nothing to check


@pytest.mark.parametrize("module", [compress, render], ids=["bigtut.compress", "bigtut.explain.render"])
def test_every_public_function_is_in_the_table(module):
    tested = {c.target.__name__ for c in CASES.values()}
    assert set(module.__all__) - NOT_FUNCTIONS <= tested
