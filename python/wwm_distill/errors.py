"""The package's errors: flat siblings under the Rust core's ``WwmDistillError``.

``except WwmDistillError`` catches every one of them (and the core's own I/O and format
errors); each concern raises its own, and none is a subclass of another.
"""

from wwm_distill._core import WwmDistillError


class TeacherError(WwmDistillError):
    """A masked LM cannot be used as it is (not a model, wrong vocabulary, untrained MLM head,
    bad teacher-pass options, …)."""


class TrainingError(WwmDistillError):
    """Training cannot go on (NaN loss, bad arguments, mismatched inputs, a student that
    cannot be built)."""


class CacheError(WwmDistillError):
    """A teacher cache cannot be read (no manifest, another version, other examples)."""


class EvalError(WwmDistillError):
    """A model cannot be scored on the given inputs (e.g. examples longer than it takes)."""


__all__ = ["CacheError", "EvalError", "TeacherError", "TrainingError", "WwmDistillError"]
