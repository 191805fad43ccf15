"""Moved to :mod:`pirlctl.migrate` (rule data, walker and I/O apart); this name is removed in the next commit."""

from pirlctl.migrate.files import (  # noqa: F401
    MigrationError,
    MigrationItem,
    MigrationReport,
    check_is_sac,
    check_loadable,
    migrate,
    migrate_config_file,
    read_sac_config,
    write_config,
)
from pirlctl.migrate.walk_policy import xvla_table_sizes  # noqa: F401
