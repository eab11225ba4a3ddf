"""Atomic writes: the old file or the new one, never a mix, and no debris."""
from __future__ import annotations

import os

import pytest

from firmware.base import atomic
from firmware.base.atomic import write_atomic


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "b.bin"
    write_atomic(target, b"one")
    write_atomic(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["b.bin"]


def test_failure_before_rename_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "b.bin"
    target.write_bytes(b"old")

    def boom(src, dst):
        assert open(src, "rb").read() == b"new"      # complete and flushed before the rename
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["b.bin"]


def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b)))
    write_atomic(tmp_path / "x", b"data")
    assert calls[:2] == ["fsync", "replace"]


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(OSError):
        write_atomic(tmp_path / "nope" / "x", b"data")
