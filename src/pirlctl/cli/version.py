"""``pirlctl version``: the installed pirlctl, lerobot and torch, read from package metadata (nothing imported)."""

from __future__ import annotations

import typer

from pirlctl.reporting.output import render

PACKAGES = ("pirlctl", "lerobot", "torch")


def installed_versions() -> dict[str, str]:
    """Version of each of :data:`PACKAGES` ("not installed" when absent) and of Python, without importing them."""
    import platform

    from pirlctl.versions import package_version

    return {**{name: package_version(name) for name in PACKAGES}, "python": platform.python_version()}


def register(app: typer.Typer) -> None:
    @app.command()
    def version(json_out: bool = typer.Option(False, "--json", help="Print the versions as JSON.")) -> None:
        """Print pirlctl, lerobot, torch and Python versions."""
        render(installed_versions(), as_json=json_out, title="versions")
