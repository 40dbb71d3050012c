"""Atomic writes (issue #15): the file and its folder are fsynced, a failed write leaves
nothing, and temporary files of killed writes are removed by the next successful write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gan_eval import fileio
from gan_eval.fileio import atomic_path, atomic_write_text, clean_stale_temps, stale_temps


def test_file_and_folder_are_fsynced_before_and_after_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "out.json"
    atomic_write_text(target, "{}")
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert Path(events[0][1]).name.startswith(".out.json.")  # the temp file's data first
    assert events[2][1] == str(tmp_path)  # then the folder holding the new name
    assert target.read_text() == "{}"


def test_durable_false_skips_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    with atomic_path(tmp_path / "a.png", durable=False) as tmp:
        tmp.write_bytes(b"x")
    assert calls == [] and (tmp_path / "a.png").read_bytes() == b"x"


def test_failed_write_leaves_no_temp_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temps_are_cleaned_by_the_next_successful_write(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    dead = dead_pid()
    stale = [tmp_path / f".results.json.{dead}-k2j4_x.tmp", tmp_path / f".other.png.{dead}-ab.tmp"]
    live = tmp_path / f".results.json.{os.getppid()}-abc.tmp"  # a write in progress elsewhere
    unrelated = [tmp_path / ".results.json.old.bak", tmp_path / f"results.json.{dead}-abc.tmp",
                 tmp_path / ".notes.tmp", live]
    for path in stale + unrelated:
        path.write_bytes(b"\0" * 100)
    assert stale_temps(tmp_path) == sorted(stale)
    atomic_write_text(target, "new")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in unrelated)
    assert clean_stale_temps(tmp_path, force=True) == 0


def test_failed_write_does_not_clean(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    stale = tmp_path / f".r.json.{dead_pid()}-abc.tmp"
    stale.write_text("x")
    with pytest.raises(ValueError), atomic_path(target):
        raise ValueError
    assert stale.exists()  # only a successful write sweeps


def test_folder_is_swept_once_per_process(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sweeps: list[Path] = []
    real = fileio.stale_temps
    monkeypatch.setattr(fileio, "stale_temps", lambda f: sweeps.append(Path(f)) or real(f))
    for i in range(20):  # e.g. `sample` writing many images into one folder
        atomic_write_text(tmp_path / f"{i}.txt", "x")
    assert sweeps == [tmp_path]


def test_sigkill_during_a_write_leaves_a_temp_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    fileio_py = Path(fileio.__file__)
    code = (  # gan_eval/fileio.py alone: the package's imports (torch) would take seconds
        "import sys, time, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('fileio', {str(fileio_py)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "atomic_path = mod.atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    with open(tmp, 'wb') as f:\n"
        "        f.write(b'x' * 1000); f.flush()\n"
        "        print('writing', flush=True)\n"
        "        time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == b"writing\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (left,) = stale_temps(tmp_path)
    assert not target.exists() and left.name.startswith(f".big.bin.{proc.pid}-")
    atomic_write_text(target, "done")
    assert not left.exists() and target.read_text() == "done"


def test_fsync_dir_tolerates_file_systems_that_refuse(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def refuse(fd: int) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "fsync", refuse)
    fileio.fsync_dir(tmp_path)  # no error
    with pytest.raises(OSError):
        fileio.fsync_path(tmp_path)
