"""The one output layer: commands return reports (dataclasses or dicts); this renders them for people (Rich)
or machines (``--json``). Known errors become one line naming the problem and the fix."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def to_data(report: Any) -> Any:
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return {k: to_data(v) for k, v in dataclasses.asdict(report).items()}
    if isinstance(report, dict):
        return {str(k): to_data(v) for k, v in report.items()}
    if isinstance(report, (list, tuple)):
        return [to_data(v) for v in report]
    return report


def render(report: Any, *, as_json: bool = False, title: str | None = None) -> None:
    data = to_data(report)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    if isinstance(data, dict):
        table = Table(title=title, show_header=False, box=None)
        table.add_column(style="bold cyan")
        table.add_column()
        for k, v in data.items():
            table.add_row(str(k), f"{v:.4g}" if isinstance(v, float) else str(v))
        console.print(table)
    else:
        console.print(data)


def error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
