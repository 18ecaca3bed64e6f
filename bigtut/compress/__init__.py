"""Making the course's models smaller (chapter 10): int8 quantisation, magnitude pruning, distillation,
and the measurements that say what each costs and buys.

=============================  ==========================================================================
module                         what it holds
=============================  ==========================================================================
``compress.quantize``          symmetric per-channel int8 weights, per-token int8 activations — = torchao
``compress.prune``             unstructured magnitude pruning (global / per layer); heads and FFN neurons
``compress.distill``           soft targets with temperature (the T² factor) + hard labels; students
``compress.measure``           size on disk (safetensors), CPU latency (task metrics: :mod:`bigtut.evaluation`)
``compress.common``            choosing the Linear layers to compress by name
=============================  ==========================================================================

Every function returns a compressed *copy*; the model it is given is never changed.
"""

from bigtut.compress.common import linear_layers, tied_to_embedding
from bigtut.compress.distill import distill, distillation_loss, make_student, soft_target_loss
from bigtut.compress.measure import (
    Latency,
    compare_latency,
    cpu_latency,
    parameter_bytes,
    size_on_disk,
)
from bigtut.compress.prune import (
    MaskedLinear,
    check_sparsity,
    count_heads,
    head_scores,
    magnitude_masks,
    make_pruning_permanent,
    prune_ffn_neurons,
    prune_heads,
    prune_magnitude,
    sparsity,
    sparsity_sweep,
)
from bigtut.compress.quantize import Int8Linear, QuantizedTensor, dequantize, quantize_model, quantize_symmetric

__all__ = [
    "Int8Linear", "Latency", "MaskedLinear", "QuantizedTensor", "check_sparsity",
    "compare_latency", "count_heads", "cpu_latency", "dequantize", "distill", "distillation_loss", "head_scores",
    "linear_layers", "magnitude_masks", "make_pruning_permanent", "make_student", "parameter_bytes",
    "prune_ffn_neurons", "prune_heads", "prune_magnitude", "quantize_model", "quantize_symmetric", "size_on_disk",
    "soft_target_loss", "sparsity", "sparsity_sweep", "tied_to_embedding",
]
