"""Identity-level statistics in the recognition audit, end to end on real dlib embeddings of the
built-in LFW faces (``builtin:lfw-subset``: 100 photos of about as many people, 25×25 gray).

The 100 people are split by row: 0–39 are the *training* people (the reference set), 40–79 the
*held-out* people (``--heldout``), 80–99 people in neither set. A "generator" is a set of
augmented views (mirror, 1-px shifts, ±10% brightness) of some of these faces, fed through the
real :func:`gan_eval.recognition` path (framing, dlib embedding, the recognition section):

* copies of half the training people (rows 0–19) must be detected by the membership test
  (p < 0.01);
* faces of held-out people, and faces of people in neither set, must not (p > 0.05).

The default tests use 120 generated faces (embedding is the cost: ~2–3 s per 100 faces on the
shared 2-core machine); the ``slow`` test repeats both at n = 1,000, as issue 18 states them, and
the null calibration over 200 random identity splits. Embeddings go through one private feature
cache per module, so each image set is embedded once.

The labelled sets are .npz files with a ``labels`` array (each person: the photo and its mirror),
so identities are label centroids; the unlabelled ones take each image as its own identity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.data.source import ArraySource
from gan_eval.errors import InputError
from gan_eval.features.cache import FeatureCache
from gan_eval.features.extraction import extract
from gan_eval.features.registry import DlibFaceExtractor
from gan_eval.identity import RecognitionConfig, recognition
from gan_eval.metrics.identity import membership_test
from gan_eval.report.html import Pictures, fmt, render_html
from gan_eval.results import Results
from gan_eval.sources import open_source

runner = CliRunner()

TRAIN = range(0, 40)
HELDOUT = range(40, 80)
NEITHER = range(80, 100)
N_GENERATED = 120
FAST = {"birthday_trials": 4, "faceness_max": 0, "permutations": 2000}


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One private feature cache for the module (the user's is never touched): the command and
    the API embed each image set once, and the Vendi test reads the very embeddings back."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GAN_EVAL_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return open_source("builtin:lfw-subset").load()


def views(faces: torch.Tensor, rows: range, n: int, seed: int) -> torch.Tensor:
    """``n`` uint8 augmented views of the faces in ``rows`` (cycled in order)."""
    gen = torch.Generator().manual_seed(seed)
    picked = faces[torch.tensor([rows[i % len(rows)] for i in range(n)])]
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.where(flip[:, None, None, None], picked.flip(-1), picked).float()
    shifts = torch.randint(-1, 2, (n, 2), generator=gen)
    out = torch.stack([torch.roll(img, (int(dy), int(dx)), dims=(-2, -1))
                       for img, (dy, dx) in zip(out, shifts, strict=True)])
    out = out * (0.9 + 0.2 * torch.rand(n, 1, 1, 1, generator=gen))
    return out.round().clamp(0, 255).byte()


def labelled_npz(faces: torch.Tensor, rows: range, path: Path) -> Path:
    """Each person's photo and its mirror, labelled with the LFW row (two images per person)."""
    idx = torch.tensor(list(rows))
    images = torch.cat([faces[idx], faces[idx].flip(-1)])
    labels = np.concatenate([np.asarray(rows), np.asarray(rows)]).astype(np.int64)
    np.savez(path, images=images.permute(0, 2, 3, 1).numpy(), labels=labels)
    return path


def source(x: torch.Tensor, name: str) -> ArraySource:
    return ArraySource(x, data=name, kind="array")


@pytest.fixture(scope="module")
def sets(faces: torch.Tensor, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("identity")
    return {"reference": labelled_npz(faces, TRAIN, root / "train.npz"),
            "heldout": labelled_npz(faces, HELDOUT, root / "heldout.npz")}


@pytest.fixture(scope="module")
def copies(faces: torch.Tensor, sets: dict[str, Path],
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, str]:
    """The copying generator through the command: N_GENERATED views of training people 0–19."""
    root = tmp_path_factory.mktemp("copies")
    gen = views(faces, range(0, 20), N_GENERATED, seed=1)
    np.save(root / "gen.npy", gen.permute(0, 2, 3, 1).numpy())
    out = root / "rec.json"
    result = runner.invoke(app, [
        "recognition", str(root / "gen.npy"), "--reference", str(sets["reference"]),
        "--heldout", str(sets["heldout"]), "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    return Results.load(out), result.output


def test_copies_of_half_the_training_people_are_detected(copies: tuple[Results, str]) -> None:
    results, _ = copies
    mem = results.recognition["identity"]["membership"]
    print(f"copies: membership p = {mem['p_value']:.2g}, statistic {mem['statistic']:.3f}")
    assert mem["p_value"] < 0.01
    assert mem["train"] == {"unit": "label", "identities": 40, "images": 80,
                            "meaning": mem["train"]["meaning"]}
    assert mem["heldout"]["unit"] == "label" and mem["heldout"]["identities"] == 40
    assert mem["n_generated"] == N_GENERATED and mem["matched"] == N_GENERATED
    assert mem["train_match_rate"] > 10 * mem["heldout_match_rate"]
    # the most reproduced training people are copied ones (labels are the LFW rows)
    assert all(int(t["identity"]) < 20 for t in mem["most_matched_training"])
    assert "warnings" not in mem


def test_copies_are_unauthentic_beside_held_out_faces(copies: tuple[Results, str]) -> None:
    results, _ = copies
    auth = results.recognition["identity"]["authenticity"]
    print(f"copies: authentic {auth['rate']['estimate']:.3f} vs held-out "
          f"{auth['heldout_rate']['estimate']:.3f}, p = {auth['p_value']:.2g}")
    metric = results.metric("authenticity")
    assert metric.value == auth["rate"]["estimate"] == auth["authentic"] / N_GENERATED
    assert metric.value < auth["heldout_rate"]["estimate"]
    assert auth["p_value"] < 0.01
    # the interval contract: ci95 is the Wilson interval, details.interval its full record
    interval = metric.details["interval"]
    assert interval["method"] == "wilson" and interval["estimand"] == "population"
    assert metric.ci95 == pytest.approx(tuple(interval["ci"]))
    assert interval["n"] == N_GENERATED and interval["successes"] == auth["authentic"]
    assert metric.details["heldout"]["value"] == auth["heldout_rate"]["estimate"]


def test_json_and_table_carry_the_identity_statistics(copies: tuple[Results, str]) -> None:
    results, output = copies
    identity = results.recognition["identity"]
    assert set(identity) == {"vendi", "membership", "authenticity"}
    for key in ("p_value", "statistic", "train_match_rate", "heldout_match_rate", "permutations",
                "method", "meaning"):
        assert key in identity["membership"]
    vendi = identity["vendi"]
    assert vendi["kernel"] == "rbf" and vendi["bandwidth"] == 0.3
    assert vendi["reference"]["n"] == 80 and "note" in vendi["reference"]  # 80 < N_GENERATED
    assert results.metric("vendi_identities").value == vendi["generated"]["value"]
    assert results.metric("vendi_identities").details["reference"] == vendi["reference"]["value"]
    # 25×25 gray faces: 0.6 accepts ~20% of impostor pairs, and the Vendi part says what that
    # means for it
    assert "within-person variation" in vendi["warning"]
    assert results.provenance["data"]["heldout"]["n"] == 80
    assert results.recognition["counts"]["heldout_embedded"] == 80
    for line in ("vendi ", "membership     p = ", "authenticity   ",
                 "a small p-value says the generator reproduces the people it was trained on"):
        assert line in output


def test_vendi_in_the_results_equals_the_vendi_score_package(
    copies: tuple[Results, str], module_cache: Path
) -> None:
    """The command's own embeddings (read back from the module's feature cache), RBF K built
    here in float64, ``vendi_score.vendi.score_K``: equal to 1e-9 relative (two float64
    eigensolvers on the same matrix)."""
    vendi = pytest.importorskip("vendi_score.vendi")
    results, _ = copies
    data = results.provenance["data"]["generated"]["data"]
    features = extract(open_source(data), DlibFaceExtractor("cpu"), batch_size=64,
                       cache=FeatureCache(module_cache), progress=False)
    assert features.from_cache
    x = features.main.double().numpy()
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * 0.3**2))
    expected = vendi.score_K(k)
    assert results.metric("vendi_identities").value == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def heldout_people(faces: torch.Tensor, sets: dict[str, Path]) -> Results:
    gen = source(views(faces, HELDOUT, N_GENERATED, seed=2), "held-out people")
    return recognition(gen, str(sets["reference"]),
                       RecognitionConfig(heldout=str(sets["heldout"]), **FAST))


def test_faces_of_held_out_people_are_not_detected(heldout_people: Results) -> None:
    mem = heldout_people.recognition["identity"]["membership"]
    auth = heldout_people.recognition["identity"]["authenticity"]
    print(f"held-out people: membership p = {mem['p_value']:.3f}, authenticity p = "
          f"{auth['p_value']:.3f}")
    assert mem["p_value"] > 0.05
    assert mem["heldout_match_rate"] > mem["train_match_rate"]
    assert auth["p_value"] > 0.05  # views of unseen people are as authentic as unseen photos


def test_vendi_grows_with_the_number_of_people(
    copies: tuple[Results, str], heldout_people: Results
) -> None:
    """Same n and the same augmentations: views of 40 people score higher than views of 20."""
    twenty = copies[0].metric("vendi_identities").value
    forty = heldout_people.metric("vendi_identities").value
    print(f"Vendi at n={N_GENERATED}: 20 people {twenty:.1f}, 40 people {forty:.1f}")
    assert twenty < forty


def test_faces_of_new_people_are_not_detected_unlabelled(faces: torch.Tensor) -> None:
    """No labels anywhere: every image is its own identity on both sides."""
    gen = source(views(faces, NEITHER, N_GENERATED // 2, seed=3), "new people")
    results = recognition(gen, source(faces[40:80].clone(), "train"),
                          RecognitionConfig(heldout=source(faces[0:40].clone(), "heldout"),
                                            **FAST))
    mem = results.recognition["identity"]["membership"]
    print(f"new people, unlabelled: membership p = {mem['p_value']:.3f}")
    assert mem["train"]["unit"] == mem["heldout"]["unit"] == "image"
    assert mem["p_value"] > 0.05


@pytest.mark.slow
def test_membership_at_n_1000(faces: torch.Tensor, sets: dict[str, Path]) -> None:
    """Issue 18's setting: 1,000 generated faces; copies of half the training people are
    detected (p < 0.01), faces of held-out people are not (p > 0.05)."""
    config = RecognitionConfig(heldout=str(sets["heldout"]), **FAST)
    copied = recognition(source(views(faces, range(0, 20), 1000, seed=11), "copies"),
                         str(sets["reference"]), config)
    unseen = recognition(source(views(faces, HELDOUT, 1000, seed=12), "held-out people"),
                         str(sets["reference"]), config)
    p_copied = copied.recognition["identity"]["membership"]["p_value"]
    p_unseen = unseen.recognition["identity"]["membership"]["p_value"]
    print(f"membership p-value at n=1000: copies {p_copied:.2g}, held-out people {p_unseen:.3f}")
    assert p_copied < 0.01 < 0.05 < p_unseen


def test_without_held_out_faces_membership_is_skipped_with_the_reason(
    faces: torch.Tensor, sets: dict[str, Path]
) -> None:
    results = recognition(source(faces[80:].clone(), "gen"), str(sets["reference"]),
                          RecognitionConfig(**FAST))
    identity = results.recognition["identity"]
    mem = identity["membership"]
    assert mem["skipped"] and "--heldout" in mem["reason"] and "p_value" not in mem
    auth = identity["authenticity"]
    assert auth["heldout_rate"] is None and auth["p_value"] is None and "--heldout" in auth["note"]
    metric = results.metric("authenticity")
    assert metric.details["p_value"] is None and "note" in metric.details
    assert {m.name for m in results.metrics} >= {"vendi_identities", "authenticity"}
    # the report (what `gan-eval report` draws for the default run, which has no held-out set)
    html = render_html(results, Pictures())
    assert 'id="identity"' in html and "Skipped: no held-out faces" in html
    assert "no base rate to compare with" in html


def test_report_section_shows_the_numbers_and_what_they_mean(copies: tuple[Results, str]) -> None:
    results, _ = copies
    html = render_html(results, Pictures())
    section = html[html.index('<h2 id="identity">'):html.index('<h2 id="recognizer">')]
    identity = results.recognition["identity"]
    for text in ("The effective number of distinct people",
                 "A small p-value says the generator leaks its training identities",
                 "not copies; real faces the generator never saw set the base rate",
                 fmt(identity["vendi"]["generated"]["value"]),
                 fmt(identity["membership"]["p_value"]),
                 fmt(identity["authenticity"]["rate"]["estimate"]),
                 fmt(identity["authenticity"]["heldout_rate"]["estimate"])):
        assert text in section, text
    assert "Skipped" not in section


def test_mixed_identity_units_are_warned_and_shared_images_refused(
    faces: torch.Tensor, sets: dict[str, Path]
) -> None:
    # an unlabelled held-out set beside a labelled reference: warned
    held = source(faces[40:80].clone(), "unlabelled held-out")
    results = recognition(source(faces[80:].clone(), "gen"), str(sets["reference"]),
                          RecognitionConfig(heldout=held, **FAST))
    warnings = results.recognition["identity"]["membership"]["warnings"]
    assert any("counted by label" in w for w in warnings)
    # ... that repeats five training faces: the membership test cannot be judged (this used to
    # be a warning; tests/test_recognition_heldout.py covers the class)
    leaky = source(torch.cat([faces[40:80], faces[0:5]]), "leaky held-out")
    with pytest.raises(InputError, match=r"cannot judge membership: 5 held-out face\(s\)"):
        recognition(source(faces[80:].clone(), "gen"), str(sets["reference"]),
                    RecognitionConfig(heldout=leaky, **FAST))


@pytest.mark.slow
def test_false_alarm_rate_on_random_identity_splits(faces: torch.Tensor) -> None:
    """Null calibration on real embeddings: 200 random splits of the 100 people into 40
    training / 40 held-out / 20 generated (10 augmented views each); p < 0.05 in at most 9% of
    splits (5% + 2.8 binomial sd at 200 draws)."""
    extractor = DlibFaceExtractor("cpu")
    emb = extract(source(faces, "faces"), extractor, batch_size=100, cache=None,
                  progress=False).main
    per = 10
    all_views = views(faces, range(100), 100 * per, seed=4)  # view i shows person i % 100
    view_emb = extract(source(all_views, "views"), extractor, batch_size=250, cache=None,
                       progress=False).main
    rng = np.random.default_rng(5)
    alarms = 0
    trials = 200
    for _ in range(trials):
        people = rng.permutation(100)
        train, held, new = people[:40], people[40:80], people[80:]
        gen_rows = torch.from_numpy(np.flatnonzero(np.isin(np.arange(100 * per) % 100, new)))
        p = membership_test(view_emb[gen_rows], emb[train], emb[held], permutations=499,
                            seed=int(rng.integers(1 << 31))).p_value
        alarms += p < 0.05
    print(f"membership false alarms at 0.05 over {trials} random splits: {alarms}")
    assert alarms / trials <= 0.09, alarms


# ------------------------------------------------------------------------------------------------
# Bad --heldout input: exit 2, naming the option
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: str(d / "missing"), "no such file"),
        (lambda d: str(d / "notes.txt"), "unsupported file type"),
        (lambda d: str(d / "empty"), "no files"),
        (lambda d: "builtin:lfw-subset", "same images as the training (reference) set"),
        (lambda d: str(d / "gen.py") + ":make", "got a generator"),
    ],
)
def test_cli_bad_heldout_exits_2_naming_the_option(
    tmp_path: Path, make: object, message: str
) -> None:
    (tmp_path / "notes.txt").write_text("not images")
    (tmp_path / "empty").mkdir()
    (tmp_path / "gen.py").write_text("raise SystemExit('must not run')\n")
    heldout = make(tmp_path)  # type: ignore[operator]
    result = runner.invoke(app, ["recognition", "builtin:lfw-subset", "--reference",
                                 "builtin:lfw-subset", "--heldout", heldout])
    assert result.exit_code == 2, result.output
    assert "--heldout" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_heldout_results_round_trip_as_strict_json(copies: tuple[Results, str],
                                                   tmp_path: Path) -> None:
    results, _ = copies
    path = tmp_path / "again.json"
    results.save(path)
    json.loads(path.read_text())  # strict JSON: no NaN / Infinity
    assert Results.load(path).recognition["identity"] == results.recognition["identity"]


def test_a_person_named_in_both_folders_is_warned(faces: torch.Tensor, tmp_path: Path) -> None:
    """Folder layouts name people: the same subfolder name in --reference and --heldout is a
    person in both sets (npz integer labels are not compared: they mean nothing across files)."""
    from PIL import Image

    for root, names, first in (("ref", ("alice", "bob", "carol"), 0),
                               ("held", ("alice", "dave", "erin"), 50)):
        for k, name in enumerate(names):
            (tmp_path / root / name).mkdir(parents=True)
            folder = tmp_path / root / name
            for j, img in enumerate((faces[first + k], faces[first + k].flip(-1))):
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{j}.png")
    results = recognition(source(faces[80:].clone(), "gen"), str(tmp_path / "ref"),
                          RecognitionConfig(heldout=str(tmp_path / "held"), **FAST))
    mem = results.recognition["identity"]["membership"]
    assert mem["train"]["identities"] == mem["heldout"]["identities"] == 3
    assert mem["warnings"] == [
        "1 identity name(s) appear in both the reference and the held-out set (e.g. alice): "
        "held-out people must not be in training"
    ]
    assert {t["identity"] for t in mem["most_matched_training"]} <= {"alice", "bob", "carol"}
