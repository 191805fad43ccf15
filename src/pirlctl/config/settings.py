"""Operator settings (hosts, ports, auth, logging): pydantic-settings, precedence CLI > env ``PIRL_*`` > run
config file > defaults. Secrets never go into the run config, logs or metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pirlctl.config.run_config import PiRLRunConfig, RunConfigError

if TYPE_CHECKING:
    from pirlctl.runtime.transport import TlsConfig

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class OperatorSettings(BaseSettings):
    """``PIRL_LEARNER_HOST``, ``PIRL_LEARNER_PORT``, ``PIRL_TOKEN``, ``PIRL_TOKEN_FILE``, ``PIRL_TLS_CERT``,
    ``PIRL_TLS_KEY``, ``PIRL_TLS_CA``, ``PIRL_TLS_SERVER_NAME``, ``PIRL_LOG_LEVEL``.

    TLS files are PEM. Learner: CERT + KEY are served; CA set means actors must present a certificate it signed
    (mutual TLS). Actor: CA is what it trusts for the learner; CERT + KEY are its client certificate."""

    model_config = SettingsConfigDict(env_prefix="PIRL_", extra="ignore")

    learner_host: str | None = None
    learner_port: int | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_server_name: str | None = None
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

    def resolved_tls(self) -> TlsConfig | None:
        """The PEM files as a ``TlsConfig``; None when no ``PIRL_TLS_*`` file is set."""
        from pirlctl.runtime.transport import TlsConfig

        if not (self.tls_cert or self.tls_key or self.tls_ca):
            return None
        if bool(self.tls_cert) != bool(self.tls_key):
            raise RunConfigError("PIRL_TLS_CERT and PIRL_TLS_KEY go together: set both (or neither)")
        pems = {
            name: _read_pem(path, f"PIRL_TLS_{name.upper()}")
            for name, path in (("cert", self.tls_cert), ("key", self.tls_key), ("ca", self.tls_ca))
            if path is not None
        }
        return TlsConfig(**pems, server_name=self.tls_server_name)


def _read_pem(path: Path, var: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RunConfigError(f"{var} file {path} unreadable ({err.strerror}); fix {var}") from err
    if b"-----BEGIN " not in data:
        raise RunConfigError(f"{var} file {path} is not PEM (no -----BEGIN line); point {var} at a PEM file")
    return data


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


def check_bind_address(host: str, *, allow_remote: bool, token: str | None, tls: TlsConfig | None = None) -> None:
    """The learner binds loopback unless told otherwise, and never a remote address without a token or TLS."""
    if tls is not None and not (tls.cert and tls.key):
        raise RunConfigError("a TLS learner needs its certificate and key: set PIRL_TLS_CERT and PIRL_TLS_KEY")
    if host in LOOPBACK:
        return
    if not allow_remote:
        raise RunConfigError(
            f"refusing to bind the learner to {host}: pass --allow-remote (and set PIRL_TOKEN or PIRL_TLS_*) "
            "to accept remote actors"
        )
    if not token and tls is None:
        raise RunConfigError(
            f"binding the learner to {host} needs a shared token or TLS: set PIRL_TOKEN (or PIRL_TOKEN_FILE), "
            "or PIRL_TLS_CERT and PIRL_TLS_KEY, on learner and actors"
        )
