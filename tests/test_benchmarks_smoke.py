"""benchmarks.run: the entry point writes the machine, every section in order, notes and errors."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # benchmarks/ is a top-level folder of the repo, not part of the package
    sys.path.insert(0, str(REPO))

from benchmarks import run  # noqa: E402


def test_quick_foundation_run_writes_the_report(tmp_path):
    out = tmp_path / "BENCH.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--only", "foundation", "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## Machine" in text and "CPU:" in text and "torch" in text
    assert "## foundation" in text and "_Took " in text
    for heading in ("### Matmul peak", "### Synthetic generator", "### Teacher, student, SGBM",
                    "### Cost volume"):
        assert heading in text
    assert "Section failed" not in text
    for name in ("teacher", "student", "sgbm"):
        assert f"| {name} | fp32 |" in text
    assert "Ratios (this run):" in text and "latency student (fp32) / SGBM" in text


def test_section_list_starts_with_the_known_sections():
    names = run.all_sections()
    assert names[:5] == ["foundation", "engine", "live", "gui", "models"]
    assert "__init__" not in names and len(names) == len(set(names))


def test_missing_and_failing_sections_do_not_stop_the_run(tmp_path, monkeypatch):
    calls = []

    def fake(name, body=None):
        module = types.ModuleType(f"benchmarks.sections.{name}")
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)

        def measure(quick):
            calls.append((name, quick))
            if body is None:
                raise RuntimeError("boom in " + name)
            return body

        module.measure = measure
        monkeypatch.setitem(sys.modules, module.__name__, module)

    fake("first_fake", body="first body")
    fake("second_fake")
    fake("third_fake", body="third body")
    out = tmp_path / "report.md"
    text = run.write_report(out, quick=True,
                            sections=["first_fake", "absent_section", "second_fake", "third_fake"])
    assert out.read_text() == text
    assert calls == [("first_fake", True), ("second_fake", True), ("third_fake", True)]
    order = [text.index(f"## {n}") for n in ("first_fake", "absent_section", "second_fake", "third_fake")]
    assert order == sorted(order)
    assert "first body" in text and "third body" in text
    assert "`benchmarks/sections/absent_section.py` does not exist" in text
    assert "Section failed" in text and "RuntimeError: boom in second_fake" in text
