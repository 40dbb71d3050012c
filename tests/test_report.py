"""``gan-eval report`` end to end on a reduced budget, the page it writes, and its bad input.

One report run (module fixture) trains a DCGAN for 2 steps on real LFW faces stored in a folder
named ``<script>alert(1)</script>``, so the same page serves the end-to-end, escaping and browser
tests. The browser test renders it in headless Chromium (Debian ``chromium``; `.ci/run` installs
it) and fails on any console message: the page has no scripts, so a message can only be a blocked
external request (the page's Content-Security-Policy refuses them) or an error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.report.html import fmt
from gan_eval.results import Results
from gan_eval.sources import open_source

runner = CliRunner()
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    faces = root / HOSTILE  # "/" cannot be in a file name: two nested folders spell it
    faces.mkdir(parents=True)
    images = open_source("builtin:lfw-subset").read(list(range(100)))
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(faces / f"{i:03d}.png")
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GAN_EVAL_CACHE_DIR", str(root / "cache"))
        mp.delenv("GAN_EVAL_INCEPTION_WEIGHTS", raising=False)
        mp.setenv("TORCH_HOME", str(root / "torch-home"))  # no Inception weights: the note shows
        result = runner.invoke(app, ["report", "--data", str(faces), "--out", str(out),
                                     "--steps", "2", "--n", "24", "--attack-n", "2",
                                     "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out


def test_report_writes_results_plots_and_page(report_dir: Path) -> None:
    results = Results.load(report_dir / "results.json")
    names = {(m.name, m.extractor) for m in results.metrics}
    for expected in [("fid", "dlib-face"), ("kid", "dlib-face"), ("precision", "dlib-face"),
                     ("leakage_rate", "dlib-face"), ("identity_diversity", "dlib-face"),
                     ("dodging_success", "dlib-face"), ("corruption_match_rate", "dlib-face")]:
        assert expected in names
    assert results.metric("fid", "dlib-face").n_generated == 24
    assert results.metric("fid", "dlib-face").n_reference == 100
    assert results.training["step"] == 2 and len(results.training["curve"]["step"]) == 2
    assert results.gates["checks"] and isinstance(results.gates["passed"], bool)
    assert results.recognition["leakage"]["top_pairs"]
    assert results.robustness["attacks"]
    assert any("Inception" in note for note in results.provenance["notes"])
    chance = results.metric("copy_rate", "dlib-face").details["chance"]["rate"]
    assert f"expected by chance: {fmt(chance)}" in (report_dir / "index.html").read_text()
    for plot in ("training", "attacks", "corruptions", "birthday", "samples"):
        assert Image.open(report_dir / "plots" / f"{plot}.png").size[0] > 100
    assert (report_dir / "run" / "checkpoint" / "checkpoint.json").is_file()
    # files are shared like any output (not mkstemp's owner-only 0600)
    assert (report_dir / "index.html").stat().st_mode & 0o044 == 0o044 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_page_is_self_contained(report_dir: Path) -> None:
    html = (report_dir / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources, "the page shows no pictures"
    assert all(s.startswith(("data:image/png;base64,", "#")) for s in sources), sources
    assert "<script" not in html.replace("&lt;script", "")
    assert "<link" not in html and "@import" not in html and "url(" not in html
    n_pairs = len(Results.load(report_dir / "results.json").recognition["leakage"]["top_pairs"])
    assert len(re.findall(r'alt="generated \d+"', html)) == n_pairs  # each pair shows both faces
    assert len(re.findall(r'alt="training \d+"', html)) == n_pairs
    assert 'alt="generated samples"' in html
    assert "birthday support (generated)" in html  # the recognition audit as the CLI prints it


def test_user_strings_are_escaped(report_dir: Path) -> None:
    html = (report_dir / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE not in html


def test_report_reuses_a_finished_run(report_dir: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "again"
    shutil.copytree(report_dir / "run", out / "run")
    data = json.loads((report_dir / "results.json").read_text())["training"]["config"]["data"]
    monkeypatch.chdir(tmp_path)
    spelled = os.path.relpath(data)  # the same folder, spelled differently from the run's
    assert spelled != data
    result = runner.invoke(app, ["report", "--data", spelled, "--out", str(out), "--steps", "2",
                                 "--n", "24", "--attack-n", "2", "--device", "cpu"],
                           env={"GAN_EVAL_CACHE_DIR": str(tmp_path / "cache"),
                                "TORCH_HOME": str(tmp_path / "torch-home")})
    assert result.exit_code == 0, result.output
    assert "reusing the finished run" in result.output
    assert Results.load(out / "results.json").training["reused"] is True


def test_report_refuses_a_run_on_other_images(report_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "other"
    shutil.copytree(report_dir / "run", out / "run")
    result = runner.invoke(app, ["report", "--data", "builtin:lfw-nonfaces", "--out", str(out),
                                 "--steps", "2", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "images differ from --data 'builtin:lfw-nonfaces'" in " ".join(result.output.split())
    assert not (out / "index.html").exists()


def test_from_results_renders_the_same_page(report_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    result = runner.invoke(app, ["report", "--from-results", str(report_dir / "results.json"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert page == (report_dir / "index.html").read_text()
    assert Results.load(out / "results.json").to_json() == \
        Results.load(report_dir / "results.json").to_json()


def test_report_prints_the_gate_verdict_and_exits_0_either_way(
        report_dir: Path, tmp_path: Path) -> None:
    raw = json.loads((report_dir / "results.json").read_text())
    checks = raw["gates"]["checks"]
    for passed in (True, False):
        for check in checks:
            check["passed"] = passed or check is not checks[-1]
        raw["gates"]["passed"] = passed
        (tmp_path / "r.json").write_text(json.dumps(raw))
        result = runner.invoke(app, ["report", "--from-results", str(tmp_path / "r.json"),
                                     "--out", str(tmp_path / "o")])
        assert result.exit_code == 0, result.output
        verdict = (f"all {len(checks)} passed (built-in default gates)" if passed
                   else f"1 of {len(checks)} failed: {checks[-1]['gate']}")
        assert result.output.splitlines()[-1] == f"gates        {verdict}"


def test_a_moved_report_folder_still_finds_its_run(report_dir: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(report_dir, moved)
    raw = json.loads((moved / "results.json").read_text())
    records = [raw["training"]["samples"], raw["provenance"]["data"]["generated"]]
    assert all(r["relative"] == "run/checkpoint" for r in records)
    for record in records:  # as if the original machine's absolute path were gone
        record["data"] = "/nonexistent/" + record["relative"]
    (moved / "results.json").write_text(json.dumps(raw))
    result = runner.invoke(app, ["report", "--from-results", str(moved / "results.json"),
                                 "--out", str(moved)])
    assert result.exit_code == 0, result.output
    html = (moved / "index.html").read_text()
    assert "Samples are not shown" not in html
    assert re.search(r'alt="generated \d+"', html)


def test_from_results_says_why_faces_are_missing(report_dir: Path, tmp_path: Path) -> None:
    raw = json.loads((report_dir / "results.json").read_text())
    raw["provenance"]["data"]["reference"]["content_hash"] = "0" * 64  # the faces "changed"
    raw["training"]["samples"]["data"] = str(tmp_path / "gone")
    (tmp_path / "r.json").write_text(json.dumps(raw))
    result = runner.invoke(app, ["report", "--from-results", str(tmp_path / "r.json"),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "o" / "index.html").read_text()
    assert "has changed since the run" in html
    assert "Samples are not shown" in html and "gone" in html
    assert not re.search(r'alt="generated \d+"', html)


def test_page_shows_utility_protocols_and_their_skips() -> None:
    from gan_eval.report.html import Pictures, render_html
    from gan_eval.results import provenance

    results = Results(provenance=provenance(), recognition={"utility": {
        "generated_as_training_data": {"accuracy_real_only": 0.875, "delta_ci95": [-0.1, 0.05]},
        "generated_as_impostors": {"skipped": True, "reason": "no <b>pairs</b>"},
    }, "diversity": {"generated": {"n": 4, "at": {}}}})
    html = render_html(results, Pictures())
    assert "utility: generated as training data" in html
    assert "accuracy_real_only</td><td>0.875" in html and "-0.1, 0.05" in html
    assert "no &lt;b&gt;pairs&lt;/b&gt;" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-results", "missing.json"], "missing.json: no such results file"),
        (["--data", "no/such/folder", "--steps", "1"], "no/such/folder"),
        (["--gates", "bad.toml"], "bad.toml"),
        (["--n", "1"], "--n"),
        (["--checkpoint", "not-a-checkpoint"], "not-a-checkpoint"),
        (["--heldout", "no/such/faces.npz", "--steps", "1"], "--heldout no/such/faces.npz"),
    ],
)
def test_bad_input_exits_2_naming_it(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("[[gate]]\nmetric = fid\n")
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "index.html").exists()
    assert not (tmp_path / "out" / "run").exists()  # refused before any training


# --- headless Chromium ------------------------------------------------------------------------

def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("GAN_EVAL_REQUIRE_BROWSER") or os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    return found


def render(page: Path, shot: Path, *, height: int = 2400) -> list[str]:
    """Screenshot ``page`` in headless Chromium; returns the page's console messages."""
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--disable-background-networking", "--no-first-run", "--disable-extensions",
         "--enable-logging=stderr", "--v=0", f"--window-size=1200,{height}",
         f"--screenshot={shot}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HOME": str(shot.parent)},
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def test_console_capture_sees_errors_and_blocked_requests(report_dir: Path, tmp_path: Path) -> None:
    """Control for the browser test: the capture really reports what it is meant to catch."""
    noisy = tmp_path / "noisy.html"
    noisy.write_text('<!DOCTYPE html><p>x</p><script>console.error("boom")</script>')
    assert any("boom" in line for line in render(noisy, tmp_path / "noisy.png", height=200))
    html = (report_dir / "index.html").read_text()
    leaky = tmp_path / "leaky.html"
    leaky.write_text(html.replace("</main>", '<img src="http://127.0.0.1:9/x.png"></main>'))
    messages = render(leaky, tmp_path / "leaky.png", height=200)
    assert any("Content Security Policy" in line for line in messages)


def test_report_renders_in_headless_chromium(report_dir: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    messages = render(report_dir / "index.html", shot)
    assert messages == []
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (2400, 1200)
    background = np.array([0xF7, 0xF8, 0xFA], dtype=np.float64)
    drawn = np.abs(pixels - background).sum(axis=2) > 30
    assert drawn.mean() > 0.05, "the page looks blank"
    assert pixels.std() > 20
    # the verdict badge (red or green) is drawn in the top right corner
    corner = pixels[10:80, 900:1180].reshape(-1, 3)
    badge = (np.abs(corner - [0xC9, 0x2A, 0x2A]).sum(1) < 40) | \
        (np.abs(corner - [0x2B, 0x8A, 0x3E]).sum(1) < 40)
    assert badge.sum() > 500


def _provenance_rows(html: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every row of the page's provenance tables."""
    tail = html.split('id="provenance"', 1)[1]
    rows = []
    for section, table in re.findall(r"<h3>(.*?)</h3>\s*<table class=\"kv\">(.*?)</table>", tail,
                                     flags=re.S):
        rows += [(section, k, v) for k, v in
                 re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", table, flags=re.S)]
    return rows


def test_provenance_is_folded_into_sections(report_dir: Path) -> None:
    prov = json.loads((report_dir / "results.json").read_text())["provenance"]
    said_once = {"created", "command", "seed", "notes", "gan_eval", "torch", "packages",
                 "optional_packages", "system", "device", "weights"}
    for name, part in prov["parts"].items():
        assert not said_once & set(part), (name, sorted(said_once & set(part)))
        assert all(value not in (None, "", [], {}) for value in part.values()), name
        for role, record in part.get("data", {}).items():  # only records of its own
            assert record != prov["data"].get(role), (name, role)
    assert set(prov["data"]) >= {"generated", "reference"}
    assert prov["gan_eval"]["version"]
    if (Path(__file__).resolve().parents[1] / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", prov["gan_eval"]["commit"])
        assert isinstance(prov["gan_eval"]["dirty"], bool)
    assert prov["torch"]["build"] == "CPU only" or prov["torch"]["build"].startswith("CUDA")
    assert {"dlib-bin", "timm", "onnxruntime"} <= set(prov["optional_packages"])
    assert prov["device"].startswith("cpu (")  # the device that ran, not "auto"
    assert prov["weights_sha256"]["dlib-face"]

    rows = _provenance_rows((report_dir / "index.html").read_text())
    keys = [(section, key) for section, key, _ in rows]
    assert len(keys) == len(set(keys)), "a key repeated within a section"
    assert all(value.strip() for _, _, value in rows), "an empty row"
    assert len(rows) < 60, len(rows)
    assert {"Run", "gan-eval", "Software", "Data"} <= {section for section, _, _ in rows}
    training = json.loads((report_dir / "results.json").read_text())["training"]
    assert training["config"]["device"] == "cpu" or training["device"].startswith("cpu (")


def test_header_says_what_was_trained_on_what(report_dir: Path) -> None:
    html = (report_dir / "index.html").read_text()
    subject = re.search(r'<div class="subject">(.*?)</div>', html, flags=re.S)
    assert subject is not None
    assert "checkpoint, state sha256" in subject.group(1)
    assert "trained on and compared with" in subject.group(1)


def test_faceness_says_which_detector_and_why(report_dir: Path) -> None:
    section = Results.load(report_dir / "results.json").recognition["faceness"]
    html = (report_dir / "index.html").read_text()
    assert f"Detector <strong>{section['detector']}</strong>" in html
    other = {"dlib-hog": "skimage-lbp", "skimage-lbp": "dlib-hog"}[section["detector"]]
    assert other in section["chosen_because"] and "not comparable" in section["chosen_because"]
    assert "Why this detector" in html


def test_report_subject_of_an_external_generator_claims_no_training_data() -> None:
    from gan_eval.audit import subject

    class External:
        data = "examples/out/generator.onnx"

        def record(self) -> dict[str, object]:
            return {"data": self.data, "kind": "generator-onnx", "content_hash": "c" * 64,
                    "generator": {"spec": self.data, "kind": "onnx",
                                  "files_sha256": {"/abs/generator.onnx": "ab" * 32}}}

    line = subject(External(), "builtin:lfw-subset")  # type: ignore[arg-type]
    assert "trained on" not in line
    assert "generator.onnx" in line and "onnx generator" in line and "abababab" in line
    assert line.endswith("compared with builtin:lfw-subset")


def test_page_shows_floor_ceiling_and_span(report_dir: Path) -> None:
    """Every distribution metric's row, the summary cards and the gate table show its floor
    (real vs real), ceiling (noise or the mean face) and span; an uncalibrated leakage card is
    read at the calibrated threshold, saying why."""
    results = Results.load(report_dir / "results.json")
    html = (report_dir / "index.html").read_text()
    assert "floor (real)" in html and "ceiling (degenerate)" in html
    assert results.omission("fid_infinity", "dlib-face") is not None  # n = 24: no FID∞ at all
    for name in ("fid", "kid", "cmmd", "precision", "recall", "density", "coverage"):
        span = results.metric(name, "dlib-face").span()
        assert span.floor is not None and span.ceiling is not None, name
        assert (span.n_generated, span.n_reference) == (24, 76)  # h = min(24, 100 // 2)
        assert f"<td class=\"num\">{fmt(span.floor)}</td>" in html, name
    fid = results.metric("fid", "dlib-face").span()
    card = f"floor {fmt(fid.floor)} · ceiling {fmt(fid.ceiling)} · span {fid.value:.2f}"
    assert card in html
    checks = results.gates["checks"]
    assert {c["kind"] for c in checks} == {"span"}  # the default gates
    assert all(c["floor"] is not None and c["span"] is not None for c in checks)
    assert "<th>floor</th><th>ceiling</th><th>span</th>" in html
    leak = results.metric("leakage_rate", "dlib-face")
    assert leak.details["cannot_judge"]["instead"] == "leakage_rate_calibrated"
    calibrated = results.metric("leakage_rate_calibrated", "dlib-face")
    assert (f"at the calibrated threshold {fmt(calibrated.details['threshold'])}; 0.6 cannot "
            "judge here") in html


def test_a_gate_that_cannot_judge_is_shown_as_such(report_dir: Path, tmp_path: Path) -> None:
    raw = json.loads((report_dir / "results.json").read_text())
    raw["gates"]["checks"][0].update(kind="cannot_judge", passed=False,
                                     message="cannot judge a span gate on fid: why")
    raw["gates"]["passed"] = False
    (tmp_path / "r.json").write_text(json.dumps(raw))
    result = runner.invoke(app, ["report", "--from-results", str(tmp_path / "r.json"),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    gate = raw["gates"]["checks"][0]["gate"]
    assert result.output.splitlines()[-1].startswith(f"gates        cannot judge 1 of "
                                                     f"{len(raw['gates']['checks'])}: {gate}")
    page = (tmp_path / "o" / "index.html").read_text()
    assert "Gates cannot judge" in page and ">cannot judge</td>" in page
