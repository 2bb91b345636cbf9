"""Post-training quantization that measures its own trade-off: speed, size, accuracy, cost.

``import silenttax.quantize`` imports neither torch nor onnxruntime.
"""

from silenttax.quantize._cpu import Int8Support, int8_support
from silenttax.quantize._methods import METHODS
from silenttax.quantize._study import Baseline, Candidate, QuantizationStudy, study

__all__ = [
    "METHODS",
    "Baseline",
    "Candidate",
    "Int8Support",
    "QuantizationStudy",
    "int8_support",
    "study",
]
