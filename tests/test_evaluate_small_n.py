"""``evaluate`` at the smallest sizes it accepts (issue 24): any n ≥ 2 generated and ≥ 2 reference
images gives numbers, each with an interval or the reason it has none — never an internal error
(2 generated images used to be exit 4: a ZeroDivisionError in KID's jackknife).

The property test runs evaluate's math (``_metrics_for``, everything after extraction) on
features of every small size, including degenerate sets (one image repeated, two images
alternating, all-zero features, a reference that copies the generated set), for a face
extractor (copy rate) and one with logits (Inception Score); every metric it writes must pass
the results reader's interval checks. The command-line test runs the real path on two LFW
faces.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.evaluation import EvaluateConfig, _metrics_for
from gan_eval.features.extraction import Features
from gan_eval.features.registry import DlibFaceExtractor, InceptionExtractor
from gan_eval.results import Results, provenance
from gan_eval.sources import open_source

runner = CliRunner()
_made = iter(range(10**9))


def _features(n: int, d: int, seed: int, mode: str, logits: str | None) -> Features:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    if mode == "one image":
        x = x[:1].repeat(n, 1)
    elif mode == "two images":
        x = x[torch.arange(n) % 2]
    elif mode == "zeros":
        x = torch.zeros(n, d)
    tensors = {"main": x}
    if logits is not None:
        tensors[logits] = (torch.zeros(n, 1008) if mode == "zeros"
                           else 3 * torch.randn(n, 1008, generator=g))
    # a unique key: the nearest-reference search is memoised per pair of keys
    return Features("test", "main", tensors, f"small-n-{next(_made)}", "test", "h", "w")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_g=st.integers(2, 20), n_r=st.integers(2, 20), d=st.sampled_from([1, 2, 8, 64]),
       mode=st.sampled_from(["random", "one image", "two images", "zeros"]),
       copy_reference=st.booleans(), seed=st.integers(0, 2**16),
       extractor=st.sampled_from([DlibFaceExtractor, InceptionExtractor]))
def test_every_small_size_gives_numbers_or_says_why_not(
    n_g: int, n_r: int, d: int, mode: str, copy_reference: bool, seed: int,
    extractor: type, tmp_path_factory: object,
) -> None:
    gen = _features(n_g, d, seed, mode, extractor.logits)
    ref = (Features("test", "main", {"main": gen.main[: min(n_g, n_r)].clone()},
                    f"small-n-{next(_made)}", "test", "h", "w")
           if copy_reference and n_g >= 2
           else _features(n_r, d, seed + 1, "random", None))
    config = EvaluateConfig(splits=4, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample warnings are notes, not failures
        metrics, notes, omitted = _metrics_for(gen, ref, extractor,  # type: ignore[arg-type]
                                               config)
    names = {m.name for m in metrics}
    assert {"fid", "kid", "cmmd"} <= names
    if extractor.logits is not None:
        assert "is" in names | {o.name for o in omitted}
    assert all(o.reason for o in omitted)  # left out outside its regime, saying why
    for m in metrics:
        assert np.isfinite(m.value), m
        assert ("interval" in m.details) != ("no_interval" in m.details), m
        if "no_interval" in m.details:
            assert m.ci95 is None and m.details["no_interval"]
        else:
            assert m.checked_interval(f"{m.name}") is not None
    if n_g < 3:  # below the jackknife's minimum: the numbers, and why there is no interval
        for name in ("kid", "cmmd"):
            m = next(m for m in metrics if m.name == name)
            assert m.ci95 is None and m.details["no_interval"]
        assert any("kid" in note for note in notes)
    # what evaluate writes is what the results reader (and a gate) accepts
    path = Path(str(tmp_path_factory.getbasetemp())) / "small.json"  # type: ignore[attr-defined]
    Results(provenance=provenance(), metrics=metrics).save(path)
    assert len(Results.load(path).metrics) == len(metrics)


def test_evaluate_two_generated_faces_is_not_an_internal_error(tmp_path: Path) -> None:
    faces = open_source("builtin:lfw-subset").load()
    np.save(tmp_path / "two.npy", faces[:2].permute(0, 2, 3, 1).numpy())
    np.save(tmp_path / "ref.npy", faces[2:5].permute(0, 2, 3, 1).numpy())
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["evaluate", str(tmp_path / "two.npy"), "--reference",
                                 str(tmp_path / "ref.npy"), "--json", str(out), "--no-cache",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    saved = Results.load(out)
    kid = saved.metric("kid", "dlib-face")
    assert kid.n_generated == 2 and kid.ci95 is None and kid.details["no_interval"]
    assert saved.metric("cmmd", "dlib-face").ci95 is None
    assert all(np.isfinite(m.value) for m in saved.metrics)
    json.loads(out.read_text())  # strict JSON
