"""wwm-distill: knowledge distillation of Chinese BERT/RoBERTa-wwm models.

The slow parts (segmentation, tokenization, whole-word masking, shard I/O) run in the Rust
core ``wwm_distill._core``; this package is the thin Python layer over it.
"""

from wwm_distill._core import TextPipeline, WwmDistillError
from wwm_distill._core import __version__ as __version__
from wwm_distill.data import Examples, merge, prepare
from wwm_distill.errors import CacheError, EvalError, TeacherError, TrainingError

__all__ = [
    "CacheError",
    "EvalError",
    "Examples",
    "TeacherError",
    "TextPipeline",
    "TrainingError",
    "WwmDistillError",
    "merge",
    "prepare",
]
