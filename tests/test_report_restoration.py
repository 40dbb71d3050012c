"""The default report's restoration GAN: trained on the training faces, audited first beside the
built-in baselines on the held-out faces, and judged by the restoration gates of the built-in
default gates, which a report without a restoration model does not apply.

Whether those gates pass the report's GAN and fail no restoration and an identity swapper is
tests/test_restoration_quality.py (slow: it trains the GAN).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gan_eval import audit
from gan_eval.catalogue import Producer, metrics_by
from gan_eval.cli import app, report_cmd
from gan_eval.errors import InputError
from gan_eval.gan.training import CHECKPOINT_DIR, QUICK_RESTORATION
from gan_eval.gates import load_config
from gan_eval.results import Results

RESTORATION = metrics_by(Producer.RESTORATION)


def test_default_gates_judge_the_restoration_gan_on_psnr_and_identity_swaps() -> None:
    gates = load_config(audit.default_gates()).gates
    restoration = {(g.metric, g.extractor) for g in gates if g.metric in RESTORATION}
    assert {("psnr", "pixels"), ("identity_swap_rate", "dlib-face")} <= restoration
    swap = next(g for g in gates if g.metric == "identity_swap_rate")
    assert swap.max is not None and swap.max < 0.5  # a swapper (rate 1) fails it
    assert any(g.metric not in RESTORATION for g in gates)


@pytest.mark.parametrize(("label", "restoring", "kept"), [
    (None, True, "all"), (None, False, "generator"), ("mine.toml", False, "all"),
    ("mine.toml", True, "all")])
def test_restoration_gates_are_dropped_only_from_the_default_gates_of_a_run_without_one(
        label: str | None, restoring: bool, kept: str) -> None:
    gates = load_config(audit.default_gates())
    judged = audit._gates_for(gates, label, restoring)
    if kept == "all":
        assert judged == gates
    else:
        assert judged.gates == tuple(g for g in gates.gates if g.metric not in RESTORATION)
        assert judged.gates and (judged.tolerance, judged.alpha) == (gates.tolerance, gates.alpha)


@pytest.mark.parametrize(("heldout", "restoration", "steps", "trains"), [
    ("builtin:lfw-heldout", ("builtin:none",), 400, True),
    ("builtin:lfw-heldout", ("builtin:none",), 0, False),
    (None, ("builtin:none",), 400, False),
    ("builtin:lfw-heldout", (), 400, False),
    ("builtin:lfw-heldout", ("runs/mine/checkpoint", "builtin:none"), 400, False)])
def test_the_report_trains_a_restorer_only_when_it_has_held_out_faces_and_no_model_given(
        heldout: str | None, restoration: tuple[str, ...], steps: int, trains: bool) -> None:
    config = audit.AuditConfig(restoration=restoration, restoration_steps=steps)
    assert audit._trains_restorer(config, heldout) is trains


def test_restoration_steps_default_is_the_quick_run_in_the_api_and_the_cli() -> None:
    cli_default = inspect.signature(report_cmd).parameters["restoration_steps"].default
    assert cli_default == audit.AuditConfig().restoration_steps == QUICK_RESTORATION["steps"]


@pytest.mark.parametrize("steps", [-1, -400])
def test_negative_restoration_steps_name_the_option(steps: int, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--restoration-steps"):
        audit.AuditConfig(restoration_steps=steps)
    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "r"),
                                      "--restoration-steps", str(steps), "--quiet"])
    assert result.exit_code == 2 and "--restoration-steps" in result.output
    assert not (tmp_path / "r" / "run").exists()


@pytest.mark.slow
def test_the_default_report_trains_and_audits_a_restoration_gan_first(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["report", "--data", "builtin:lfw-train", "--out", str(out), "--steps", "2",
            "--count", "40", "--attack-n", "2", "--restoration-steps", "3", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = Results.load(out / "results.json")
    section = results.restoration
    trained = str(out / audit.RESTORATION_RUN / CHECKPOINT_DIR)
    assert section["audited"] == trained and next(iter(section["methods"])) == trained
    assert {"builtin:none", "builtin:bicubic", "builtin:wiener"} <= set(section["methods"])
    assert section["trained"]["step"] == 3 and not section["trained"]["reused"]
    assert {m.name for m in results.metrics} >= {"psnr", "identity_swap_rate"}
    judged = {c["gate"] for c in results.gates["checks"]}
    assert {"psnr[pixels]", "identity_swap_rate[dlib-face]", "fid[dlib-face]"} <= judged
    page = (out / "index.html").read_text()
    assert "the report's restoration GAN, trained on the training faces for 3 steps" in page
    # a second report reuses both finished runs
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert Results.load(out / "results.json").restoration["trained"]["reused"]
