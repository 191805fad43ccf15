"""The walk: a checked SAC run config dict -> a PI-RL run config and the report's three groups (no I/O).

Each part (:mod:`~pirlctl.migrate.walk_policy`, :mod:`~pirlctl.migrate.walk_run`, :mod:`~pirlctl.migrate.walk_env`)
applies the rules of :mod:`~pirlctl.migrate.rules` to its section and records items on the shared
:class:`~pirlctl.migrate.state.Migration`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.migrate.report import MigrationItem
from pirlctl.migrate.state import Migration, get
from pirlctl.migrate.walk_env import walk_env
from pirlctl.migrate.walk_policy import walk_policy
from pirlctl.migrate.walk_run import walk_algorithm, walk_leftovers, walk_runtime, walk_top_level

if TYPE_CHECKING:
    from lerobot.configs.policies import PreTrainedConfig


def walk(
    sac: dict[str, Any], policy_cfg: PreTrainedConfig, policy_source: str, *, custom_policy: bool
) -> tuple[PiRLRunConfig, str | None, Migration]:
    """Walk ``sac`` (a checked SAC run config dict) into a PI-RL run config for ``policy_cfg``.

    Returns the config, the SAC run's offline dataset repo id (None without one) and the walk's state, whose
    ``changes``, ``same`` and ``decide`` are the report's groups. The order matters: each part marks the fields it
    handled, and the final sweep reports every field no part handled.
    """
    m = Migration(sac, policy_cfg, policy_source, custom_policy)
    walk_policy(m)
    walk_runtime(m)
    walk_algorithm(m)
    walk_env(m)
    walk_top_level(m)
    walk_leftovers(m)
    for reason, fields in m.dropped.items():
        m.changes.append(MigrationItem(", ".join(fields), fields, None, None, reason))
    cfg = PiRLRunConfig(
        policy=m.policy_cfg,
        policy_path=m.policy_source if m.custom_policy else None,
        algorithm=m.algorithm,
        env=m.env,
        runtime=m.runtime,
        output_dir=m.output_dir,
        job_name=m.job_name,
        seed=m.seed,
        resume=False,
    )
    repo_id = get(m.sac, "dataset.repo_id")
    return cfg, str(repo_id) if repo_id is not None else None, m
