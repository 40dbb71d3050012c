"""The package's API functions stay callable whatever was imported before them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import gan_eval.audit  # imports the submodules gan_eval.evaluate and gan_eval.recognition
import gan_eval
from gan_eval import EvaluateConfig, RecognitionConfig

first = gan_eval.evaluate("builtin:lfw-subset", "builtin:lfw-nonfaces",
                          EvaluateConfig(splits=4, use_cache=False, progress=False))
again = gan_eval.evaluate("builtin:lfw-subset", "builtin:lfw-nonfaces",
                          EvaluateConfig(splits=4, use_cache=False, progress=False))
assert first.metric("fid").value == again.metric("fid").value
faces = gan_eval.recognition("builtin:lfw-subset", "builtin:lfw-subset",
                             RecognitionConfig(birthday_trials=2, faceness_max=0,
                                               use_cache=False))
print("OK", first.metric("fid").value, faces.metric("leakage_rate").value)
"""


def test_evaluate_and_recognition_are_callable_after_their_modules_are_imported() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK")
