"""Importing jaxaug touches no JAX backend, so `jax.distributed.initialize()` can still run after
it (it must come before any JAX computation)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import importlib, pkgutil
import jaxaug
from jax._src import xla_bridge
names = ["jaxaug"] + [m.name for m in pkgutil.walk_packages(jaxaug.__path__, "jaxaug.")]
for name in names:
    importlib.import_module(name)
    assert not xla_bridge.backends_are_initialized(), f"importing {name} started a JAX backend"
print(len(names))
"""


def test_importing_every_module_initialises_no_backend():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 50  # every subpackage was walked
