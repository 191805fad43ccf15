"""Operator settings (hosts, ports, auth, logging): pydantic-settings, precedence CLI > env ``PIRL_*`` > run
config file > defaults. Secrets never go into the run config, logs or metrics."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pirlctl.config.run_config import PiRLRunConfig, RunConfigError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class OperatorSettings(BaseSettings):
    """``PIRL_LEARNER_HOST``, ``PIRL_LEARNER_PORT``, ``PIRL_TOKEN``, ``PIRL_TOKEN_FILE``, ``PIRL_LOG_LEVEL``."""

    model_config = SettingsConfigDict(env_prefix="PIRL_", extra="ignore")

    learner_host: str | None = None
    learner_port: int | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    log_level: str = "INFO"

    def resolved_token(self) -> str | None:
        """The shared token: ``PIRL_TOKEN``, else the first line of ``PIRL_TOKEN_FILE``."""
        if self.token is not None and self.token.get_secret_value():
            return self.token.get_secret_value()
        if self.token_file is not None:
            try:
                text = self.token_file.read_text().strip()
            except OSError as err:
                raise RunConfigError(
                    f"token file {self.token_file} unreadable ({err.strerror}); fix PIRL_TOKEN_FILE"
                ) from err
            return text.splitlines()[0] if text else None
        return None


def apply_operator_settings(
    cfg: PiRLRunConfig,
    settings: OperatorSettings,
    *,
    host: str | None = None,
    port: int | None = None,
) -> PiRLRunConfig:
    """Overlay env settings, then CLI options, onto the run config's runtime section."""
    if settings.learner_host:
        cfg.runtime.learner_host = settings.learner_host
    if settings.learner_port:
        cfg.runtime.learner_port = settings.learner_port
    if host:
        cfg.runtime.learner_host = host
    if port:
        cfg.runtime.learner_port = port
    return cfg


def check_bind_address(host: str, *, allow_remote: bool, token: str | None) -> None:
    """The learner binds loopback unless told otherwise, and never a remote address without a token."""
    if host in LOOPBACK:
        return
    if not allow_remote:
        raise RunConfigError(
            f"refusing to bind the learner to {host}: pass --allow-remote (and set PIRL_TOKEN) to accept remote actors"
        )
    if not token:
        raise RunConfigError(
            f"binding the learner to {host} needs a shared token: "
            "set PIRL_TOKEN or PIRL_TOKEN_FILE on learner and actors"
        )
