"""The wheel `make wheel` builds installs into a clean virtual environment and its CLI runs."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_in_clean_venv(tmp_path):
    dist = tmp_path / "dist"
    maturin = Path(sys.executable).parent / "maturin"
    subprocess.run(
        [str(maturin), "build", "--release", "--quiet", "--out", str(dist)], cwd=ROOT, check=True
    )
    wheels = list(dist.glob("wwm_distill-*-abi3-*.whl"))
    assert len(wheels) == 1, list(dist.iterdir())
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # the wheel itself, with the light dependencies distill-prep needs (torch and
    # transformers are for the teacher and training commands, imported lazily)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheels[0])], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy", "tqdm"], check=True)
    out = subprocess.run(
        [str(env_dir / "bin" / "distill-prep"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--vocab" in out and "--max-seq-length" in out
    # the extension is inside the wheel, not picked up from the source tree
    where = subprocess.run(
        [str(py), "-c", "import wwm_distill._core as c; print(c.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert str(env_dir) in where
