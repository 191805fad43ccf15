"""verify-sync: a healthy tiny config passes; planted faults in the pushed weights or the re-score fail, naming the
key."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from pirlctl.cli import verify_sync as verify_sync_cmd
from pirlctl.config.run_config import load_run_config
from pirlctl.diagnostics.sync_checks import LOG_PROB_TOLERANCE
from pirlctl.diagnostics.sync_live import compare_hashes
from pirlctl.diagnostics.verify_sync import verify_sync
from pirlctl.policies.loading import CONFIGS_DIR

from ..integration.procs import free_port

TINY = CONFIGS_DIR / "pick_cube_tiny.json"
KEY = "model.transformer.norm.weight"  # a trainable (pushed) X-VLA action-expert tensor


@pytest.fixture(scope="module")
def cfg():
    return load_run_config(TINY)


@pytest.fixture
def cli():
    app = typer.Typer()
    verify_sync_cmd.register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer from collapsing the app into the single command
        pass

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["verify-sync", *args])


def test_healthy_tiny_config_passes_static_live_and_numeric(cli):
    result = cli("--config_path", str(TINY), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    static, live, numeric = report["static"], report["live"], report["numeric"]
    assert static["problems"] == [] and static["keys_pushed"] == static["keys_expected"] > 0
    assert static["fingerprint_match"] and static["learner_fingerprint"] == static["actor_fingerprint"]
    # the real gRPC path: the actor holds exactly the learner's tensors after loading
    assert live["source"].startswith("in-process learner 127.0.0.1:") and live["version"] == 0
    assert live["tensors_compared"] == static["keys_pushed"] and live["mismatches"] == []
    assert live["bytes"] > 100_000 and live["seconds"] > 0 and live["mb_per_s"] > 0
    # on-policy data re-scored by the learner: ratio exactly 1
    assert numeric["max_abs_delta_log_prob"] < LOG_PROB_TOLERANCE
    assert numeric["clipfrac"] == 0.0 and numeric["ratio_min"] == pytest.approx(1.0, abs=1e-5)
    assert numeric["chunks"] == 8 and numeric["perturbed"] is None


def test_rich_output_lists_each_check_with_its_verdict(cli):
    result = cli("--config_path", str(TINY))
    assert result.exit_code == 0, result.output
    for word in ("static", "live", "numeric", "PASS", "MB/s", "max |Δ log-prob|"):
        assert word in result.stdout


def _drop(w):
    del w["policy"][KEY]
    return w


def _reshape(w):
    w["policy"][KEY] = w["policy"][KEY][:-1]
    return w


def _retype(w):
    w["policy"][KEY] = w["policy"][KEY].double()
    return w


def _to_meta(w):
    w["policy"][KEY] = w["policy"][KEY].to("meta")
    return w


@pytest.mark.parametrize(
    ("tamper", "problem", "load_error"),
    [
        (_drop, "missing", f"missing key '{KEY}'"),
        (_reshape, "shape", f"policy.{KEY}: shape (63,) != expected (64,)"),
        (_retype, "dtype", f"policy.{KEY}: dtype torch.float64 != expected torch.float32"),
        (_to_meta, "device", f"policy.{KEY} is not a dense tensor with data (meta)"),
    ],
    ids=["dropped-key", "wrong-shape", "wrong-dtype", "wrong-device"],
)
def test_a_faulty_push_fails_static_and_live_naming_the_key(cfg, tamper, problem, load_error):
    report = verify_sync(cfg, tamper=tamper)
    assert not report.passed
    assert not report.static.passed and report.static.fingerprint_match
    assert [(p.key, p.problem) for p in report.static.problems] == [(f"policy.{KEY}", problem)]
    # the actor's own load_weights refused it after the real gRPC round trip (a meta tensor: the encoder did)
    assert not report.live.passed and report.live.load_error is not None
    if load_error is not None:
        assert load_error in report.live.load_error
    assert not report.numeric.passed and report.numeric.skipped


def test_rich_report_of_a_faulty_push_has_the_per_key_table(cfg, capsys):
    from pirlctl.reporting.diagnostics import render_verify_sync

    render_verify_sync(verify_sync(cfg, tamper=_reshape))
    out = capsys.readouterr().out
    assert "FAIL" in out and "Per-key problems (1)" in out
    assert KEY in out and "shape" in out and "(63,) float32 cpu" in out


def test_changed_values_load_but_fail_the_hash_and_numeric_checks(cfg):
    def shift(w):
        w["policy"][KEY] = w["policy"][KEY] + 0.01
        return w

    report = verify_sync(cfg, tamper=shift)
    assert report.static.passed  # same keys, shapes, dtypes: the contract alone cannot see it
    assert report.live.load_error is None and not report.live.passed
    assert [m.key for m in report.live.mismatches] == [f"policy.{KEY}"]
    assert not report.numeric.passed and report.numeric.max_abs_delta_log_prob > LOG_PROB_TOLERANCE
    assert not report.passed


def test_a_perturbed_learner_fails_the_numeric_check_only(cfg):
    report = verify_sync(cfg, perturb_learner=1e-3)
    assert report.static.passed and report.live.passed
    num = report.numeric
    assert num.perturbed is not None and num.perturbed.startswith("policy.")
    assert not num.passed and num.max_abs_delta_log_prob > LOG_PROB_TOLERANCE
    assert num.ratio_max is not None and num.ratio_max > 1.0
    assert not report.passed


def test_tamper_cannot_reach_the_learners_parameters(cfg):
    def zero_in_place(w):
        w["policy"][KEY].zero_()
        return w

    report = verify_sync(cfg, tamper=zero_in_place)
    # the learner kept its weights: the actor got zeros, which the hash check (against the learner) catches
    assert [m.key for m in report.live.mismatches] == [f"policy.{KEY}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learner", "nowhere"], "is not HOST:PORT"),
        (["--learner", "127.0.0.1:99999"], "is not HOST:PORT"),
        (["--config_path", "missing.json"], "not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli, args, message):
    full = ["--config_path", str(TINY), *args] if args[0] == "--learner" else args
    result = cli(*full)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_learner_exits_2_naming_the_fix(cli):
    result = cli("--config_path", str(TINY), "--learner", f"127.0.0.1:{free_port()}")
    assert result.exit_code == 2, result.output
    assert "check --learner" in result.stderr or "pirlctl learner" in result.stderr


def test_compare_hashes_reports_a_key_present_on_one_side_only():
    a = {"policy": {"w": torch.ones(2)}}
    b = {"policy": {"w": torch.ones(2), "extra": torch.zeros(1)}}
    n, mismatches = compare_hashes(a, b)
    assert n == 1 and [m.key for m in mismatches] == ["policy.extra"]


def test_failure_evidence_names_the_limit_not_a_comparison_that_holds(capsys):
    from pirlctl.diagnostics.sync_checks import NumericCheck, StaticCheck
    from pirlctl.diagnostics.sync_live import LiveCheck
    from pirlctl.diagnostics.verify_sync import VerifySyncReport
    from pirlctl.reporting.diagnostics import numeric_evidence, render_verify_sync

    # the false FAIL of issue 17, as the report shows it
    num = NumericCheck(False, 8, 21.9, LOG_PROB_TOLERANCE, 0.2, 9.0, 0.85, 3.1, 0.5, 0.2)
    text = numeric_evidence(num)
    assert "max |Δ log-prob| 21.9 (limit 1e-05)" in text and "clipfrac 0.85 (limit 0)" in text
    assert "(<" not in text and "(==" not in text
    fp = "ab" * 32
    report = VerifySyncReport(
        config="run_config.json",
        passed=False,
        static=StaticCheck(True, 44, 44, [], fp, fp, True),
        live=LiveCheck(True, "learner 127.0.0.1:50061", 23, 2_000_000, 0.01, 200.0, 0.002, None, 44),
        numeric=num,
    )
    render_verify_sync(report)
    out = capsys.readouterr().out
    assert "FAIL" in out and "(limit 1e-05)" in out and "(<" not in out


def test_the_actors_load_takes_the_learners_version_and_refuses_another_base():
    from pirlctl.runtime.actor import load_parameters
    from pirlctl.runtime.wire import ParametersMessage, WireError

    class Algo:
        optimization_step = 0
        loaded = None

        def load_weights(self, weights):
            self.loaded = weights

    algo = Algo()
    weights = {"policy": {"w": torch.ones(2)}}
    load_parameters(algo, ParametersMessage(23, False, weights, "fp"), "fp")
    # the version is the learner's PPO iteration: the noise schedule then agrees with the learner's re-score
    assert algo.optimization_step == 23 and algo.loaded is weights
    other = Algo()
    with pytest.raises(WireError, match="frozen policy weights differ"):
        load_parameters(other, ParametersMessage(3, False, weights, "another base"), "fp")
    assert other.loaded is None and other.optimization_step == 0


def test_the_actors_receive_path_decodes_pooled_pushes_and_hands_back_a_bad_ones_buffer():
    from pirlctl.runtime.actor import receive_pushes
    from pirlctl.runtime.transport import BufferPool
    from pirlctl.runtime.wire import WireError, encode_parameters

    good = bytearray(encode_parameters(5, {"policy": {"w": torch.arange(3.0)}}, base_fingerprint="fp"))
    bad = bytearray(b"not a parameters message")

    class Client:
        def stream_parameters_into(self, pool):
            assert isinstance(pool, BufferPool)
            yield memoryview(good)
            yield memoryview(bad)

    pool = BufferPool()
    (msg, buffer), (err, none) = list(receive_pushes(Client(), pool))
    assert msg.version == 5 and msg.base_fingerprint == "fp" and buffer is good
    assert torch.equal(msg.weights["policy"]["w"], torch.arange(3.0))
    assert isinstance(err, WireError) and none is None
    assert pool.take() is bad  # the undecodable push's buffer went back to the pool
