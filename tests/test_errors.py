"""The package's errors are flat siblings under the Rust core's WwmDistillError."""

from __future__ import annotations

import pytest
import wwm_distill
from wwm_distill import errors


def test_errors_are_flat_siblings_exported_from_the_package():
    classes = [errors.TeacherError, errors.TrainingError, errors.CacheError, errors.EvalError]
    for cls in classes:
        assert cls.__bases__ == (wwm_distill.WwmDistillError,)
        assert getattr(wwm_distill, cls.__name__) is cls
    for cls in classes:
        for other in classes:
            assert cls is other or not issubclass(cls, other)
    assert errors.WwmDistillError is wwm_distill._core.WwmDistillError


def test_each_concern_raises_its_own(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from wwm_distill.cache import TeacherCache
    from wwm_distill.student import build_student

    with pytest.raises(errors.TrainingError, match="exactly one of") as e:
        build_student()
    assert not isinstance(e.value, errors.TeacherError)
    with pytest.raises(errors.CacheError, match="no teacher cache manifest"):
        TeacherCache(tmp_path)
