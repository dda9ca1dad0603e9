"""Fail when any module is under the coverage floor in the union of several Cobertura XML reports.

scripts/test measures the suite once per supported Home Assistant; a version-specific branch runs
on one of them only, so a line or branch counts as covered when any report covers it. The figure
per module is coverage.py's own: (covered lines + covered branches) / (lines + branches).

Usage: python scripts/coverage_per_module.py [--min 95] [--package PREFIX] REPORT.xml...
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_CONDITION = re.compile(r"\((\d+)/(\d+)\)")


@dataclass
class _Branches:
    """One branching line as one report saw it: how many arcs, and which destinations it missed."""

    total: int
    covered: int
    missing: Counter[str]


@dataclass
class _Module:
    """The union of what the reports saw of one file."""

    covered_lines: set[int] = field(default_factory=set)
    lines: set[int] = field(default_factory=set)
    branches: dict[int, list[_Branches]] = field(default_factory=dict)

    def percent(self) -> float:
        """Coverage.py's percentage for the union."""
        branch_total = branch_covered = 0
        for seen in self.branches.values():
            total, covered = _union_branches(seen)
            branch_total += total
            branch_covered += covered
        possible = len(self.lines) + branch_total
        if not possible:
            return 100.0
        return 100.0 * (len(self.covered_lines) + branch_covered) / possible

    def missing_lines(self) -> list[int]:
        """Lines no report executed."""
        return sorted(self.lines - self.covered_lines)


def _union_branches(seen: list[_Branches]) -> tuple[int, int]:
    """Arcs of one line and how many any report took.

    When the reports agree on the arcs (same Python bytecode shape) an arc is missed only if every
    report missed it; when they disagree, the best single report stands.
    """
    if all(b.total == seen[0].total for b in seen):
        missed = seen[0].missing
        for other in seen[1:]:
            missed &= other.missing
        total = seen[0].total
        return total, max(total - sum(missed.values()), *(b.covered for b in seen))
    best = max(seen, key=lambda b: (b.covered / b.total if b.total else 1.0, b.total))
    return best.total, best.covered


def read_reports(paths: list[Path], package: str) -> dict[str, _Module]:
    """Merge the reports' per-file line and branch data, keyed by the file's relative path."""
    modules: dict[str, _Module] = {}
    for path in paths:
        root = ET.parse(path).getroot()
        for cls in root.iter("class"):
            filename = cls.get("filename", "")
            if not filename.startswith(package):
                continue
            module = modules.setdefault(filename, _Module())
            for line in cls.iter("line"):
                number = int(line.get("number", "0"))
                module.lines.add(number)
                if int(line.get("hits", "0")) > 0:
                    module.covered_lines.add(number)
                if line.get("branch") == "true":
                    module.branches.setdefault(number, []).append(_branches_of(line))
    return modules


def _branches_of(line: ET.Element) -> _Branches:
    """The arcs of one branching line element."""
    match = _CONDITION.search(line.get("condition-coverage", ""))
    covered, total = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    missing_text = line.get("missing-branches", "")
    missing = Counter(part for part in missing_text.split(",") if part)
    if int(line.get("hits", "0")) == 0 and not missing:
        # A line that never ran missed every arc, whatever the report lists.
        missing = Counter({f"?{i}": 1 for i in range(total)})
        covered = 0
    return _Branches(total=total, covered=covered, missing=missing)


def below(modules: dict[str, _Module], minimum: float) -> list[tuple[str, float, list[int]]]:
    """The modules under the floor, worst first."""
    low = [(name, m.percent(), m.missing_lines()) for name, m in modules.items()]
    return sorted((row for row in low if row[1] < minimum), key=lambda row: row[1])


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 7 → '1-3, 7'."""
    parts: list[str] = []
    start = prev = None
    for n in numbers:
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Print the modules under the floor; exit 1 if there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--min", type=float, default=95.0, dest="minimum")
    parser.add_argument("--package", default="custom_components/coral_vision/")
    args = parser.parse_args(argv)
    try:
        modules = read_reports(args.reports, args.package)
    except (OSError, ET.ParseError) as err:
        print(f"cannot read a coverage report: {err}")
        return 1
    if not modules:
        print(f"no file under {args.package} in {', '.join(map(str, args.reports))}")
        return 1
    low = below(modules, args.minimum)
    for name, percent, missing in low:
        lines = f" (lines never run: {_ranges(missing)})" if missing else " (partial branches)"
        print(f"{name}: {percent:.1f}% < {args.minimum:g}%{lines}")
    if low:
        print(
            f"{len(low)} of {len(modules)} modules under {args.minimum:g}% (all reports combined)"
        )
        return 1
    print(
        f"every one of {len(modules)} modules at {args.minimum:g}% or more (all reports combined)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
