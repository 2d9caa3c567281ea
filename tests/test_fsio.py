from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import fsio
from bench.paths import umask_mode


def test_atomic_writes_round_trip_with_plain_file_mode(tmp_path: Path) -> None:
    fsio.atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01")
    fsio.atomic_write_text(tmp_path / "t.txt", "ein\nzwei 東京\r\n")
    fsio.atomic_write_json(tmp_path / "j.json", {"k": "é", "n": [1, 2]})
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.txt").read_bytes() == "ein\nzwei 東京\r\n".encode()
    assert (tmp_path / "j.json").read_text(encoding="utf-8") == '{"k": "é", "n": [1, 2]}'
    assert json.loads((tmp_path / "j.json").read_text(encoding="utf-8")) == {"k": "é", "n": [1, 2]}
    for name in ("a/b.bin", "t.txt", "j.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == umask_mode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "j.json", "t.txt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="half-way"), fsio.atomic_writer(path) as fh:
        fh.write("new\n")
        raise RuntimeError("half-way")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]


def test_temp_file_is_fsynced_and_left_for_the_caller_to_rename(tmp_path: Path) -> None:
    with fsio.temp_file(tmp_path, ".v1.") as (fh, tmp):
        fh.write(b"payload")
    assert tmp.parent == tmp_path and tmp.name.startswith(".v1.") and tmp.name.endswith(".tmp")
    assert tmp.read_bytes() == b"payload"


def test_directory_swap_replaces_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "set"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    with fsio.directory_swap(target) as built:
        assert built.parent == tmp_path
        assert built.name.startswith(f".set.build-{os.getpid()}-")
        assert built.is_dir() and not any(built.iterdir())
        (built / "new.txt").write_text("new", encoding="utf-8")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no .build-/.old- leftovers


def test_directory_swap_error_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "set"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), fsio.directory_swap(target) as built:
        (built / "new.txt").write_text("new", encoding="utf-8")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_keep_existing_keeps_what_another_writer_finished(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "theirs").touch()
    with fsio.directory_swap(target, keep_existing=True) as built:
        (built / "ours").touch()
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    with fsio.directory_swap(tmp_path / "fresh", keep_existing=True) as built:
        (built / "ours").touch()
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["ours"]


def test_a_writer_that_lands_between_our_renames_wins_without_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "index"
    target.mkdir()
    (target / "first").touch()
    built = fsio.new_sibling_dir(target)
    (built / "ours").touch()
    real_rename = Path.rename

    def rename(self: Path, dest: Path) -> Path:
        if self == built:  # another process renames its finished copy in just before us
            other = fsio.new_sibling_dir(target)
            (other / "theirs").touch()
            real_rename(other, target)
        return real_rename(self, dest)

    monkeypatch.setattr(Path, "rename", rename)
    assert fsio.swap_dir(built, target) is False
    monkeypatch.undo()
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["index"]
