"""LeRobot 0.6.1 SAC run config -> PI-RL run config, with a report of what changed and what the user must decide.

The input is the JSON that ``lerobot-train-rl`` reads (``lerobot.rl.train_rl.TrainRLServerPipelineConfig``, encoded
by draccus): ``policy.type = "gaussian_actor"`` plus ``algorithm.type = "sac"`` (or a pre-0.6 ``policy.type = "sac"``
that carried the SAC hyperparameters itself), and usually a ``gym_manipulator`` env (HIL-SERL on gym_hil or a real
robot). It is read as a plain dict: parsing it into LeRobot's dataclasses would run their ``validate``, which has
known 0.6.1 defects (``dataset: null`` crashes it, upstream issue 1546; a ``processor.reset`` block cannot even be
encoded by draccus), and those defects must not stop a migration.

Every SAC field ends up in one of three groups: *changes* (moved, rewritten or dropped, with the reason), *stays the
same*, and *you must decide* (a SAC setting with no PI-RL equivalent whose value mattered, or a choice PI-RL needs
that SAC's value cannot make). Fields the migration does not recognise are never dropped silently: a non-empty one
lands in *you must decide*.

Layout (each part importable on its own; nothing here is imported at package import):

- :mod:`~pirlctl.migrate.rules`: rule data, the tables of SAC fields (moved, dropped, to decide) and their prose;
- :mod:`~pirlctl.migrate.report`: the report's dataclasses and :class:`~pirlctl.migrate.report.MigrationError`;
- :mod:`~pirlctl.migrate.walk`: the walker, a SAC dict -> a PI-RL run config and the report's groups (no I/O), in
  parts: :mod:`~pirlctl.migrate.walk_policy`, :mod:`~pirlctl.migrate.walk_run`, :mod:`~pirlctl.migrate.walk_env`,
  over the shared state of :mod:`~pirlctl.migrate.state`;
- :mod:`~pirlctl.migrate.files`: I/O and the entry points (``migrate``, ``migrate_config_file``): read and check the
  SAC JSON, load the flow policy's config, check the result loads, write it (never over a file without ``force``).
"""
