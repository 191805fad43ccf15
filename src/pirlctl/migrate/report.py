"""The migration report: its items and groups, and the one-line error every refusal raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pirlctl.errors import PirlError


class MigrationError(PirlError, ValueError):
    """The migration cannot run; the message names the problem and the fix (one line)."""


@dataclass
class MigrationItem:
    """One line of the report: a SAC field (or fields), where it went, and why."""

    # SAC field(s), dotted from the top of the SAC config ("" for a PI-RL setting with no SAC source).
    field: str
    # Value in the SAC config (for a multi-field item, a dict of them).
    old: Any
    # Value written to the PI-RL config (None when nothing is written for it).
    new: Any
    # PI-RL field(s), dotted; None when the SAC field is not carried over.
    target: str | None
    # Why (for a change), or what to weigh and choose (for a decision).
    why: str


@dataclass
class MigrationReport:
    source: str
    output: str | None
    written: bool
    dry_run: bool
    # The flow policy written: the tiny X-VLA config file, or the checkpoint folder given with --policy-path.
    policy: str
    # The SAC run's offline dataset (demonstrations); PI-RL does not read it (see you_must_decide).
    dataset_repo_id: str | None
    changes: list[MigrationItem] = field(default_factory=list)
    stays_the_same: list[MigrationItem] = field(default_factory=list)
    you_must_decide: list[MigrationItem] = field(default_factory=list)
