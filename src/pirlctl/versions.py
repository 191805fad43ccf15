"""Installed package versions, read from package metadata (nothing imported): for ``pirlctl version`` and the
checkpoint manifest."""

from __future__ import annotations


def package_version(name: str, missing: str = "not installed") -> str:
    """The installed version of distribution ``name``, or ``missing`` when it is not installed."""
    import importlib.metadata  # ~0.1 s: only when asked, not for every --help

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return missing
