"""Rich tables for reports with grouped items (``migrate-config``); ``--json`` prints the same data for machines."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.table import Table

from pirlctl.reporting.output import console, to_data

if TYPE_CHECKING:
    from pirlctl.diagnostics.migrate import MigrationReport

CELL_CHARS = 80  # long values (whole dropped blocks) are cut in the table; --json has them in full


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def render_migration(report: MigrationReport, *, as_json: bool = False, config: dict[str, Any] | None = None) -> None:
    """The migration report: three tables for people, or JSON (plus the migrated ``config`` when given)."""
    data = to_data(report)
    if as_json:
        if config is not None:
            data["config"] = config
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    if report.written:
        status = f"written to {report.output}"
    elif report.dry_run:
        status = "dry run: nothing written"
    else:
        status = "not written"
    console.print(f"[bold]migrate-config[/] {report.source} → PI-RL run config ({status})", highlight=False)
    console.print(f"policy: {report.policy}", highlight=False)
    if report.dataset_repo_id:
        console.print(f"dataset: {report.dataset_repo_id} (PI-RL does not read it; see below)", highlight=False)

    changes = Table(title=f"Changes ({len(report.changes)})", title_justify="left", expand=True)
    for name, style in (("SAC field", "cyan"), ("old → new", None), ("PI-RL field", "green"), ("why", None)):
        changes.add_column(name, style=style, overflow="fold")
    for item in report.changes:
        new = _cell(item.new) if item.target is not None else "dropped"
        changes.add_row(item.field or "(new)", f"{_cell(item.old)} → {new}", item.target or "—", item.why)
    console.print(changes)

    same = Table(title=f"Stays the same ({len(report.stays_the_same)})", title_justify="left", expand=True)
    for name, style in (("SAC field", "cyan"), ("value", None), ("PI-RL field", "green"), ("note", None)):
        same.add_column(name, style=style, overflow="fold")
    for item in report.stays_the_same:
        same.add_row(item.field or "(new)", _cell(item.new), item.target or "—", item.why)
    console.print(same)

    decide = Table(title=f"You must decide ({len(report.you_must_decide)})", title_justify="left", expand=True)
    for name, style in (("SAC field", "yellow"), ("SAC value", None), ("PI-RL now", "green"), ("what to choose", None)):
        decide.add_column(name, style=style, overflow="fold")
    for item in report.you_must_decide:
        now = _cell(item.new) if item.target is not None else "—"
        where = f"{item.target}: {now}" if item.target else "no equivalent"
        decide.add_row(item.field, _cell(item.old), where, item.why)
    console.print(decide)
    if report.written:
        console.print(f"next: pirlctl learner --config_path {report.output}", highlight=False)
