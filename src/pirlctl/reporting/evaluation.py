"""``pirlctl eval`` for people: rates as percentages, the 95% interval as a range, empty fields left out; ``--json``
prints the report's raw fields (fractions in [0, 1], ``null`` for what is absent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from pirlctl.reporting.output import console, render

if TYPE_CHECKING:
    from pirlctl.pipeline.evaluate import EvalReport


def percent(x: float) -> str:
    """A rate in [0, 1] as a whole percentage; one decimal where rounding would show 0% or 100% for a rate that is
    neither (0.996 is "99.6%", not "100%")."""
    whole = f"{100 * x:.0f}%"
    if whole in ("0%", "100%") and 0.0 < x < 1.0:
        return f"{100 * x:.1f}%"
    return whole


def percent_range(low: float, high: float) -> str:
    """An interval of rates, e.g. ``[88%, 97%]``."""
    return f"[{percent(low)}, {percent(high)}]"


def eval_rows(report: EvalReport) -> list[tuple[str, str]]:
    """(label, value) lines of an evaluation, in reading order; a field without a value gets no line."""
    rows = [
        ("checkpoint", report.checkpoint),
        ("success rate", f"{percent(report.success_rate)} ({report.successes} of {report.episodes} episodes)"),
        ("95% interval", percent_range(report.ci95_low, report.ci95_high)),
        ("mean return", f"{report.mean_return:.3g}"),
        ("mean length", f"{report.mean_length:.1f} steps"),
        ("env steps", str(report.env_steps)),
        ("time", f"{report.seconds:.1f} s"),
        ("strip", report.strip),
    ]
    return [(label, value) for label, value in rows if value]


def render_eval(report: EvalReport, *, as_json: bool = False) -> None:
    if as_json:
        render(report, as_json=True)
        return
    table = Table(title="eval", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in eval_rows(report):
        table.add_row(label, escape(value))
    console.print(table)
