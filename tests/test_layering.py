"""The layering ARCHITECTURE.md states, checked on the source: Qt stays in gui/, the lower layers never
reach up, and generators are driven through one helper (`stereo_studio.progress.JobRun`)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "stereo_studio"
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "qtpy", "superqt", "pyqtgraph", "pytestqt")


def _modules(sub: str = "") -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


def _imports(path: Path) -> list[str]:
    """Every module name imported anywhere in the file (top level or inside functions)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _offenders(paths: list[Path], banned: tuple[str, ...]) -> list[str]:
    return [
        f"{p.relative_to(PACKAGE.parent)} imports {name}"
        for p in paths
        for name in _imports(p)
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]


def test_nothing_outside_gui_imports_qt():
    outside = [p for p in _modules() if "gui" not in p.relative_to(PACKAGE).parts[:1]]
    assert outside and _offenders(outside, QT) == []


def test_data_and_models_import_neither_engine_nor_live():
    banned = ("stereo_studio.engine", "stereo_studio.live", "stereo_studio.gui", "stereo_studio.cli")
    assert _offenders(_modules("data") + _modules("models"), banned) == []


def test_live_does_not_import_the_engine():
    banned = ("stereo_studio.engine", "stereo_studio.gui", "stereo_studio.cli")
    assert _offenders(_modules("live"), banned) == []


def test_job_contract_is_reexported_by_the_engine():
    from stereo_studio import progress
    from stereo_studio.engine import jobs

    for name in ("Job", "JobRun", "Progress", "Ticker", "drain"):
        assert getattr(jobs, name) is getattr(progress, name)


def test_one_helper_drives_generators():
    """Only `progress.JobRun` catches StopIteration: no hand-written generator-driving loops."""
    catching = [
        str(p.relative_to(PACKAGE.parent))
        for p in _modules()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.ExceptHandler) and node.type is not None
        and "StopIteration" in ast.unparse(node.type)
    ]
    assert catching == ["stereo_studio/progress.py"]


def test_job_run_drives_relays_and_closes():
    from stereo_studio.progress import JobRun, Progress, drain

    closed = []

    def job():
        try:
            for i in range(3):
                yield Progress(i, 3)
            return "result"
        finally:
            closed.append(True)

    with JobRun(job()) as run:
        steps = [e.step for e in run]
    assert steps == [0, 1, 2] and run.done and run.result == "result" and closed == [True]
    assert drain(job()) == "result"

    def relay(inner):
        with JobRun(inner) as run:
            for event in run:
                yield Progress(event.step + 10, 13)
        return run.result

    outer = relay(job())
    next(outer)
    outer.close()  # closing the relay closes the inner job at once
    assert closed == [True, True, True]
    timer_driven = JobRun(job())
    assert [timer_driven.next_event() is None for _ in range(4)] == [False, False, False, True]
