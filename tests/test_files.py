"""Atomic writes: the whole new file or the old one, with the asked-for permissions."""

import json
import stat

import pytest

from miniautoml.files import atomic_write_json, atomic_write_text


def test_atomic_write_replaces_the_file_and_sets_its_mode(tmp_path):
    path = tmp_path / "sub" / "f.sh"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two", mode=0o755)
    assert path.read_text() == "two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert [p.name for p in path.parent.iterdir()] == ["f.sh"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.json"
    atomic_write_json(path, {"a": "é"})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": "é"}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
