"""profemu.inference as a package: importing it does not import JAX."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_import_jax() -> None:
    code = "import sys, profemu, profemu.inference; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
