"""Rich tables for the diagnostics reports (``verify-sync``, ``checklist``); ``--json`` prints the same data."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from pirlctl.reporting.output import console, to_data

if TYPE_CHECKING:
    from pirlctl.diagnostics.checklist import ChecklistReport
    from pirlctl.diagnostics.sync_checks import NumericCheck
    from pirlctl.diagnostics.verify_sync import VerifySyncReport

PASS = "[bold green]PASS[/]"
FAIL = "[bold red]FAIL[/]"
SKIP = "[yellow]SKIP[/]"


def _verdict(passed: bool) -> str:
    return PASS if passed else FAIL


def _json(report: Any) -> None:
    sys.stdout.write(json.dumps(to_data(report), indent=2, default=str) + "\n")


def _g(x: float | None, fmt: str = ".3g") -> str:
    return "—" if x is None else format(x, fmt)


def numeric_evidence(num: NumericCheck) -> str:
    """The numeric check's evidence: each measured value with the limit it must stay within (never a comparison
    sign, which would read as if it held)."""
    noise = f"noise level actor {_g(num.actor_noise_level)} / learner {_g(num.learner_noise_level)}"
    perturbed = f"; planted fault: {num.perturbed} shifted" if num.perturbed else ""
    return (
        f"{num.chunks} chunks: max |Δ log-prob| {_g(num.max_abs_delta_log_prob)} (limit {num.tolerance:g}); "
        f"lr-0 update ratio [{_g(num.ratio_min, '.6f')}, {_g(num.ratio_max, '.6f')}], clipfrac "
        f"{_g(num.clipfrac)} (limit 0), approx_kl {_g(num.approx_kl)}; {noise}{perturbed}"
    )


def render_verify_sync(report: VerifySyncReport, *, as_json: bool = False) -> None:
    if as_json:
        _json(report)
        return
    s, live, num = report.static, report.live, report.numeric
    console.print(f"[bold]verify-sync[/] {escape(report.config)}: {_verdict(report.passed)}", highlight=False)
    checks = Table(title="Checks", title_justify="left", expand=True)
    checks.add_column("check", style="cyan", no_wrap=True)
    checks.add_column("result", no_wrap=True)
    checks.add_column("evidence", overflow="fold")
    fp = (
        "match"
        if s.fingerprint_match
        else f"DIFFER (learner {s.learner_fingerprint[:12] or '—'}, actor {s.actor_fingerprint[:12]})"
    )
    checks.add_row(
        "static",
        _verdict(s.passed),
        f"{s.keys_pushed} keys pushed, {s.keys_expected} expected, {len(s.problems)} problem(s); "
        f"frozen-part fingerprint {fp} ({s.actor_fingerprint[:12]})",
    )
    if live.load_error:
        live_text = f"actor refused v{live.version}: {escape(live.load_error)}"
    else:
        live_text = (
            f"{live.tensors_compared - len(live.mismatches)}/{live.tensors_compared} tensors match (sha256) "
            f"after loading v{live.version}"
        )
        if live.policy_tensors_compared:
            n = live.policy_tensors_compared
            live_text += f"; whole policy: {n - len(live.policy_mismatches)}/{n} tensors equal the learner's"
    checks.add_row(
        "live",
        _verdict(live.passed),
        f"{escape(live.source)}: {live.bytes / 1e6:.2f} MB in {live.seconds * 1e3:.0f} ms ({live.mb_per_s:.1f} MB/s), "
        f"load {live.load_seconds * 1e3:.0f} ms; {live_text}",
    )
    if num.skipped:
        checks.add_row("numeric", SKIP if num.passed else FAIL, f"skipped: {escape(num.skipped)}")
    else:
        checks.add_row("numeric", _verdict(num.passed), escape(numeric_evidence(num)))
    console.print(checks)
    if s.problems:
        table = Table(title=f"Per-key problems ({len(s.problems)})", title_justify="left", expand=True)
        table.add_column("key", style="yellow", overflow="fold")
        table.add_column("problem", no_wrap=True)
        table.add_column("learner pushes", overflow="fold")
        table.add_column("actor consumes", overflow="fold")
        for p in s.problems:
            table.add_row(escape(p.key), p.problem, escape(p.pushed), escape(p.expected))
        console.print(table)
    differ = [*live.mismatches, *live.policy_mismatches]
    if differ:
        table = Table(title=f"Tensors that differ after loading ({len(differ)})", title_justify="left")
        table.add_column("key", style="yellow", overflow="fold")
        table.add_column("learner sha256")
        table.add_column("actor sha256")
        for m in differ:
            table.add_row(escape(m.key), m.learner_sha256[:16], m.actor_sha256[:16])
        console.print(table)


def render_checklist(report: ChecklistReport, *, as_json: bool = False) -> None:
    if as_json:
        _json(report)
        return
    table = Table(
        title=f"checklist {escape(report.config)}: {_verdict(report.passed)} ({report.seconds:.0f} s)",
        title_justify="left",
        expand=True,
    )
    table.add_column("item", style="cyan", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("evidence", overflow="fold")
    table.add_column("s", justify="right", no_wrap=True)
    for item in report.items:
        table.add_row(item.name, _verdict(item.passed), escape(item.evidence), f"{item.seconds:.1f}")
    console.print(table)
    failed = [i.name for i in report.items if not i.passed]
    if failed:
        console.print(f"[bold red]{len(failed)} failed:[/] {', '.join(failed)}", highlight=False)
