"""scripts/coverage_per_module.py: the per-module floor over the union of two versions' reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "coverage_per_module.py"
PACKAGE = "custom_components/coral_vision/"


def report(path: Path, files: dict[str, str]) -> Path:
    """A Cobertura report as coverage.py writes it, with the given <lines> per file."""
    classes = "".join(
        f'<class name="{Path(name).name}" filename="{PACKAGE}{name}" line-rate="0" '
        f'branch-rate="0" complexity="0"><methods/><lines>{lines}</lines></class>'
        for name, lines in files.items()
    )
    path.write_text(
        '<?xml version="1.0" ?><coverage version="7.6.12"><sources><source>/work/snap</source>'
        f'</sources><packages><package name="custom_components.coral_vision"><classes>{classes}'
        "</classes></package></packages></coverage>"
    )
    return path


def line(number: int, hits: int, branches: tuple[int, int] | None = None, missing: str = "") -> str:
    """One <line>; branches (covered, total) with the missed destinations."""
    if branches is None:
        return f'<line number="{number}" hits="{hits}"/>'
    covered, total = branches
    percent = 100 * covered // total
    extra = f' missing-branches="{missing}"' if missing else ""
    return (
        f'<line number="{number}" hits="{hits}" branch="true" '
        f'condition-coverage="{percent}% ({covered}/{total})"{extra}/>'
    )


def check(*reports: Path, minimum: float = 95) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, "--min", str(minimum), *map(str, reports)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


# A module of 20 lines: the branch on line 2 goes to 3 on one version and to 4 on the other.
OLD = "".join([line(1, 1), line(2, 1, (1, 2), "4"), line(3, 1), line(4, 0)]) + "".join(
    line(n, 1) for n in range(5, 21)
)
NEW = "".join([line(1, 1), line(2, 1, (1, 2), "3"), line(3, 0), line(4, 1)]) + "".join(
    line(n, 1) for n in range(5, 21)
)


def test_a_module_covered_between_both_versions_passes(tmp_path: Path) -> None:
    oldest = report(tmp_path / "oldest.xml", {"fallback.py": OLD})
    newest = report(tmp_path / "newest.xml", {"fallback.py": NEW})
    for alone in (oldest, newest):
        run = check(alone)
        assert run.returncode == 1, run.stdout
        assert f"{PACKAGE}fallback.py: 90.9% < 95%" in run.stdout  # (19 + 1) / (20 + 2)
    run = check(oldest, newest)
    assert run.returncode == 0, run.stdout
    assert "every one of 1 modules at 95% or more" in run.stdout


def test_a_module_under_the_floor_combined_fails_and_is_named(tmp_path: Path) -> None:
    low = "".join([line(1, 1), line(2, 0), line(3, 0), line(5, 0), line(6, 1, (1, 2), "exit")])
    oldest = report(tmp_path / "oldest.xml", {"fallback.py": OLD, "engine/low.py": low})
    newest = report(tmp_path / "newest.xml", {"fallback.py": NEW, "engine/low.py": low})
    run = check(oldest, newest)
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    # (2 lines + 1 branch) / (5 lines + 2 branches); lines never run shown as ranges.
    assert lines[0] == f"{PACKAGE}engine/low.py: 42.9% < 95% (lines never run: 2-3, 5)"
    assert lines[-1] == "1 of 2 modules under 95% (all reports combined)"
    assert check(oldest, newest, minimum=40).returncode == 0


def test_a_branch_line_neither_version_ran_counts_all_its_arcs_missed(tmp_path: Path) -> None:
    never = "".join([line(1, 1), line(2, 0, (0, 2))] + [line(n, 1) for n in range(3, 41)])
    oldest = report(tmp_path / "oldest.xml", {"never.py": never})
    newest = report(tmp_path / "newest.xml", {"never.py": never})
    run = check(oldest, newest)
    assert run.returncode == 1
    assert "never.py: 92.9% < 95% (lines never run: 2)" in run.stdout  # 39 / 42


def test_other_packages_are_not_judged(tmp_path: Path) -> None:
    ours = report(tmp_path / "ours.xml", {"fine.py": line(1, 1)})
    text = ours.read_text().replace(f'filename="{PACKAGE}', 'filename="benchmarks/')
    theirs = tmp_path / "theirs.xml"
    theirs.write_text(text.replace('hits="1"', 'hits="0"'))
    assert check(ours, theirs).returncode == 0


@pytest.mark.parametrize("content", [None, "<coverage"])
def test_a_missing_or_broken_report_fails(tmp_path: Path, content: str | None) -> None:
    good = report(tmp_path / "good.xml", {"fine.py": line(1, 1)})
    bad = tmp_path / "bad.xml"
    if content is not None:
        bad.write_text(content)
    run = check(good, bad)
    assert run.returncode == 1
    assert "cannot read a coverage report" in run.stdout
