"""The restoration GAN beats no restoration on the people it never trained on (slow).

A short run (:data:`gan_eval.gan.training.QUICK_RESTORATION`: about a minute or two on 2 CPU
cores) on ``builtin:lfw-train`` at 32 px; its EMA generator then restores the 20 faces of
``builtin:lfw-heldout`` degraded at the trained severities: every degradation it trained on at
its range's low, middle and high severity (12 conditions, noise seeded). Compared with the
degraded images themselves, paired on the same faces:

- PSNR (``skimage.metrics.peak_signal_noise_ratio``, data range 255, over H×W×3), restored vs
  clean and degraded vs clean;
- identity: the dlib-face embedding distance (:func:`gan_eval.features.dlib_face.embed_faces`)
  of the restored and of the degraded face to the clean face, and the fraction within dlib's
  same-person distance (:data:`gan_eval.faces.MATCH_THRESHOLD`).

Each face's numbers are averaged over the 12 conditions, so the n = 20 paired differences are
independent across faces; the interval is mean ± 1.96·sd/√n. The test asserts the PSNR gain's
interval lies above :data:`PSNR_MARGIN`; identity is reported (printed), not asserted: whether a
PSNR-trained restorer keeps identity better is what the audit measures.

The same run, audited as the default report audits its restoration GAN (the default degradation
grid, 32 px), passes the restoration gates of the built-in default gates, which no restoration
and a model that returns another person's clean face fail.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from gan_eval.audit import REPORT_RESTORATION_FACES, _gates_for, default_gates, judge
from gan_eval.data import open_images
from gan_eval.data.degrade import apply_degradation
from gan_eval.faces import MATCH_THRESHOLD
from gan_eval.features.dlib_face import embed_faces
from gan_eval.gan import load_restorer, restore_images
from gan_eval.gan.training import CHECKPOINT_DIR, QUICK_RESTORATION, TrainConfig, train
from gan_eval.gates import load_config
from gan_eval.restoration import RestorationConfig, audit_restoration
from gan_eval.seeding import derive_seed

pytestmark = pytest.mark.slow

PSNR_MARGIN = 0.1
"""dB: the lower end of the paired interval of the PSNR gain must exceed this (measured:
+0.30 ± 0.08 dB with one thread; runs with other thread counts differ in their float sums and
land within about ±0.1 dB of it)."""


@dataclass(frozen=True)
class Paired:
    """Per-face values (n faces) of the restored and the degraded images."""

    restored: np.ndarray
    degraded: np.ndarray

    def interval(self) -> tuple[float, float]:
        """Mean paired difference restored − degraded, and its 95% half-width."""
        d = self.restored - self.degraded
        return float(d.mean()), 1.96 * float(d.std(ddof=1)) / math.sqrt(d.size)


def psnr(clean: torch.Tensor, other: torch.Tensor) -> np.ndarray:
    """Per-image PSNR (dB) of uint8 B×3×H×W ``other`` against ``clean``, by scikit-image."""
    return np.array([peak_signal_noise_ratio(c.permute(1, 2, 0).numpy(),
                                             o.permute(1, 2, 0).numpy(), data_range=255)
                     for c, o in zip(clean, other, strict=True)])


def measure(run: Path) -> dict[str, dict[str, Paired]]:
    """{key: {"psnr", "distance", "match": Paired}} on lfw-heldout; keys in table order: each
    condition ("blur 0.5"), then its kind's average ("blur"), and last "all"."""
    restorer = load_restorer(run, "cpu")
    clean = open_images("builtin:lfw-heldout", resolution=restorer.resolution).load()
    clean_embedding = embed_faces(clean)
    per: dict[str, dict[str, list[np.ndarray]]] = {}
    kinds = [r.name for r in restorer.degradations]
    for k, severity_range in enumerate(restorer.degradations):
        for j, severity in enumerate(severity_range.levels(3)):
            generator = torch.Generator().manual_seed(derive_seed(0, "quality", k, j))
            degraded = apply_degradation(clean, severity_range.name, severity,
                                         generator=generator)
            restored = restore_images(restorer, degraded)
            values = {}
            for what, images in (("restored", restored), ("degraded", degraded)):
                distance = (embed_faces(images) - clean_embedding).norm(dim=1).double().numpy()
                values[what] = {"psnr": psnr(clean, images), "distance": distance,
                                "match": (distance <= MATCH_THRESHOLD).astype(float)}
            for key in (f"{severity_range.name} {severity:g}", severity_range.name):
                for metric in ("psnr", "distance", "match"):
                    group = per.setdefault(key, {})
                    group.setdefault(f"{metric}/restored", []).append(
                        values["restored"][metric])
                    group.setdefault(f"{metric}/degraded", []).append(
                        values["degraded"][metric])
    per["all"] = {name: [v for key in per if key in kinds for v in per[key][name]]
                  for name in per[kinds[0]]}
    order = [key for kind in kinds for key in per if key.startswith(f"{kind} ")] \
        + [*kinds, "all"]
    return {key: {metric: Paired(np.mean(per[key][f"{metric}/restored"], axis=0),
                                 np.mean(per[key][f"{metric}/degraded"], axis=0))
                  for metric in ("psnr", "distance", "match")}
            for key in order}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("quality") / "run"
    wall, cpu = time.perf_counter(), time.process_time()
    train(TrainConfig(data="builtin:lfw-train", out=run, quiet=True, **QUICK_RESTORATION))
    print(f"\ntrained {QUICK_RESTORATION}: wall {time.perf_counter() - wall:.1f} s, process "
          f"CPU {time.process_time() - cpu:.1f} s, torch threads {torch.get_num_threads()}")
    return run


def test_restored_psnr_beats_the_degraded_images(trained: Path) -> None:
    results = measure(trained)
    print(f"\n{'condition':16s} {'PSNR degraded':>14s} {'restored':>9s} {'gain (95%)':>16s}"
          f" {'dist degraded':>14s} {'restored':>9s} {'change (95%)':>17s}"
          f" {'match deg':>9s} {'restored':>9s}")
    for key, metrics in results.items():
        p, d, m = metrics["psnr"], metrics["distance"], metrics["match"]
        (gain, gain_hw), (change, change_hw) = p.interval(), d.interval()
        print(f"{key:16s} {p.degraded.mean():14.2f} {p.restored.mean():9.2f} "
              f"{gain:+8.2f} ± {gain_hw:5.2f} {d.degraded.mean():14.3f} "
              f"{d.restored.mean():9.3f} {change:+9.3f} ± {change_hw:5.3f} "
              f"{m.degraded.mean():9.2f} {m.restored.mean():9.2f}")
    gain, half_width = results["all"]["psnr"].interval()
    assert gain - half_width > PSNR_MARGIN, (gain, half_width)


SWAPPER_32 = f"{Path(__file__).resolve().parent / 'restoration_models.py'}:make_swapper_32"


@pytest.mark.parametrize(("model", "passes"), [
    ("trained", True), ("builtin:none", False), (SWAPPER_32, False)])
def test_the_default_gates_pass_the_report_gan_and_fail_no_restoration_and_a_swapper(
        trained: Path, model: str, passes: bool) -> None:
    """The default report's restoration section as it judges it (:func:`audit.restoration_part`
    less the other baselines, which do not change the audited model's metrics): the first
    model's catalogue metrics on builtin:lfw-heldout's faces over the default degradation grid,
    judged by the restoration gates of the built-in default gates."""
    spec = str(trained / CHECKPOINT_DIR) if model == "trained" else model
    run = audit_restoration([spec], "builtin:lfw-heldout", RestorationConfig(
        seed=0, tile_faces=1, n=REPORT_RESTORATION_FACES, baselines=False,
        resolution=int(QUICK_RESTORATION["resolution"])))
    gates = load_config(default_gates())
    restoration_only = _gates_for(gates, None, restoring=False).gates
    judged = type(gates)(gates=tuple(g for g in gates.gates if g not in restoration_only))
    assert judged.gates  # the default gates have restoration gates
    passed = judge(run.results, judged, None, "restoration gates of the default gates")
    print(f"\n{model}: " + "; ".join(c["message"] for c in run.results.gates["checks"]))
    assert passed is passes, run.results.gates["checks"]
