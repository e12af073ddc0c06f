"""One .keras file, two backends: what lets shipped weights be trained under JAX and served under TensorFlow."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo import harness, registry
from zoo.vision import upscale

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.jax

JAX_SIDE = """
import sys, numpy as np, keras
from zoo.vision import upscale
from zoo import harness
low = np.load(sys.argv[1])
shipped = harness.load_model(sys.argv[2])
np.save(sys.argv[3], keras.ops.convert_to_numpy(shipped(low)))
fresh = upscale.build_model(upscale.Config(scale=3, features=8, blocks=1))
fresh.get_layer("subpixel").kernel.assign(np.full(fresh.get_layer("subpixel").kernel.shape, 0.01, "float32"))
fresh.save(sys.argv[4])
np.save(sys.argv[5], keras.ops.convert_to_numpy(fresh(low)))
"""


def test_same_file_same_numbers_under_jax_and_tensorflow(tmp_path):
    low = np.random.default_rng(0).random((1, 20, 24, 1)).astype(np.float32)
    np.save(tmp_path / "low.npy", low)
    shipped_path = registry.resolve_weights("upscale", "x2")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            JAX_SIDE,
            tmp_path / "low.npy",
            shipped_path,
            tmp_path / "shipped_jax.npy",
            tmp_path / "jax_made.keras",
            tmp_path / "fresh_jax.npy",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shipped = harness.load_model(shipped_path)
    np.testing.assert_allclose(np.asarray(shipped(low)), np.load(tmp_path / "shipped_jax.npy"), atol=1e-4)
    jax_made = harness.load_model(tmp_path / "jax_made.keras")
    assert upscale.model_scale(jax_made) == 3
    np.testing.assert_allclose(np.asarray(jax_made(low)), np.load(tmp_path / "fresh_jax.npy"), atol=1e-4)
