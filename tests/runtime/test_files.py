"""Files replaced whole: the one helper behind block files and checkpoints."""

from __future__ import annotations

import os

import pytest

from spark_gmm.runtime import files
from spark_gmm.runtime.files import AtomicFile


def test_commit_replaces_and_abort_keeps_the_previous_file(tmp_path) -> None:
    path = str(tmp_path / "state.json")
    with AtomicFile(path, durable=True, text=True) as new:
        new.stream.write("first")
    assert open(path).read() == "first"
    with pytest.raises(RuntimeError), AtomicFile(path, durable=True, text=True) as failed:
        failed.stream.write("half")
        raise RuntimeError("the writer died")
    assert open(path).read() == "first"
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind
    scratch = AtomicFile(str(tmp_path / "block"), durable=False)
    scratch.stream.write(b"\x00" * 16)
    scratch.abort()
    assert os.listdir(tmp_path) == ["state.json"]


def test_durable_commit_syncs_the_file_then_its_directory(tmp_path, monkeypatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(files.os, "fsync", spy)
    path = tmp_path / "checkpoint.json"
    with AtomicFile(str(path), durable=True, text=True) as out:
        out.stream.write("{}")
    assert len(synced) == 2
    assert os.path.basename(synced[0]).endswith(".tmp")  # the data, before the rename
    assert synced[1] == str(tmp_path)  # the rename itself
    synced.clear()
    with AtomicFile(str(tmp_path / "block"), durable=False) as scratch:
        scratch.stream.write(b"x")
    assert synced == []


def test_a_failure_before_the_rename_leaves_the_old_file(tmp_path) -> None:
    path = str(tmp_path / "f")
    with AtomicFile(path, durable=False) as first:
        first.stream.write(b"old")
    attempt = AtomicFile(path, durable=False)
    attempt.stream.write(b"new")

    def crash() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        attempt.commit(before_replace=crash)
    assert open(path, "rb").read() == b"old" and os.listdir(tmp_path) == ["f"]
