"""Helpers of the fault tests (issue #15): real permission errors although tests run as root.

Root ignores file modes through two capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). A child
started with ``setpriv`` without them is still uid 0 (so it can read the venv and the worktree)
but obeys ``chmod 000`` like any user: the permission errors it meets are the kernel's own.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_DROP = "-dac_override,-dac_read_search"


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ["<none>"]
    return [setpriv, f"--inh-caps={_DROP}", f"--bounding-set={_DROP}"]


@functools.cache
def permissions_apply() -> bool:
    """True when :func:`run_unprivileged` children are refused files that chmod 000 closes."""
    prefix = _prefix()
    if prefix == ["<none>"]:
        return False
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"gan-eval-perm-probe-{os.getpid()}"
    probe.write_text("x")
    probe.chmod(0)
    try:
        result = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r}).read()"],
                                capture_output=True, check=False)
        return result.returncode != 0 and b"PermissionError" in result.stderr
    except OSError:
        return False
    finally:
        probe.unlink()


def run_unprivileged(code: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in a child that file permissions apply to (skips the test if none)."""
    if not permissions_apply():
        pytest.skip("cannot start a child process that file permissions apply to (running as "
                    "root without setpriv, or setpriv refused), so chmod 000 cannot be tested")
    return subprocess.run([*_prefix(), sys.executable, "-c", code], env=child_env(),
                          capture_output=True, text=True, check=False)
