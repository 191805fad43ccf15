"""Shared helpers for the benchmarks: timing with repeats, machine description."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def timeit(fn: Callable[[], Any], *, repeats: int = 5, number: int = 3, warmup: int = 1) -> list[float]:
    """Seconds per call, one figure per repeat (each the mean of ``number`` calls)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t) / number)
    return out


def stats(xs: list[float]) -> dict[str, float]:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}


def fmt(s: dict[str, float], digits: int = 3) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} torch threads"
    )


ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the ``<!-- name:begin -->`` ... ``<!-- name:end -->`` block replaced by ``body`` (appended when
    absent)."""
    start, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body}\n{end}"
    if start in text:
        return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    return text + "\n" + block + "\n"
