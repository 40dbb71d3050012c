"""``gan-eval weights``: the table, locating files, and ``fetch`` end to end against a local
HTTP server (127.0.0.1 only: every other connection attempt fails the test)."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from spaces_fixture import hide_installed_weights
from torch_fidelity.feature_extractor_clip import MODEL_URLS
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from typer.testing import CliRunner

from gan_eval import weights as w
from gan_eval.cli import app
from gan_eval.errors import InputError, MissingAssetError

runner = CliRunner()
NAME = "dinov2-vit-s14"  # no published hash: fetch records one
FILENAME = "dinov2_vits14_pretrain.pth"


# ------------------------------------------------------------------------------------------
# a local server that honours Range and can cut a response short
# ------------------------------------------------------------------------------------------


@dataclass
class Served:
    data: bytes
    cuts: list[int] = field(default_factory=list)  # cut the next responses after this many bytes
    ranges: list[str | None] = field(default_factory=list)  # Range header of every GET
    honour_range: bool = True


class _Handler(http.server.BaseHTTPRequestHandler):
    served: Served

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        served = self.served
        if self.path != "/" + FILENAME:
            self.send_error(404)
            return
        header = self.headers.get("Range")
        served.ranges.append(header)
        start = 0
        if header and served.honour_range:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(served.data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(served.data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range",
                             f"bytes {start}-{len(served.data) - 1}/{len(served.data)}")
        else:
            self.send_response(200)
        body = served.data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if served.cuts:
            self.wfile.write(body[: served.cuts.pop(0)])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection dies mid-file
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def payload() -> bytes:
    """A small random state dict in Meta's DINOv2 file format (torch.save of {name: tensor})."""
    gen = torch.Generator().manual_seed(0)
    state = {"cls_token": torch.randn(1, 1, 384, generator=gen),
             "blocks.0.attn.qkv.weight": torch.randn(1152, 384, generator=gen)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture
def server(payload: bytes) -> Iterator[tuple[str, Served]]:
    served = Served(payload)
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{FILENAME}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Empty caches; any connection other than to 127.0.0.1 fails the test."""
    hide_installed_weights(tmp_path, monkeypatch)
    real_connect = socket.socket.connect

    def local_only(self: socket.socket, address: object) -> None:
        if not (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            raise AssertionError(f"connection attempted to {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    yield


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
    assert all(w.WEIGHTS[f"dinov2-vit-{s}14"].sha256 is None for s in "sblg")
    assert w.WEIGHTS["dinov2-vit-l14"].url == (
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth")


def test_missing_message_names_file_url_and_fetch() -> None:
    with pytest.raises(MissingAssetError) as info:
        w.resolve("clip-vit-l14-336")
    message = str(info.value)
    assert info.value.exit_code == 3
    assert "ViT-L-14-336px.pt" in message and w.WEIGHTS["clip-vit-l14-336"].url in message
    assert "gan-eval weights fetch clip-vit-l14-336" in message
    assert "GAN_EVAL_CLIP_VIT_L14_336_WEIGHTS" in message


def test_locate_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def put(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FILENAME).write_bytes(b"x")
        return folder / FILENAME

    hub = put(tmp_path / "hub" / "checkpoints")  # what torch.hub.load would have cached
    assert w.locate(NAME).path == hub
    cache = put(tmp_path / "xdg" / "gan-eval" / "weights")
    assert w.locate(NAME).path == cache
    monkeypatch.setenv(w.WEIGHTS_DIR_ENV, str(tmp_path / "dir"))
    env_dir = put(tmp_path / "dir")
    assert w.locate(NAME).path == env_dir
    single = tmp_path / "single.pth"
    single.write_bytes(b"y")
    monkeypatch.setenv("GAN_EVAL_DINOV2_VIT_S14_WEIGHTS", str(single))
    assert w.locate(NAME).path == single
    assert w.locate(NAME, hub).path == hub  # explicit first
    with pytest.raises(InputError, match=r"nope\.pth"):
        w.locate(NAME, tmp_path / "nope.pth")
    monkeypatch.setenv("GAN_EVAL_DINOV2_VIT_S14_WEIGHTS", str(tmp_path / "gone.pth"))
    with pytest.raises(InputError, match="GAN_EVAL_DINOV2_VIT_S14_WEIGHTS"):
        w.locate(NAME)


def test_list_command_reports_where() -> None:
    result = runner.invoke(app, ["weights", "list"])
    assert result.exit_code == 0, result.output
    for entry in w.WEIGHTS.values():
        assert entry.name in result.output and entry.url in result.output
    assert "not published" in result.output and "not found" in result.output


# ------------------------------------------------------------------------------------------
# fetch
# ------------------------------------------------------------------------------------------


def test_fetch_progress_and_placement(server: tuple[str, Served], payload: bytes,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, served = server
    path = w.fetch(NAME, url=url, chunk=4096)
    target = tmp_path / "xdg" / "gan-eval" / "weights" / FILENAME
    assert path == target and target.read_bytes() == payload
    digest = hashlib.sha256(payload).hexdigest()
    assert w.recorded_sha256(target) == digest  # no published hash: recorded on first fetch
    assert not target.with_name(FILENAME + w.PART_SUFFIX).exists()
    err = capsys.readouterr().err
    assert "100%" in err and FILENAME in err  # tqdm's bar
    assert w.locate(NAME).path == target
    assert w.verify_one(NAME).status == "recorded"
    # a second fetch finds the file and downloads nothing
    w.fetch(NAME, url=url)
    assert len(served.ranges) == 1
    # the downloaded file is a state dict loadable with weights_only
    assert set(torch.load(target, weights_only=True)) == {"cls_token",
                                                          "blocks.0.attn.qkv.weight"}
    target.write_bytes(payload[:100] + bytes([payload[100] ^ 1]) + payload[101:])  # corrupted
    assert w.verify_one(NAME).status == "mismatch"
    result = runner.invoke(app, ["weights", "verify", NAME])
    assert result.exit_code == 3 and "gan-eval weights fetch" in result.output


def test_fetch_resumes_after_a_cut_connection(server: tuple[str, Served], payload: bytes,
                                              tmp_path: Path) -> None:
    url, served = server
    served.cuts = [10_000, 5_000]
    digest = hashlib.sha256(payload).hexdigest()
    path = w.fetch(NAME, url=url, sha256=digest, chunk=1024, progress=False)
    assert path.read_bytes() == payload
    assert served.ranges == [None, "bytes=10000-", "bytes=15000-"]


def test_partial_file_is_resumed_by_the_next_fetch(server: tuple[str, Served], payload: bytes,
                                                   tmp_path: Path) -> None:
    url, served = server
    served.cuts = [7_000]
    dest = tmp_path / "w"
    with pytest.raises(MissingAssetError, match="again to resume") as info:
        w.fetch(NAME, url=url, dest_dir=dest, retries=0, chunk=1024, progress=False)
    assert info.value.exit_code == 3
    part = dest / (FILENAME + w.PART_SUFFIX)
    assert part.stat().st_size == 7_000 and not (dest / FILENAME).exists()
    result = runner.invoke(app, ["weights", "fetch", NAME, "--url", url, "--dest", str(dest), "-q"])
    assert result.exit_code == 0, result.output
    assert (dest / FILENAME).read_bytes() == payload and not part.exists()
    assert served.ranges == [None, "bytes=7000-"]


def test_server_ignoring_range_restarts(server: tuple[str, Served], payload: bytes,
                                        tmp_path: Path) -> None:
    url, served = server
    served.honour_range = False
    dest = tmp_path / "w"
    dest.mkdir()
    (dest / (FILENAME + w.PART_SUFFIX)).write_bytes(b"garbage-prefix")
    assert w.fetch(NAME, url=url, dest_dir=dest, progress=False).read_bytes() == payload


def test_wrong_hash_exit_3_nothing_placed(server: tuple[str, Served], tmp_path: Path) -> None:
    url, _ = server
    dest = tmp_path / "w"
    result = runner.invoke(app, ["weights", "fetch", NAME, "--url", url, "--dest", str(dest),
                                 "--sha256", "0" * 64, "-q"])
    assert result.exit_code == 3
    assert "sha256" in result.output and "nothing was placed" in result.output
    assert list(dest.iterdir()) == []
    # a published hash is enforced too: CLIP's URL carries it, our payload does not match
    result = runner.invoke(app, ["weights", "fetch", "clip-vit-b32", "--url", url,
                                 "--dest", str(dest), "-q"])
    assert result.exit_code == 3 and w.WEIGHTS["clip-vit-b32"].sha256 in result.output
    assert list(dest.iterdir()) == []


def test_offline_exit_3_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(app, ["weights", "fetch", NAME, "--url", f"http://127.0.0.1:{port}/x",
                                 "--dest", str(tmp_path / "w"), "-q"])
    assert result.exit_code == 3
    assert w.WEIGHTS[NAME].url in result.output and "GAN_EVAL_DINOV2_VIT_S14_WEIGHTS" in (
        result.output)
    assert not (tmp_path / "w" / FILENAME).exists()


def test_http_error_is_exit_3(server: tuple[str, Served], tmp_path: Path) -> None:
    url, _ = server
    result = runner.invoke(app, ["weights", "fetch", NAME, "--url", url + ".missing", "--dest",
                                 str(tmp_path), "-q"])
    assert result.exit_code == 3 and "404" in result.output


def test_bad_name_and_bad_pin_are_input_errors() -> None:
    result = runner.invoke(app, ["weights", "fetch", "resnet-50"])
    assert result.exit_code == 2 and "dinov2-vit-s14" in result.output
    result = runner.invoke(app, ["weights", "fetch", NAME, "--sha256", "abc"])
    assert result.exit_code == 2 and "--sha256" in result.output
