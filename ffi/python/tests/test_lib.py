"""Finding libmoss.so."""

from pathlib import Path

import pytest

from moss import _lib


def test_env_override_comes_first_and_is_used_as_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOSS_LIB", str(tmp_path / "nowhere.so"))
    assert _lib.candidates()[0] == tmp_path / "nowhere.so"
    assert _lib.find() == str(tmp_path / "nowhere.so")
    with pytest.raises(OSError):
        _lib.load()


def test_target_dirs_are_searched_upwards(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MOSS_LIB", raising=False)
    monkeypatch.delenv("CARGO_TARGET_DIR", raising=False)
    lib = tmp_path / "target" / "release" / _lib.LIB_NAME
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    found = [p for p in _lib.candidates(deep) if p.is_file()]
    assert lib in found
    debug_first = _lib.candidates(deep)
    assert debug_first.index(tmp_path / "target" / "debug" / _lib.LIB_NAME) < debug_first.index(lib)
