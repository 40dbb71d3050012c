"""``gan-eval weights``: the table, locating files, and ``fetch`` / ``verify`` end to end against a
local HTTP server (127.0.0.1 only: every other connection attempt fails the test).

Most cases fetch the toy extractor's file (``tests/toy_extractor.py``: registered through the one
route, ~1.5 KB, no published hash, so its content check decides); one fetches a DINOv2 file in
Meta's format to show a built-in check at work. The bad-server cases are grouped by class:
short, long, HTML, a 206 from the wrong offset, redirect loops, concurrent fetches and stale
leftovers, and every local path problem.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import toy_extractor as toy
from faults_helpers import child_env, run_unprivileged
from spaces_fixture import hide_installed_weights, write_dinov2_weights
from torch_fidelity.feature_extractor_clip import MODEL_URLS
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from typer.testing import CliRunner

from gan_eval import catalogue
from gan_eval import weights as w
from gan_eval.cli import app
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.registry import weights_check
from gan_eval.weights import download

runner = CliRunner()
NAME = toy.TOY
FILENAME = f"{NAME}-weights.pth"
PORTAL = b"<!DOCTYPE html>\n<html><body><h1>Welcome to Airport WiFi</h1>Log in</body></html>\n"


# ------------------------------------------------------------------------------------------
# a local server that can misbehave in every way the classes below need
# ------------------------------------------------------------------------------------------


@dataclass
class Served:
    files: dict[str, bytes]
    cuts: list[int] = field(default_factory=list)  # cut the next responses after this many bytes
    ranges: list[str | None] = field(default_factory=list)  # Range header of every file GET
    honour_range: bool = True
    content_type: str | None = None
    announce: Callable[[int], int] | None = None  # Content-Length sent for a body of n bytes
    extra: bytes = b""  # written after the body, past the announced length
    range_start: Callable[[int], int | None] | None = None  # where a 206 claims to start
    redirects: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # pause after the first 64 bytes until set
    holding: threading.Event = field(default_factory=threading.Event)


class _Handler(http.server.BaseHTTPRequestHandler):
    served: Served

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        served = self.served
        if self.path in served.redirects:
            self.send_response(302)
            self.send_header("Location", served.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = served.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        header = self.headers.get("Range")
        served.ranges.append(header)
        start = 0
        if header and served.honour_range:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            claimed = served.range_start(start) if served.range_start else start
            if claimed is not None:
                start = claimed
            self.send_response(206)
            if claimed is not None:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        length = served.announce(len(body)) if served.announce else len(body)
        self.send_header("Content-Length", str(length))
        if served.content_type:
            self.send_header("Content-Type", served.content_type)
        self.end_headers()
        if served.hold is not None:
            self.wfile.write(body[:64])
            self.wfile.flush()
            served.holding.set()
            served.hold.wait(30)
            body = body[64:]
        if served.cuts:
            self.wfile.write(body[: served.cuts.pop(0)])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection dies mid-file
            self.close_connection = True
            return
        self.wfile.write(body[:length] + served.extra if length <= len(body) else body)
        self.close_connection = True


@pytest.fixture(scope="module")
def payload() -> bytes:
    """The toy extractor's weights file (a real torch.save state dict, ~1.5 KB)."""
    return toy.file_bytes(seed=0)


@pytest.fixture
def server(payload: bytes) -> Iterator[tuple[str, Served]]:
    served = Served({"/" + FILENAME: payload})
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{FILENAME}", served
    finally:
        if served.hold is not None:
            served.hold.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Empty caches; the toy registered; any connection other than to 127.0.0.1 fails."""
    hide_installed_weights(tmp_path, monkeypatch)
    real_connect = socket.socket.connect

    def local_only(self: socket.socket, address: object) -> None:
        if not (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            raise AssertionError(f"connection attempted to {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    with toy.registered():
        yield


def fetch(url: str, dest: Path | None = None, *extra: str) -> object:
    """``gan-eval weights fetch NAME --url URL [--dest DEST] -q`` through the CLI."""
    args = ["weights", "fetch", NAME, "--url", url, "-q", *extra]
    if dest is not None:
        args += ["--dest", str(dest)]
    return runner.invoke(app, args)


def nothing_placed(dest: Path) -> bool:
    """No weights file, no partial download, no lock, no record left in ``dest``."""
    return not dest.exists() or not any(
        p.name.startswith(FILENAME) for p in dest.iterdir())


def clean_error(result: object, code: int, *fragments: str) -> None:
    out = result.output  # type: ignore[attr-defined]
    assert result.exit_code == code, out  # type: ignore[attr-defined]
    assert "Traceback" not in out and "internal error" not in out
    for fragment in fragments:
        assert fragment in out, (fragment, out)


# ------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------


def test_table_matches_torch_fidelity_sources() -> None:
    assert w.WEIGHTS["inception"].url == URL_INCEPTION_V3
    assert w.WEIGHTS["clip-vit-b32"].url == MODEL_URLS["clip-vit-b-32"]
    assert w.WEIGHTS["clip-vit-l14"].url == MODEL_URLS["clip-vit-l-14"]
    assert w.WEIGHTS["clip-vit-l14-336"].url == MODEL_URLS["clip-vit-l-14-336px"]
    for entry in w.WEIGHTS.values():
        if entry.sha256:  # OpenAI's URLs embed the full sha256
            assert entry.sha256 in entry.url and len(entry.sha256) == 64
        assert entry.url.endswith("/" + entry.filename)
        assert entry.env.startswith("GAN_EVAL_") and entry.env.endswith("_WEIGHTS")
    assert w.WEIGHTS["inception"].sha256_prefix == "6726825d"
    assert w.WEIGHTS["inception"].env == "GAN_EVAL_INCEPTION_WEIGHTS"
    assert all(w.WEIGHTS[f"dinov2-vit-{s}14"].sha256 is None for s in "sblg")
    assert w.WEIGHTS["dinov2-vit-l14"].url == (
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth")


def test_table_is_the_extractors_declarations() -> None:
    """One declaration per file: the table is a live view of the catalogue's specs (the toy,
    registered by the fixture, is in it; dlib-face, whose weights come with a package, is not)."""
    declared = {n: s.weights for n, s in catalogue.EXTRACTORS.items() if s.weights}
    assert dict(w.WEIGHTS) == declared and NAME in w.WEIGHTS and "dlib-face" not in w.WEIGHTS
    with pytest.raises(InputError, match=r"known: .*facenet-vggface2.*inception"):
        w.known("resnet-50")
    with pytest.raises(InputError, match="come with an installed package"):
        w.known("dlib-face")


@pytest.mark.parametrize("name", ["dinov2-vit-s14", "clip-vit-l14-336", "inception"])
def test_missing_message_gives_the_working_syntax(name: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    entry = w.WEIGHTS[name]
    with pytest.raises(MissingAssetError) as info:
        w.resolve(name)
    message = str(info.value)
    assert info.value.exit_code == 3 and message.endswith(".")
    assert entry.filename in message and entry.url in message and entry.env in message
    assert f"gan-eval weights fetch {name}" in message
    assert f"--weights {name}=/path/to/{entry.filename}" in message
    assert "gan-eval[" not in message  # timm is installed here
    monkeypatch.setitem(sys.modules, "timm", None)  # a base install: no timm
    message = w.missing_message(name)
    if catalogue.EXTRACTORS[name].packages:
        assert "needs timm" in message and "pip install 'gan-eval[feature-spaces]'" in message
    else:
        assert "gan-eval[" not in message


def test_locate_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, filename = "dinov2-vit-s14", "dinov2_vits14_pretrain.pth"

    def put(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / filename).write_bytes(b"x")
        return folder / filename

    hub = put(tmp_path / "hub" / "checkpoints")  # what torch.hub.load would have cached
    assert w.locate(name).path == hub
    cache = put(tmp_path / "xdg" / "gan-eval" / "weights")
    assert w.locate(name).path == cache
    monkeypatch.setenv(w.WEIGHTS_DIR_ENV, str(tmp_path / "dir"))
    env_dir = put(tmp_path / "dir")
    assert w.locate(name).path == env_dir
    single = tmp_path / "single.pth"
    single.write_bytes(b"y")
    monkeypatch.setenv("GAN_EVAL_DINOV2_VIT_S14_WEIGHTS", str(single))
    assert w.locate(name).path == single
    assert w.locate(name, hub).path == hub  # explicit first
    with pytest.raises(InputError, match=r"nope\.pth"):  # an explicit path is never replaced
        w.locate(name, tmp_path / "nope.pth")
    monkeypatch.setenv("GAN_EVAL_DINOV2_VIT_S14_WEIGHTS", str(tmp_path / "gone.pth"))
    with pytest.raises(InputError, match="GAN_EVAL_DINOV2_VIT_S14_WEIGHTS"):
        w.locate(name)


def test_list_command_reports_where(monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["weights", "list"])
    assert result.exit_code == 0, result.output
    for entry in w.WEIGHTS.values():
        assert entry.name in result.output and entry.url in result.output
    assert "not published" in result.output and "not found" in result.output
    assert "needs:   timm (installed)" in result.output
    monkeypatch.setitem(sys.modules, "timm", None)
    result = runner.invoke(app, ["weights", "list", "dinov2-vit-s14"])
    assert "pip install 'gan-eval[feature-spaces]'" in result.output
    clean_error(runner.invoke(app, ["weights", "list", "resnet-50"]), 2, "resnet-50")


# ------------------------------------------------------------------------------------------
# fetch: the good path
# ------------------------------------------------------------------------------------------


def test_fetch_places_a_checked_file(server: tuple[str, Served], payload: bytes,
                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, served = server
    path = w.fetch(NAME, check=weights_check(NAME), url=url, chunk=256)
    target = tmp_path / "xdg" / "gan-eval" / "weights" / FILENAME
    assert path == target and target.read_bytes() == payload
    digest = hashlib.sha256(payload).hexdigest()
    assert w.recorded_sha256(target) == digest  # no published hash: recorded on first fetch
    assert sorted(p.name for p in target.parent.iterdir()) == [FILENAME, FILENAME + ".sha256"]
    err = capsys.readouterr().err
    assert "100%" in err and "content was checked" in err  # tqdm's bar; the check ran
    assert w.locate(NAME).path == target
    assert w.verify_one(NAME, check=weights_check(NAME)).status == "recorded"
    w.fetch(NAME, check=weights_check(NAME), url=url)  # the file is there: nothing downloaded
    assert len(served.ranges) == 1
    target.write_bytes(payload[:100] + bytes([payload[100] ^ 1]) + payload[101:])  # corrupted
    assert w.verify_one(NAME, check=weights_check(NAME)).status == "mismatch"
    clean_error(runner.invoke(app, ["weights", "verify", NAME]), 3, "gan-eval weights fetch")


def test_fetch_of_a_builtin_checks_its_architecture(tmp_path: Path) -> None:
    """A file in Meta's DINOv2 format is placed as dinov2-vit-s14 and refused as dinov2-vit-b14
    (same format, other shapes): the content check is the extractor's own."""
    data = write_dinov2_weights(tmp_path / "s14.pth", "dinov2-vit-s14").read_bytes()
    served = Served({"/s14.pth": data})
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/s14.pth"
    try:
        dest = tmp_path / "w"
        result = runner.invoke(app, ["weights", "fetch", "dinov2-vit-b14", "--url", url,
                                     "--dest", str(dest), "-q"])
        clean_error(result, 3, "nothing was placed", "cls_token has shape (1, 1, 384), not "
                    "(1, 1, 768)", "dinov2_vitb14_pretrain.pth")
        assert list(dest.iterdir()) == []
        result = runner.invoke(app, ["weights", "fetch", "dinov2-vit-s14", "--url", url,
                                     "--dest", str(dest), "-q"])
        assert result.exit_code == 0, result.output
        assert (dest / "dinov2_vits14_pretrain.pth").read_bytes() == data
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_resumes_after_a_cut_connection(server: tuple[str, Served], payload: bytes) -> None:
    url, served = server
    served.cuts = [500, 300]
    path = w.fetch(NAME, check=weights_check(NAME), url=url, chunk=64, progress=False)
    assert path.read_bytes() == payload
    assert served.ranges == [None, "bytes=500-", "bytes=800-"]


def test_partial_file_is_resumed_by_the_next_fetch(server: tuple[str, Served], payload: bytes,
                                                   tmp_path: Path) -> None:
    url, served = server
    served.cuts = [700]
    dest = tmp_path / "w"
    with pytest.raises(MissingAssetError, match="again to resume") as info:
        w.fetch(NAME, check=weights_check(NAME), url=url, dest_dir=dest, retries=0, chunk=64,
                progress=False)
    assert info.value.exit_code == 3
    part = dest / (FILENAME + w.PART_SUFFIX)
    assert part.stat().st_size == 700 and not (dest / FILENAME).exists()
    assert not (dest / (FILENAME + w.LOCK_SUFFIX)).exists()  # the lock went with the fetch
    assert fetch(url, dest).exit_code == 0
    assert (dest / FILENAME).read_bytes() == payload and not part.exists()
    assert served.ranges == [None, "bytes=700-"]


def test_server_ignoring_range_restarts(server: tuple[str, Served], payload: bytes,
                                        tmp_path: Path) -> None:
    url, served = server
    served.honour_range = False
    dest = tmp_path / "w"
    dest.mkdir()
    (dest / (FILENAME + w.PART_SUFFIX)).write_bytes(b"garbage-prefix")
    assert fetch(url, dest).exit_code == 0
    assert (dest / FILENAME).read_bytes() == payload


def test_a_redirect_to_the_file_is_followed(server: tuple[str, Served], payload: bytes,
                                            tmp_path: Path) -> None:
    url, served = server
    served.redirects["/mirror/" + FILENAME] = "/" + FILENAME
    assert fetch(url.replace(FILENAME, "mirror/" + FILENAME), tmp_path / "w").exit_code == 0
    assert (tmp_path / "w" / FILENAME).read_bytes() == payload


# ------------------------------------------------------------------------------------------
# fetch × what a server may send instead of the file
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["announced-half", "announced-one-byte-less",
                                  "206-shorter-than-its-range"])
def test_short_is_refused_and_nothing_placed(case: str, server: tuple[str, Served],
                                             payload: bytes, tmp_path: Path) -> None:
    """A body that ends where a short Content-Length says (the server's, not a cut connection)
    is a complete HTTP answer: the content check refuses it."""
    url, served = server
    dest = tmp_path / "w"
    if case == "announced-half":
        served.announce = lambda n: n // 2
        clean_error(fetch(url, dest), 3, "truncated", "nothing was placed", FILENAME)
    elif case == "announced-one-byte-less":
        served.announce = lambda n: n - 1
        clean_error(fetch(url, dest), 3, "nothing was placed", FILENAME)
    else:
        dest.mkdir()
        (dest / (FILENAME + w.PART_SUFFIX)).write_bytes(payload[:500])
        served.announce = lambda n: n - 10  # Content-Length < the span Content-Range states
        clean_error(fetch(url, dest), 3, "Content-Length", "Content-Range")
    assert nothing_placed(dest)


def test_short_by_a_cut_keeps_the_part_to_resume(server: tuple[str, Served],
                                                 tmp_path: Path) -> None:
    url, served = server
    served.cuts = [400]
    dest = tmp_path / "w"
    clean_error(fetch(url, dest, "--retries", "0"), 3, "again to resume")
    assert not (dest / FILENAME).exists() and (dest / (FILENAME + w.PART_SUFFIX)).is_file()


@pytest.mark.parametrize("case", ["garbage-after-the-body", "announced-shorter-than-sent",
                                  "206-longer-than-its-range"])
def test_long_never_places_more_or_less_than_the_file(case: str, server: tuple[str, Served],
                                                      payload: bytes, tmp_path: Path) -> None:
    url, served = server
    dest = tmp_path / "w"
    if case == "garbage-after-the-body":  # bytes past Content-Length are not the file's
        served.extra = b"\0" * 4096
        assert fetch(url, dest).exit_code == 0
        assert (dest / FILENAME).read_bytes() == payload
        return
    if case == "announced-shorter-than-sent":  # the file is longer than announced: cut short
        served.announce = lambda n: n - 200
        clean_error(fetch(url, dest), 3, "nothing was placed")
    else:
        dest.mkdir()
        (dest / (FILENAME + w.PART_SUFFIX)).write_bytes(payload[:500])
        served.announce = lambda n: n + 10
        clean_error(fetch(url, dest), 3, "Content-Length", "Content-Range")
    assert nothing_placed(dest)


def test_html_captive_portal_is_refused(server: tuple[str, Served], tmp_path: Path) -> None:
    url, served = server
    dest = tmp_path / "w"
    served.files["/" + FILENAME] = PORTAL
    served.content_type = "text/html; charset=utf-8"
    clean_error(fetch(url, dest), 3, "text/html", "captive portal", "Nothing was placed")
    assert nothing_placed(dest)
    served.content_type = "application/octet-stream"  # the same page, typed as a binary
    clean_error(fetch(url, dest), 3, "HTML or XML page", "nothing was placed")
    assert nothing_placed(dest)


def test_a_placed_html_page_fails_verify_and_is_replaced(server: tuple[str, Served],
                                                         payload: bytes, tmp_path: Path) -> None:
    """What the old fetch left (a portal page and its recorded sha256): verify says invalid
    (exit 3) and the next fetch replaces it."""
    url, _ = server
    folder = tmp_path / "xdg" / "gan-eval" / "weights"
    folder.mkdir(parents=True)
    (folder / FILENAME).write_bytes(PORTAL)
    (folder / (FILENAME + w.SHA_SUFFIX)).write_text(
        f"{hashlib.sha256(PORTAL).hexdigest()}  {FILENAME}\n")
    row = w.verify_one(NAME, check=weights_check(NAME))
    assert row.status == "invalid" and "HTML" in row.detail
    clean_error(runner.invoke(app, ["weights", "verify", NAME]), 3, "invalid", "HTML")
    assert fetch(url).exit_code == 0
    assert (folder / FILENAME).read_bytes() == payload
    assert w.verify_one(NAME, check=weights_check(NAME)).status == "recorded"


@pytest.mark.parametrize("claimed", [0, 7, None], ids=["from-byte-0", "from-a-later-byte",
                                                       "no-content-range"])
def test_206_from_another_offset_is_refused(claimed: int | None, server: tuple[str, Served],
                                            payload: bytes, tmp_path: Path) -> None:
    """A resume asks for bytes from 500; a 206 that starts elsewhere (or does not say where)
    would splice the wrong bytes: refused, the part deleted, the next fetch starts over."""
    url, served = server
    dest = tmp_path / "w"
    dest.mkdir()
    (dest / (FILENAME + w.PART_SUFFIX)).write_bytes(payload[:500])
    served.range_start = {0: lambda start: 0, 7: lambda start: start + 7,
                          None: lambda start: None}[claimed]
    clean_error(fetch(url, dest), 3, "bytes from 500", "Nothing was placed")
    assert nothing_placed(dest)
    served.range_start = None
    assert fetch(url, dest).exit_code == 0
    assert (dest / FILENAME).read_bytes() == payload
    assert served.ranges[-1] is None  # started over: no Range


@pytest.mark.parametrize("loop", ["self", "ping-pong"])
def test_redirect_loop_is_a_clear_network_error(loop: str, server: tuple[str, Served],
                                                tmp_path: Path) -> None:
    url, served = server
    if loop == "self":
        served.redirects["/loop"] = "/loop"
    else:
        served.redirects.update({"/loop": "/pong", "/pong": "/loop"})
    clean_error(fetch(url.replace("/" + FILENAME, "/loop"), tmp_path / "w"), 3,
                "redirect", "HTTP 302")
    assert nothing_placed(tmp_path / "w") and served.ranges == []


# ------------------------------------------------------------------------------------------
# fetch × concurrency and leftovers of dead fetches
# ------------------------------------------------------------------------------------------


def test_concurrent_fetch_exits_2_and_the_first_completes(server: tuple[str, Served],
                                                          payload: bytes, tmp_path: Path) -> None:
    url, served = server
    dest = tmp_path / "w"
    served.hold = threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            outcome["path"] = w.fetch(NAME, check=weights_check(NAME), url=url, dest_dir=dest,
                                      progress=False)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    assert served.holding.wait(30)  # the first fetch is mid-body, holding the lock
    result = fetch(url, dest)
    clean_error(result, 2, "already in progress", f"pid {os.getpid()}")
    served.hold.set()
    thread.join(30)
    assert outcome.get("path") == dest / FILENAME, outcome
    assert (dest / FILENAME).read_bytes() == payload
    assert sorted(p.name for p in dest.iterdir()) == [FILENAME, FILENAME + ".sha256"]
    assert len(served.ranges) == 1  # the second fetch downloaded nothing


def test_lock_of_a_killed_fetch_does_not_block(server: tuple[str, Served], payload: bytes,
                                               tmp_path: Path) -> None:
    """A process that held the lock and was killed (SIGKILL) leaves a lock file whose lock died
    with it: the next fetch proceeds."""
    url, _ = server
    dest = tmp_path / "w"
    dest.mkdir()
    lock = dest / (FILENAME + w.LOCK_SUFFIX)
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env=child_env())
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        clean_error(fetch(url, dest), 2, "already in progress", f"pid {child.pid}")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert lock.exists()  # left behind by the killed process
    assert fetch(url, dest).exit_code == 0
    assert (dest / FILENAME).read_bytes() == payload and not lock.exists()


@pytest.mark.parametrize("stale", ["another-version-of-the-file", "garbage"])
def test_stale_part_that_is_not_a_prefix_is_checked_and_dropped(
        stale: str, server: tuple[str, Served], payload: bytes, tmp_path: Path) -> None:
    """A dead fetch's part that is not a prefix of this file: resuming it splices a wrong file,
    which the checks refuse (part deleted, nothing placed); the next fetch starts over. The
    splice of two versions of the same network (same names and shapes, other values) is caught
    by the zip CRC-32 of the damaged record."""
    url, _ = server
    dest = tmp_path / "w"
    dest.mkdir()
    other = toy.file_bytes(seed=1)
    assert other[:900] != payload[:900] and len(other) == len(payload)
    part = other[:900] if stale == "another-version-of-the-file" else b"\0stale" * 150
    (dest / (FILENAME + w.PART_SUFFIX)).write_bytes(part)
    clean_error(fetch(url, dest), 3, "nothing was placed", "is damaged", "fails its CRC-32")
    assert nothing_placed(dest)
    assert fetch(url, dest).exit_code == 0 and (dest / FILENAME).read_bytes() == payload


# ------------------------------------------------------------------------------------------
# fetch × every local path problem: exit 2 naming where the files go, before any download
# ------------------------------------------------------------------------------------------


def _block(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path | None, str]:
    """Set up ``case``; return (--dest or None, the words the message must hold)."""
    dest = tmp_path / "w"
    if case == "dest-is-a-file":
        dest.write_bytes(b"x")
        return dest, "is a file, not a folder"
    if case == "file-in-the-way":
        (tmp_path / "parent").write_bytes(b"x")
        return tmp_path / "parent" / "w", "is a file in the way"
    if case in ("part-is-a-folder", "target-is-a-folder", "lock-is-a-folder"):
        suffix = {"part-is-a-folder": w.PART_SUFFIX, "target-is-a-folder": "",
                  "lock-is-a-folder": w.LOCK_SUFFIX}[case]
        (dest / (FILENAME + suffix)).mkdir(parents=True)
        return dest, "is in the way"
    if case == "env-dir-is-a-file":
        (tmp_path / "envdir").write_bytes(b"x")
        monkeypatch.setenv(w.WEIGHTS_DIR_ENV, str(tmp_path / "envdir"))
        return None, f"${w.WEIGHTS_DIR_ENV}="
    if case == "default-cache-blocked":
        (tmp_path / "xdg").write_bytes(b"x")  # $XDG_CACHE_HOME is a file
        return None, "pass --dest FOLDER"
    if case == "read-only-folder":  # the kernel's answer to an unprivileged writer, simulated
        dest.mkdir()
        real_open = os.open

        def refuse(path: object, flags: int, *args: object) -> int:
            if str(path).startswith(str(dest)) and flags & os.O_CREAT:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", refuse)
        return dest, "Permission denied"
    assert case == "disk-full-mid-download"
    real = open

    class Full:
        def __init__(self, handle: object) -> None:
            self.handle = handle

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()  # type: ignore[attr-defined]

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    def full_open(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        handle = real(path, mode, *args, **kwargs)  # type: ignore[call-overload]
        return Full(handle) if str(path).endswith(w.PART_SUFFIX) and "b" in mode else handle

    monkeypatch.setattr(download, "open", full_open, raising=False)
    return dest, "No space left on device"


LOCAL_PROBLEMS = ["dest-is-a-file", "file-in-the-way", "part-is-a-folder", "target-is-a-folder",
                  "lock-is-a-folder", "env-dir-is-a-file", "default-cache-blocked",
                  "read-only-folder", "disk-full-mid-download"]


@pytest.mark.parametrize("case", LOCAL_PROBLEMS)
def test_local_path_problem_is_exit_2_naming_the_destination(
        case: str, server: tuple[str, Served], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, served = server
    dest, words = _block(case, tmp_path, monkeypatch)
    result = fetch(url, dest)
    named = "--dest" if dest is not None else (
        w.WEIGHTS_DIR_ENV if case == "env-dir-is-a-file" else "gan-eval's weights cache")
    clean_error(result, 2, named, words)
    assert "offline" not in result.output
    if case != "disk-full-mid-download":
        assert served.ranges == []  # refused before any download
    assert not (tmp_path / "w" / FILENAME).is_file()


@pytest.mark.slow  # a child process; the simulated case above runs by default
def test_read_only_folder_for_real(server: tuple[str, Served], tmp_path: Path) -> None:
    url, served = server
    dest = tmp_path / "ro"
    dest.mkdir()
    dest.chmod(0o555)
    code = ("import sys\nfrom gan_eval.cli import app\n"
            f"sys.argv = ['gan-eval', 'weights', 'fetch', 'inception', '--url', {url!r}, "
            f"'--dest', {str(dest)!r}, '-q']\napp()\n")
    result = run_unprivileged(code)
    assert result.returncode == 2, result.stderr
    assert "--dest" in result.stderr and "Permission denied" in result.stderr
    assert served.ranges == [] and list(dest.iterdir()) == []


@pytest.mark.parametrize("bad", ["notaurl", "ftp://host/file.pth", "http://", "file:///etc/hosts",
                                 "", "//127.0.0.1/x.pth"])
def test_malformed_url_is_exit_2_naming_url(bad: str, tmp_path: Path) -> None:
    clean_error(fetch(bad, tmp_path / "w"), 2, "--url", "expected an http:// or https:// URL")
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------------------------------
# fetch: hashes, network failures, names
# ------------------------------------------------------------------------------------------


def test_wrong_hash_exit_3_nothing_placed(server: tuple[str, Served], tmp_path: Path) -> None:
    url, _ = server
    dest = tmp_path / "w"
    clean_error(fetch(url, dest, "--sha256", "0" * 64), 3, "sha256", "nothing was placed")
    assert nothing_placed(dest)
    # a published hash is enforced too: CLIP's URL carries it, our payload does not match
    result = runner.invoke(app, ["weights", "fetch", "clip-vit-b32", "--url", url,
                                 "--dest", str(dest), "-q"])
    clean_error(result, 3, w.WEIGHTS["clip-vit-b32"].sha256 or "")
    assert not any(dest.iterdir())


def test_a_published_hash_is_enough_without_a_check(server: tuple[str, Served], payload: bytes,
                                                    tmp_path: Path) -> None:
    """With a full sha256 (published, or pinned) a file that matches is the file; without one
    and without a content check, the Python API refuses to fetch blind."""
    url, _ = server
    digest = hashlib.sha256(payload).hexdigest()
    assert w.fetch(NAME, url=url, sha256=digest, dest_dir=tmp_path / "a",
                   progress=False).read_bytes() == payload
    with pytest.raises(InputError, match="could not be verified"):
        w.fetch(NAME, url=url, dest_dir=tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


def test_offline_exit_3_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = fetch(f"http://127.0.0.1:{port}/x", tmp_path / "w")
    clean_error(result, 3, w.WEIGHTS[NAME].url, w.WEIGHTS[NAME].env, "offline")
    assert nothing_placed(tmp_path / "w")


def test_http_error_is_exit_3(server: tuple[str, Served], tmp_path: Path) -> None:
    url, _ = server
    clean_error(fetch(url + ".missing", tmp_path), 3, "404")


def test_bad_name_and_bad_pin_are_input_errors() -> None:
    clean_error(runner.invoke(app, ["weights", "fetch", "resnet-50"]), 2, "dinov2-vit-s14")
    clean_error(runner.invoke(app, ["weights", "fetch", NAME, "--sha256", "abc"]), 2, "--sha256")
    clean_error(runner.invoke(app, ["weights", "fetch", NAME, "inception", "--url", "http://x"]),
                2, "one NAME")


# ------------------------------------------------------------------------------------------
# verify
# ------------------------------------------------------------------------------------------


def test_verify_statuses_by_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  payload: bytes) -> None:
    """missing / content (no hash, content fine) / recorded / ok (pinned) / mismatch / invalid
    (wrong architecture, truncated): verify checks content, not only a recorded hash."""
    check = weights_check(NAME)
    assert w.verify_one(NAME, check=check).status == "missing"
    clean_error(runner.invoke(app, ["weights", "verify", NAME]), 3, "missing")
    file = tmp_path / FILENAME
    monkeypatch.setenv(w.WEIGHTS[NAME].env, str(file))
    file.write_bytes(payload)
    assert w.verify_one(NAME, check=check).status == "content"
    assert w.verify_one(NAME).status == "unchecked"  # no check given: hash only, and none
    record = tmp_path / (FILENAME + w.SHA_SUFFIX)
    record.write_text(hashlib.sha256(payload).hexdigest())
    assert w.verify_one(NAME, check=check).status == "recorded"
    digest = hashlib.sha256(payload).hexdigest()
    assert w.verify_one(NAME, sha256=digest, check=check).status == "ok"
    assert w.verify_one(NAME, sha256="1" * 64, check=check).status == "mismatch"
    result = runner.invoke(app, ["weights", "verify", NAME])
    assert result.exit_code == 0 and "recorded" in result.output
    for bad, words in ((toy.file_bytes(0, {"proj.weight": (4, 4), "proj.bias": (4,)}),
                        "proj.weight has shape (4, 4), not (4, 3)"),
                       (payload[: len(payload) // 2], "truncated")):
        file.write_bytes(bad)
        record.write_text(hashlib.sha256(bad).hexdigest())  # recorded: the hash alone passes
        row = w.verify_one(NAME, check=check)
        assert row.status == "invalid" and words in row.detail, row
        clean_error(runner.invoke(app, ["weights", "verify", NAME]), 3, "invalid", words)


def test_fetch_check_is_torch_free_until_called() -> None:
    """weights.py itself never imports torch at import time (gate stays light): the content
    check is a hook from the features layer."""
    code = ("import sys\nimport gan_eval.weights, gan_eval.catalogue\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=child_env(), check=True).stdout.strip()
    assert out == "False"
    assert isinstance(torch.__version__, str)


def test_verify_a_prefix_hash_also_needs_the_recorded_one(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          payload: bytes) -> None:
    """A published prefix (Inception's 8 hex digits) is weak: a file that matches it must also
    match the sha256 recorded when it was fetched."""
    from dataclasses import replace

    digest = hashlib.sha256(payload).hexdigest()
    name = "toy-prefixed"
    weights = replace(toy.spec(name).weights, sha256_prefix=digest[:8])  # type: ignore[type-var]
    with toy.registered(catalogue.ExtractorSpec(name, "toy", weights=weights)):
        file = tmp_path / weights.filename
        file.write_bytes(payload)
        monkeypatch.setenv(weights.env, str(file))
        assert w.verify_one(name, check=weights_check(name)).status == "ok"
        (tmp_path / (weights.filename + w.SHA_SUFFIX)).write_text("f" * 64)
        row = w.verify_one(name, check=weights_check(name))
        assert row.status == "mismatch" and row.expected == "f" * 64
