"""The walk's state: the SAC dict, the PI-RL settings being built, and the three report groups being filled.

:class:`Migration` holds state and records items; the walk itself is plain functions taking it
(:mod:`pirlctl.migrate.walk` and the ``walk_*`` modules). The helpers read the SAC dict without ever raising.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.config.run_config import EnvSettings, PiRLRunConfig, RuntimeSettings
from pirlctl.migrate.report import MigrationItem

if TYPE_CHECKING:
    from lerobot.configs.policies import PreTrainedConfig


def get(data: Any, path: str, default: Any = None) -> Any:
    """``data`` at the dotted ``path``; ``default`` where a part is missing or not a dict."""
    cur = data
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def shape_of(feature: Any) -> list[int] | None:
    """The ``shape`` of an encoded policy feature, as ints; None when it has none."""
    shape = feature.get("shape") if isinstance(feature, dict) else None
    return [int(s) for s in shape] if isinstance(shape, (list, tuple)) else None


def is_empty(value: Any) -> bool:
    return value is None or value is False or value == {} or value == [] or value == ""


def plain(value: Any) -> Any:
    """JSON values (enums by value), for comparing with the SAC dict and for the report."""
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


class Migration:
    """One SAC config dict being migrated: the PI-RL settings built so far and the report items. State only; no I/O.

    Every SAC field an item names is marked ``seen``, so the final sweep (``walk_leftovers``) can report the rest.
    """

    def __init__(self, sac: dict[str, Any], policy_cfg: PreTrainedConfig, policy_source: str, custom_policy: bool):
        self.sac = sac
        self.policy_cfg: Any = policy_cfg
        self.policy_source = policy_source
        self.custom_policy = custom_policy  # --policy-path: the checkpoint's features are kept, not rewritten
        self.pol: dict[str, Any] = sac["policy"]
        self.changes: list[MigrationItem] = []
        self.same: list[MigrationItem] = []
        self.decide: list[MigrationItem] = []
        self.seen: set[str] = set()
        self.dropped: dict[str, dict[str, Any]] = {}  # reason -> {field: value}: one change per reason
        self.env = EnvSettings()
        self.runtime = RuntimeSettings()
        self.algorithm = PiRLConfig()
        self.output_dir = "runs/pi_rl"
        self.job_name: str | None = None
        self.seed = PiRLRunConfig.seed

    def _add(self, group: list[MigrationItem], fld: str, old: Any, new: Any, target: str | None, why: str) -> None:
        group.append(MigrationItem(fld, old, new, target, why))
        self.seen.update(p.strip().removesuffix(" (images)") for p in fld.split(",") if p.strip())

    def change(self, fld: str, old: Any, new: Any, target: str | None, why: str) -> None:
        self._add(self.changes, fld, old, new, target, why)

    def stays(self, fld: str, value: Any, target: str | None, why: str) -> None:
        self._add(self.same, fld, value, value, target, why)

    def must_decide(self, fld: str, old: Any, new: Any, target: str | None, why: str) -> None:
        self._add(self.decide, fld, old, new, target, why)

    def drop(self, path: str, reason: str) -> None:
        self.dropped.setdefault(reason, {})[path] = get(self.sac, path)
        self.seen.add(path)

    def drop_present(self, prefix: str, table: dict[str, list[str]]) -> None:
        section = get(self.sac, prefix.rstrip(".")) if prefix else self.sac
        for reason, names in table.items():
            for name in names:
                if isinstance(section, dict) and name in section:
                    self.drop(f"{prefix}{name}", reason)

    def leftover(self, path: str, value: Any) -> None:
        """A field the walk does not know: dropped when empty, otherwise the user decides (never silently lost)."""
        if is_empty(value):
            self.drop(path, "not recognised by migrate-config, and empty in the SAC config")
        else:
            self.must_decide(
                path,
                value,
                None,
                None,
                "not recognised by migrate-config (a newer LeRobot or a custom field); no PI-RL equivalent is "
                "known: decide whether the run needs it",
            )

    def covered(self, path: str) -> bool:
        parts = path.split(".")
        return any(".".join(parts[:i]) in self.seen for i in range(1, len(parts) + 1))

    def sac_field(self, name: str) -> str | None:
        """Dotted path of a SAC hyperparameter: on ``algorithm`` (0.6.1), on the policy (pre-0.6), or top level."""
        for section in ("algorithm", "policy"):
            if isinstance(self.sac.get(section), dict) and name in self.sac[section]:
                return f"{section}.{name}"
        return name if name in self.sac else None
