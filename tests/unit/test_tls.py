"""TLS on the learner endpoint over real gRPC on loopback: served certificate, trusted CA, mutual TLS."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import grpc
import pytest

from pirlctl.config.run_config import RunConfigError
from pirlctl.config.settings import OperatorSettings, check_bind_address
from pirlctl.runtime.transport import LearnerClient, PiRLLearnerService, TlsConfig, start_server

from ..integration.procs import free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make certificates")


def _self_signed(d: Path, name: str) -> tuple[Path, Path]:
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pems(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tls")
    out: dict[str, Path] = {}
    for name in ("learner", "actor", "rogue"):
        out[f"{name}_cert"], out[f"{name}_key"] = _self_signed(d, name)
    return out


def _serve(tls: TlsConfig):
    shutdown = threading.Event()
    svc = PiRLLearnerService(shutdown, lambda b, p: None, lambda b, p: None)
    port = free_port()
    server = start_server(svc, "127.0.0.1", port, num_actors=1, tls=tls)
    svc.publish(3, b"weights-v3")
    return server, shutdown, port


def _first_blob(client: LearnerClient) -> bytes:
    return next(iter(client.stream_parameters()))


def test_tls_learner_serves_actors_that_trust_it_and_refuses_the_rest(pems):
    server, shutdown, port = _serve(
        TlsConfig(cert=pems["learner_cert"].read_bytes(), key=pems["learner_key"].read_bytes())
    )
    try:
        good = LearnerClient("127.0.0.1", port, tls=TlsConfig(ca=pems["learner_cert"].read_bytes()))
        good.ready()
        assert _first_blob(good) == b"weights-v3"
        plaintext = LearnerClient("127.0.0.1", port)
        with pytest.raises(grpc.RpcError) as err:
            plaintext.ready(timeout=3)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        wrong_ca = LearnerClient("127.0.0.1", port, tls=TlsConfig(ca=pems["rogue_cert"].read_bytes()))
        with pytest.raises(grpc.RpcError) as err:
            wrong_ca.ready(timeout=3)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        shutdown.set()
        server.stop(0)


def test_mutual_tls_requires_a_client_certificate_signed_by_the_learner_ca(pems):
    server, shutdown, port = _serve(
        TlsConfig(
            cert=pems["learner_cert"].read_bytes(),
            key=pems["learner_key"].read_bytes(),
            ca=pems["actor_cert"].read_bytes(),
        )
    )
    trust = pems["learner_cert"].read_bytes()
    try:
        ok = LearnerClient(
            "127.0.0.1",
            port,
            tls=TlsConfig(ca=trust, cert=pems["actor_cert"].read_bytes(), key=pems["actor_key"].read_bytes()),
        )
        ok.ready()
        assert _first_blob(ok) == b"weights-v3"
        for tls in (
            TlsConfig(ca=trust),  # no client certificate
            TlsConfig(ca=trust, cert=pems["rogue_cert"].read_bytes(), key=pems["rogue_key"].read_bytes()),
        ):
            with pytest.raises(grpc.RpcError) as err:
                LearnerClient("127.0.0.1", port, tls=tls).ready(timeout=3)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        shutdown.set()
        server.stop(0)


def test_tls_settings_read_pem_files_and_refuse_bad_ones_in_one_line(pems, tmp_path, monkeypatch):
    monkeypatch.setenv("PIRL_TLS_CERT", str(pems["learner_cert"]))
    monkeypatch.setenv("PIRL_TLS_KEY", str(pems["learner_key"]))
    tls = OperatorSettings().resolved_tls()
    assert tls is not None and tls.cert == pems["learner_cert"].read_bytes() and tls.ca is None
    check_bind_address("0.0.0.0", allow_remote=True, token=None, tls=tls)  # TLS instead of a token
    with pytest.raises(RunConfigError, match="--allow-remote"):
        check_bind_address("0.0.0.0", allow_remote=False, token=None, tls=tls)
    with pytest.raises(RunConfigError, match="PIRL_TLS_CERT and PIRL_TLS_KEY"):
        check_bind_address("127.0.0.1", allow_remote=False, token=None, tls=TlsConfig(ca=b"x"))

    monkeypatch.delenv("PIRL_TLS_KEY")
    with pytest.raises(RunConfigError, match="go together"):
        OperatorSettings().resolved_tls()
    not_pem = tmp_path / "cert.der"
    not_pem.write_bytes(b"\x30\x82binary")
    monkeypatch.setenv("PIRL_TLS_KEY", str(pems["learner_key"]))
    monkeypatch.setenv("PIRL_TLS_CERT", str(not_pem))
    with pytest.raises(RunConfigError, match="not PEM") as err:
        OperatorSettings().resolved_tls()
    assert "\n" not in str(err.value)
    monkeypatch.setenv("PIRL_TLS_CERT", str(tmp_path / "missing.pem"))
    with pytest.raises(RunConfigError, match="unreadable"):
        OperatorSettings().resolved_tls()
    for var in ("PIRL_TLS_CERT", "PIRL_TLS_KEY"):
        monkeypatch.delenv(var)
    assert OperatorSettings().resolved_tls() is None


# slow (15 s): the TLS handshakes are tested fast above
@pytest.mark.slow
@pytest.mark.integration
def test_learner_on_a_non_loopback_address_trains_an_actor_over_mutual_tls(pems, tmp_path):
    """The CLI wiring: ``PIRL_TLS_*`` on both processes, learner bound to 0.0.0.0 with --allow-remote, no token."""
    from ..integration.procs import report, spawn

    out, port = tmp_path / "run", free_port()
    both = {"PIRL_TLS_CA": str(pems["actor_cert"])}
    learner_env = {**both, "PIRL_TLS_CERT": str(pems["learner_cert"]), "PIRL_TLS_KEY": str(pems["learner_key"])}
    actor_env = {
        "PIRL_TLS_CA": str(pems["learner_cert"]),
        "PIRL_TLS_CERT": str(pems["actor_cert"]),
        "PIRL_TLS_KEY": str(pems["actor_key"]),
    }
    budget = ["--runtime.total_env_steps=32", "--runtime.rollout_chunks=8"]
    learner = spawn("learner", out, port, "--host", "0.0.0.0", "--allow-remote", *budget, extra_env=learner_env)
    actor = spawn("actor", out, port, *budget, extra_env=actor_env)
    a, lr = report(actor), report(learner)
    assert lr["iterations"] >= 1 and lr["stopped_by"] == "budget"
    assert a["versions_loaded"] == list(range(lr["iterations"] + 1)) and a["chunks_sent"] >= lr["chunks_used"] > 0
    assert "mutual TLS" in (tmp_path / "run-learner.stderr").read_text()
