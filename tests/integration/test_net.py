"""The runtime's network edges as a new user meets them, with real processes: a held port, no learner at all, and
a client that speaks only LeRobot 0.6.1's transport."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import grpc
import pytest
import torch

from pirlctl.runtime.transport import LearnerClient
from pirlctl.runtime.wire import decode_parameters

from .procs import ROOT, env, free_port, report, spawn

pytestmark = pytest.mark.integration

# A LeRobot client: its stub, its chunk receiver, its state-dict decoder, and no pirlctl module at all.
LEROBOT_CLIENT = """
import sys, threading, grpc, torch
from lerobot.transport import services_pb2, services_pb2_grpc
from lerobot.transport.utils import bytes_to_state_dict, grpc_channel_options, receive_bytes_in_chunks

address, out = sys.argv[1], sys.argv[2]
channel = grpc.insecure_channel(address, options=grpc_channel_options())
stream = services_pb2_grpc.LearnerServiceStub(channel).StreamParameters(
    services_pb2.Empty(), wait_for_ready=True, timeout=120
)
weights = bytes_to_state_dict(receive_bytes_in_chunks(stream, None, threading.Event()))
channel.close()
torch.save(weights, out)
assert not [m for m in sys.modules if m.split(".")[0] == "pirlctl"], "the client imported pirlctl"
"""


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def learner(tmp_path_factory):
    """One real learner, serving v0 and waiting for actors that never come."""
    out, port = tmp_path_factory.mktemp("net") / "run", free_port()
    proc = spawn("learner", out, port)
    client = LearnerClient("127.0.0.1", port)
    deadline = time.monotonic() + 120
    while True:
        try:
            client.ready(timeout=2)
            break
        except grpc.RpcError:
            assert proc.poll() is None and time.monotonic() < deadline, "the learner did not come up"
            time.sleep(0.5)
    yield port, client
    client.close()
    proc.send_signal(signal.SIGTERM)
    assert report(proc, timeout=60)["stopped_by"] == "signal"


def test_a_second_learner_on_a_held_port_exits_at_once_with_one_line_and_writes_nothing(learner, tmp_path):
    port, client = learner
    out = tmp_path / "second"
    second = spawn("learner", out, port)
    stdout, _ = second.communicate(timeout=180)  # "at once": before the model is built; imports alone take ~10 s
    stderr = (tmp_path / "second-learner.stderr").read_text()
    assert second.returncode != 0 and stdout == ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr  # no gRPC core log line, no traceback
    assert lines[0].startswith("error:") and f"127.0.0.1:{port}" in lines[0]
    assert "--port" in lines[0] and "runtime.learner_port" in lines[0]
    assert not out.exists()  # bound before the run folder (and the model): no run_config.json, log or metrics
    client.ready(timeout=5)  # the first learner still serves


def test_a_lerobot_client_gets_the_learners_weights_as_a_torch_save_state_dict(learner, tmp_path):
    port, client = learner
    saved = tmp_path / "weights.pt"
    subprocess.run(
        [sys.executable, "-c", LEROBOT_CLIENT, f"127.0.0.1:{port}", str(saved)],
        check=True,
        timeout=180,
        env=env(),
        cwd=ROOT,
    )
    got = torch.load(saved, weights_only=True)
    pushed = decode_parameters(next(iter(client.stream_parameters()))).weights  # what our actor receives
    assert pushed and got.keys() == pushed.keys()
    for group, sd in pushed.items():
        assert sd and got[group].keys() == sd.keys()
        for name, t in sd.items():
            assert torch.equal(got[group][name], t), (group, name)


def test_an_actor_with_no_learner_exits_after_connect_timeout_with_one_line_naming_host_and_port(tmp_path):
    out, port = tmp_path / "run", free_port()
    actor = spawn("actor", out, port, "--runtime.connect_timeout_s=3")
    stdout, _ = actor.communicate(timeout=180)
    stderr = (tmp_path / "run-actor0.stderr").read_text()
    assert actor.returncode != 0 and stdout == ""
    errors = _error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "pirlctl learner" in errors[0] and f"127.0.0.1:{port}" in errors[0]
    assert "connect_timeout_s=3" in errors[0]
    assert "Traceback" not in stderr
    log = (out / "actor0.log").read_text()
    assert "waiting for the learner" in log  # it did wait (with backoff) before giving up


def test_connect_timeout_must_be_positive():
    from pirlctl.config.run_config import RunConfigError, load_run_config

    from .procs import TINY_RUN

    for bad in ("0", "-1", "inf"):
        with pytest.raises(RunConfigError, match="connect_timeout_s"):
            load_run_config(TINY_RUN, [f"--runtime.connect_timeout_s={bad}"])
    assert load_run_config(TINY_RUN).runtime.connect_timeout_s <= 120
