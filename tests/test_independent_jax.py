"""benchmarks/independent_jax.py, the independent JAX version of issue #24's bar run, matches the reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import skip_without_jax

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "independent_jax.py"
TOLERANCE = 1e-9  # relative, float64


@pytest.mark.slow
def test_independent_jax_matches_the_reference():
    skip_without_jax()
    # In a fresh process: the check turns on x64 and pins its process, and importing the script here
    # would start JAX in this one before the peers' tests choose its threading.
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=900)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    errors = json.loads(lines[-1])  # printed whether or not the check passes
    assert set(errors) == {"chunked", "sliding", "sliding k1=3"}
    for label, by_variant in errors.items():
        assert len(by_variant) >= 4, label  # every variant the script screens is checked
        for variant, error in by_variant.items():
            assert error["losses"] <= TOLERANCE and error["params"] <= TOLERANCE, (label, variant, error)
