"""Rich tables for reports with grouped items (``migrate-config``); ``--json`` prints the same data for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

from pirlctl.reporting.output import console, to_data

if TYPE_CHECKING:
    from pirlctl.migrate.report import MigrationReport

CELL_CHARS = 80  # long values (whole dropped blocks) are cut in the table; --json has them in full
RATIOS = (2, 2, 2, 3)  # column widths: the explanation gets the most room


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _table(title: str, columns: tuple[tuple[str, str | None], ...], rows: Sequence[tuple[str, ...]]) -> Table:
    table = Table(title=title, title_justify="left", expand=True)
    for (name, style), ratio in zip(columns, RATIOS, strict=True):
        table.add_column(name, style=style, overflow="fold", ratio=ratio)
    for row in rows:
        table.add_row(*row)
    return table


def render_migration(report: MigrationReport, *, as_json: bool = False, config: dict[str, Any] | None = None) -> None:
    """The migration report: three tables for people, or JSON (plus the migrated ``config`` when given)."""
    data = to_data(report)
    if as_json:
        if config is not None:
            data["config"] = config
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    status = "dry run: nothing written" if report.dry_run else "not written"
    if report.written:
        status = f"written to {report.output}"
    console.print(f"[bold]migrate-config[/] {report.source} → PI-RL run config ({status})", highlight=False)
    console.print(f"policy: {report.policy}", highlight=False)
    if report.dataset_repo_id:
        console.print(f"dataset: {report.dataset_repo_id} (PI-RL does not read it; see below)", highlight=False)

    changes = [
        (
            i.field or "(new)",
            f"{_cell(i.old)} → {_cell(i.new) if i.target is not None else 'dropped'}",
            i.target or "—",
            i.why,
        )
        for i in report.changes
    ]
    same = [(i.field or "(new)", _cell(i.new), i.target or "—", i.why) for i in report.stays_the_same]
    decide = [
        (i.field, _cell(i.old), f"{i.target}: {_cell(i.new)}" if i.target else "no equivalent", i.why)
        for i in report.you_must_decide
    ]
    field_col, target_col = ("SAC field", "cyan"), ("PI-RL field", "green")
    changes_cols = (field_col, ("old → new", None), target_col, ("why", None))
    same_cols = (field_col, ("value", None), target_col, ("note", None))
    decide_cols = (("SAC field", "yellow"), ("SAC value", None), ("PI-RL now", "green"), ("what to choose", None))
    console.print(_table(f"Changes ({len(changes)})", changes_cols, changes))
    console.print(_table(f"Stays the same ({len(same)})", same_cols, same))
    console.print(_table(f"You must decide ({len(decide)})", decide_cols, decide))
    if report.written:
        console.print(f"next: pirlctl learner --config_path {report.output}", highlight=False)


def render_profile(report: Any) -> None:
    """profile-actor: one row per measured K, the time breakdown per chunk, the recommendation."""
    table = Table(title="actor loop profile (per chunk)")
    for col in (
        "K",
        "policy FPS mean [p10, p90]",
        "env FPS",
        "loop FPS",
        "target",
        "prefix ms",
        "denoise ms",
        "logprob+value ms",
        "env ms",
        "enqueue ms",
    ):
        table.add_column(col, justify="right")
    for r in report.rows:
        s = r.seconds_per_chunk
        table.add_row(
            str(r.num_denoise_steps),
            f"{r.policy_fps_mean:.0f} [{r.policy_fps_p10:.0f}, {r.policy_fps_p90:.0f}]",
            f"{r.env_fps:.1f}",
            f"[{'green' if r.holds_target else 'red'}]{r.loop_fps:.1f}[/]",
            f"{r.target_fps:.0f}",
            *(f"{1000 * s[k]:.1f}" for k in ("prefix", "denoise", "logprob_value", "env", "enqueue")),
        )
    console.print(table)
    rec = report.recommended_num_denoise_steps
    console.print(
        f"recommended num_denoise_steps: [bold]{rec}[/] (largest K holding the target)"
        if rec is not None
        else "[red]no measured K holds the target fps[/]: lower K, n_exec cost, or image size"
    )
    console.print(f"flame graph: {report.flame_graph or report.py_spy}")
