"""Model audits: where a model's step time goes (torch.profiler and ONNX Runtime profiling).

``import silenttax.profile`` imports neither torch nor onnxruntime; the
functions import them when called.
"""

from silenttax.profile._common import OpStat, Profile
from silenttax.profile._onnx import OnnxProfile, classify_onnx, profile_onnx
from silenttax.profile._torch import TorchProfile, classify_aten, profile_torch

__all__ = [
    "OnnxProfile",
    "OpStat",
    "Profile",
    "TorchProfile",
    "classify_aten",
    "classify_onnx",
    "profile_onnx",
    "profile_torch",
]
