"""Settings persist typed values in the given (temporary) file."""

from __future__ import annotations

from stereo_studio.gui.settings import Settings


def test_settings_roundtrip(tmp_path):
    path = tmp_path / "s.ini"
    s = Settings(path)
    s.set("models/open", [["student", "student", "student"]])
    s.set("pruning/ratio", 0.35)
    s.set("data/spec", "/data/kitti")
    s.sync()
    again = Settings(path)
    assert again.location == str(path)
    assert again.get("models/open", []) == [["student", "student", "student"]]
    assert again.get("pruning/ratio", 0.0) == 0.35
    assert again.get("data/spec", "synthetic") == "/data/kitti"
    assert again.get("missing", 7) == 7
    again.set("bad", "not json")
    assert again.get("bad", [1]) == [1]  # a malformed value falls back to the default
