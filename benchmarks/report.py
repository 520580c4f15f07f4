"""What every benchmark needs: the machine it ran on, percentiles, and its own section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
# Read when the benchmark starts (this module is imported first): how busy the machine was before the run.
_LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def load_note() -> str:
    """The 1-minute load average before the run: near 0 on an idle machine, ≥ 1 when other work shared it."""
    return f"load average before the run {_LOAD_AT_START:.2f}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """The CPU model and how many logical CPUs it gives this machine."""
    return f"{cpu_model()}, {os.cpu_count()} logical CPUs"


def machine_line() -> str:
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; {load_note()}. Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def write_section(title: str, markdown: str, path: Path = DOC_PATH) -> None:
    """Replace (or append) the section headed `## {title}`, leaving other benchmarks' sections alone."""
    heading = f"## {title}"
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{markdown.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: section + "\n", existing, count=1).rstrip() + "\n"
    else:
        updated = existing.rstrip() + "\n\n" + section
    path.write_text(updated)
