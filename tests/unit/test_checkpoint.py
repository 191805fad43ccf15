"""Checkpoints: a full round trip, ``last`` survives a kill at any point of a save, damage is refused in one line."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm, RolloutBatch
from pirlctl.policies.loading import TINY_XVLA_CONFIG, build_policy, load_policy_config
from pirlctl.runtime import checkpoint as ckpt
from pirlctl.runtime.checkpoint import CheckpointError, restore_checkpoint, save_checkpoint, verify_checkpoint

from ..conftest import make_xvla_batch

RUN_CONFIG = {"seed": 0, "pirl": {"noise_method": "flow_sde"}}


def _algorithm(policy_config, seed: int, **pirl) -> PiRLAlgorithm:
    torch.manual_seed(seed)
    algo = PiRLAlgorithm(build_policy(policy_config), PiRLConfig(**pirl))
    algo.make_optimizers_and_scheduler()
    return algo


def _ppo_iteration(algo: PiRLAlgorithm, policy_config) -> None:
    """One real PPO iteration, so that both optimizers hold state (exp_avg, exp_avg_sq, step)."""
    obs = make_xvla_batch(policy_config, 4)
    step = algo.act(obs)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    algo.update(iter([RolloutBatch(obs, step.chain, step.stochastic, step.log_prob, step.value, adv, adv + 1.0)]))


def _save(
    run: Path, algo: PiRLAlgorithm, iteration: int, env_steps: int = 10, config_hash: str = "h", keep: int = 0
) -> Path:
    return save_checkpoint(
        run,
        iteration,
        policy=algo.policy,
        algorithm=algo,
        run_config_json=RUN_CONFIG,
        config_hash=config_hash,
        counters={"env_steps": env_steps},
        keep=keep,
    )


def _leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-"))


def _refusal(path: Path, **kw) -> str:
    with pytest.raises(CheckpointError) as exc:
        verify_checkpoint(path, **kw)
    msg = str(exc.value)
    assert "\n" not in msg and "; " in msg, msg  # one line: the problem; the fix
    return msg


@pytest.fixture(scope="module")
def trained():
    """A tiny X-VLA PI-RL algorithm after one PPO iteration; shared, tests only save it or load its own saves."""
    policy_config = load_policy_config(TINY_XVLA_CONFIG)
    algo = _algorithm(policy_config, seed=0, ppo_epochs=1)
    _ppo_iteration(algo, policy_config)
    assert algo.iteration == 1 and all(opt.state for opt in algo.optimizers.values())
    return algo


@pytest.fixture
def saved(tmp_path, trained):
    """(run folder, algorithm) with checkpoint 1 written."""
    _save(tmp_path, trained, 1)
    return tmp_path, trained


# -- round trip ---------------------------------------------------------------------------------------------
def test_restore_brings_back_policy_algorithm_optimizers_rng_iteration_and_counters(
    tmp_path, trained, tiny_xvla_config
):
    _save(tmp_path, trained, trained.iteration)
    draw_after_save = torch.rand(4)  # the RNG state was saved just before this draw
    other = _algorithm(tiny_xvla_config, seed=1, ppo_epochs=1)
    assert not all(torch.equal(t, other.state_dict()[k]) for k, t in trained.state_dict().items())
    assert not all(torch.equal(t, other.policy.state_dict()[k]) for k, t in trained.policy.state_dict().items())

    info = verify_checkpoint(tmp_path, expected_config_hash="h")
    restore_checkpoint(info, policy=other.policy, algorithm=other)

    assert info.iteration == other.iteration == 1
    assert info.counters == {"env_steps": 10, "iteration": 1}
    for name, t in trained.policy.state_dict().items():
        assert torch.equal(t, other.policy.state_dict()[name]), name
    for name, t in trained.state_dict().items():
        assert torch.equal(t, other.state_dict()[name]), name
    for group in ("actor", "critic"):
        want, got = trained.optimizers[group].state_dict(), other.optimizers[group].state_dict()
        assert want["param_groups"] == got["param_groups"]
        assert want["state"].keys() == got["state"].keys() and want["state"]
        for idx, slots in want["state"].items():
            for slot, t in slots.items():
                assert torch.equal(t, got["state"][idx][slot]), (group, idx, slot)
    assert torch.equal(torch.rand(4), draw_after_save)
    # the optimizers still drive the restored parameters (identity kept by the in-place loads)
    actor_params = {id(p) for g in other.optimizers["actor"].param_groups for p in g["params"]}
    assert actor_params == {id(p) for p in other.trainable_policy_parameters().values()}


def test_manifest_lists_every_file_with_its_sha256_the_config_hash_and_versions(saved):
    run, _ = saved
    folder = run / "checkpoints" / "000001"
    assert os.readlink(run / "checkpoints" / "last") == "000001"  # relative: the run folder can move
    manifest = json.loads((folder / "manifest.json").read_text())
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    assert {
        "pretrained_model/model.safetensors",
        "pretrained_model/config.json",
        "algorithm/model.safetensors",
        "training_state/training_step.json",
        "training_state/rng_state.safetensors",
        "training_state/optimizers/actor/optimizer_state.safetensors",
        "training_state/optimizers/critic/optimizer_state.safetensors",
        "run_config.json",
    } <= on_disk
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest, rel
    assert manifest["config_hash"] == "h" and manifest["iteration"] == 1
    assert manifest["versions"] == {
        "pirlctl": importlib.metadata.version("pirlctl"),
        "lerobot": importlib.metadata.version("lerobot"),
        "torch": torch.__version__,
    }
    assert json.loads((folder / "run_config.json").read_text()) == RUN_CONFIG


def test_resolve_accepts_the_folder_its_last_link_and_the_run_folder(saved):
    run, _ = saved
    folder = (run / "checkpoints" / "000001").resolve()
    for path in (run, run / "checkpoints", run / "checkpoints" / "last", folder):
        assert ckpt.resolve_checkpoint(path) == folder
    assert "no checkpoint" in _refusal(run / "nowhere")


# -- crash safety -------------------------------------------------------------------------------------------
class SimulatedKillError(Exception):
    """Raised in place of a filesystem call: save_checkpoint has no cleanup path, so this is a kill at that call."""


def _count_and_kill_at(monkeypatch, kill_at: int | None) -> list[str]:
    """Wrap the filesystem steps of a save; raise SimulatedKillError at call number ``kill_at`` (1-based).

    fsync is counted but not performed: a killed process loses nothing that fsync would keep (the page cache
    survives it), and skipping it keeps the dozens of saves below fast.
    """
    calls: list[str] = []
    for owner, name in ((os, "replace"), (os, "symlink"), (os, "fsync"), (shutil, "rmtree")):
        real = getattr(owner, name)

        def step(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            if len(calls) == kill_at:
                raise SimulatedKillError(f"killed at {_name} #{kill_at}")
            return None if _name == "fsync" else _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, step)
    return calls


@pytest.mark.parametrize("resave", [False, True], ids=["next_iteration", "same_iteration_again"])
def test_last_points_at_a_complete_checkpoint_whatever_step_a_save_dies_at(tmp_path, trained, monkeypatch, resave):
    """Kill the save of iteration 2 at each of its filesystem steps in turn; ``last`` must always verify."""
    base = tmp_path / "probe"
    _save(base, trained, 1)
    if resave:
        _save(base, trained, 2, env_steps=20)
    with monkeypatch.context() as m:
        steps = _count_and_kill_at(m, None)
        _save(base, trained, 2, env_steps=30)
    assert {"replace", "symlink", "fsync"} <= set(steps)
    # every rename, link and removal; of a run of fsyncs (one per file) the first: the others leave the same state
    kill_points = [i for i, s in enumerate(steps, 1) if s != "fsync" or i == 1 or steps[i - 2] != "fsync"]
    assert len(kill_points) >= (8 if resave else 5)

    for kill_at in kill_points:
        run = tmp_path / f"kill{kill_at}"
        _save(run, trained, 1)
        if resave:
            _save(run, trained, 2, env_steps=20)
        with monkeypatch.context() as m, pytest.raises(SimulatedKillError):
            _count_and_kill_at(m, kill_at)
            _save(run, trained, 2, env_steps=30)
        info = verify_checkpoint(run)  # never dangling, never half-written
        if resave:
            assert info.iteration == 2 and info.counters["env_steps"] in (20, 30), kill_at
        else:
            assert (info.iteration, info.counters["env_steps"]) in ((1, 10), (2, 30)), kill_at

        _save(run, trained, 3, env_steps=40)  # the next save cleans what the killed one left
        assert _leftovers(run) == [], kill_at
        assert verify_checkpoint(run).iteration == 3
        # a complete copy of 2 that the kill left unnamed is renamed into place; every folder left verifies
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names in (["000001", "000002", "000003", "last"], ["000001", "000003", "last"]), kill_at
        assert "000002" in names or not (resave or info.iteration == 2), kill_at
        for name in names:
            assert verify_checkpoint(run / "checkpoints" / name).path.name == ("000003" if name == "last" else name)


def test_sigkill_mid_write_leaves_last_on_the_previous_checkpoint(saved):
    """A real process killed with SIGKILL while it writes checkpoint 2 (its policy file is on disk, the rest not)."""
    run, algo = saved
    ready = run / "child-is-writing"
    real_save = algo.save_pretrained

    def stall_mid_write(path):
        ready.write_text("policy written, algorithm next")
        time.sleep(60)
        real_save(path)

    pid = os.fork()
    if pid == 0:  # child: write checkpoint 2 and stall half way; never returns into pytest
        try:
            algo.save_pretrained = stall_mid_write
            _save(run, algo, 2)
        finally:
            os._exit(1)
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert ready.exists(), "the child never reached the middle of its save"
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

    (partial,) = _leftovers(run)
    assert partial.startswith(".tmp-000002-")
    assert (run / "checkpoints" / partial / "pretrained_model" / "model.safetensors").is_file()
    assert not (run / "checkpoints" / partial / "manifest.json").exists()
    info = verify_checkpoint(run)
    assert info.path.name == "000001" and info.iteration == 1

    _save(run, algo, 2)
    assert _leftovers(run) == []
    assert verify_checkpoint(run).iteration == 2


def test_a_leftover_that_last_points_at_is_kept_until_last_moves(saved, monkeypatch):
    """Killed between re-pointing ``last`` at the new copy of an iteration and moving it into place."""
    run, algo = saved
    real_replace = os.replace

    def die_moving_the_old_copy_away(src, dst):
        if Path(dst).name.startswith(".tmp-old-"):
            raise SimulatedKillError("killed while moving the old copy of 000001 away")
        real_replace(src, dst)

    with monkeypatch.context() as m, pytest.raises(SimulatedKillError):
        m.setattr(os, "replace", die_moving_the_old_copy_away)
        _save(run, algo, 1, env_steps=11)
    info = verify_checkpoint(run)
    assert info.path.name.startswith(".tmp-000001-") and info.counters["env_steps"] == 11
    restore_checkpoint(info, policy=algo.policy, algorithm=algo)  # resuming from it works

    _save(run, algo, 2)
    assert _leftovers(run) == []
    assert verify_checkpoint(run).iteration == 2
    # the interrupted re-save never completed: 000001 is the copy it was replacing
    assert verify_checkpoint(run / "checkpoints" / "000001").counters["env_steps"] == 10


# -- refusals -----------------------------------------------------------------------------------------------
def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # tensor data, not the safetensors header: the file still parses
    path.write_bytes(bytes(data))


def test_a_corrupted_file_is_refused_and_force_loads_it(saved, tiny_xvla_config):
    run, algo = saved
    folder = run / "checkpoints" / "000001"
    _flip_last_byte(folder / "pretrained_model" / "model.safetensors")
    msg = _refusal(run)
    assert "pretrained_model/model.safetensors does not match its sha256" in msg and "--force" in msg

    other = _algorithm(tiny_xvla_config, seed=1)
    restore_checkpoint(verify_checkpoint(run, force=True), policy=other.policy, algorithm=other)
    differ = [k for k, t in algo.policy.state_dict().items() if not torch.equal(t, other.policy.state_dict()[k])]
    assert len(differ) == 1  # every tensor restored; the flipped byte lands in exactly one


def test_a_missing_file_is_refused_even_with_force(saved):
    run, _ = saved
    folder = run / "checkpoints" / "000001"
    (folder / "training_state" / "optimizers" / "actor" / "optimizer_state.safetensors").unlink()
    for force in (False, True):
        msg = _refusal(run, force=force)
        assert "optimizer_state.safetensors is missing" in msg and "incomplete" in msg

    # deleted together with its manifest entry: still missing, because restore needs it
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]["algorithm/model.safetensors"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "algorithm" / "model.safetensors").unlink()
    assert "algorithm/model.safetensors is missing" in _refusal(run, force=True)


def _edit_manifest(folder: Path, edit) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("tamper", "needle"),
    [
        (lambda f: (f / "manifest.json").write_text('{"files": {"a"'), "unreadable manifest.json"),
        (lambda f: (f / "manifest.json").write_text("[1, 2]"), "malformed manifest.json"),
        (lambda f: _edit_manifest(f, lambda m: m.update(files=["run_config.json"])), "malformed manifest.json"),
        (lambda f: _edit_manifest(f, lambda m: m["files"].update({"../../x": "0" * 64})), "malformed manifest.json"),
        (lambda f: _edit_manifest(f, lambda m: m["files"].update({"/etc/hostname": "0" * 64})), "malformed"),
        (lambda f: _edit_manifest(f, lambda m: m.update(config_hash="forged")), "edited or corrupted"),
        (lambda f: _edit_manifest(f, lambda m: m["files"].pop("run_config.json")), "edited or corrupted"),
        (lambda f: (f / "extra.bin").write_bytes(b"x"), "extra.bin is not in manifest.json"),
        (lambda f: (f / "training_state" / "training_step.json").write_text("[]"), "training_step.json does not"),
    ],
    ids=["not_json", "not_an_object", "files_not_a_dict", "path_escape", "absolute_path", "edited_hash",
         "entry_removed", "unlisted_file", "counters_edited"],
)  # fmt: skip
def test_a_tampered_manifest_or_checkpoint_is_refused_in_one_line(saved, tamper, needle):
    run, _ = saved
    tamper(run / "checkpoints" / "000001")
    assert needle in _refusal(run)


@pytest.mark.parametrize("counters", ["[]", '{"iteration": Infinity}', '{"iteration": "x"}', "{"])
def test_unreadable_counters_are_refused_even_with_force(saved, counters):
    run, _ = saved
    (run / "checkpoints" / "000001" / "training_state" / "training_step.json").write_text(counters)
    assert "unreadable training_state/training_step.json" in _refusal(run, force=True)


def test_a_checkpoint_of_another_config_is_refused_unless_forced(saved, tiny_xvla_config):
    run, _ = saved
    msg = _refusal(run, expected_config_hash="another-config-hash")
    assert "another policy/algorithm config" in msg and "run_config.json" in msg and "--force" in msg
    assert verify_checkpoint(run, expected_config_hash="another-config-hash", force=True).iteration == 1

    # forced into an algorithm whose tensors differ (flow_noise adds a noise head): refused, policy untouched
    other = _algorithm(tiny_xvla_config, seed=1, noise_method="flow_noise")
    before = {k: v.clone() for k, v in other.policy.state_dict().items()}
    with pytest.raises(CheckpointError, match="algorithm tensors do not fit") as exc:
        restore_checkpoint(verify_checkpoint(run, force=True), policy=other.policy, algorithm=other)
    assert "\n" not in str(exc.value)
    assert all(torch.equal(before[k], v) for k, v in other.policy.state_dict().items())


# -- keep_checkpoints and the resume fallback ------------------------------------------------------------------
def _digests(run: Path) -> dict[str, str]:
    """sha256 of every file under the run's checkpoint folders (links left out): what must stay untouched."""
    root = run / "checkpoints"
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "last" not in p.relative_to(root).parts
    }


def _folders(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if not p.name.startswith(".") and p.name != "last")


def test_keep_checkpoints_keeps_the_newest_and_zero_keeps_all(tmp_path, trained):
    for i in range(1, 6):
        _save(tmp_path / "keep2", trained, i, keep=2)
        _save(tmp_path / "all", trained, i, keep=0)
    assert _folders(tmp_path / "keep2") == ["000004", "000005"] and not _leftovers(tmp_path / "keep2")
    assert _folders(tmp_path / "all") == [f"{i:06d}" for i in range(1, 6)]
    assert verify_checkpoint(tmp_path / "keep2").iteration == 5


def test_keep_checkpoints_never_deletes_the_checkpoint_last_points_at(tmp_path, trained):
    """Resumed from 2 while folders 4 and 5 (a lost, damaged tail) are newer: saving 3 with keep=1 keeps 3."""
    for i in (1, 2, 4, 5):
        _save(tmp_path, trained, i, env_steps=i)
    ckpt.point_last(tmp_path / "checkpoints" / "000002")
    _save(tmp_path, trained, 3, keep=1)
    assert "000003" in _folders(tmp_path) and verify_checkpoint(tmp_path).iteration == 3
    assert _folders(tmp_path) == ["000003", "000005"]


def test_a_prune_killed_mid_delete_is_cleared_by_the_next_save_not_restored(saved):
    run, algo = saved
    root = run / "checkpoints"
    _save(run, algo, 2)
    os.replace(root / "000001", root / ".tmp-prune-000001-123-abcd")  # renamed out of the way, not yet deleted
    _save(run, algo, 3)
    assert _folders(run) == ["000002", "000003"] and not _leftovers(run)


def test_resume_takes_last_when_it_verifies(tmp_path, trained):
    for i in (1, 2):
        _save(tmp_path, trained, i, env_steps=i)
    point = ckpt.find_resume_checkpoint(tmp_path, expected_config_hash="h")
    assert point.info.iteration == 2 and point.skipped == [] and point.note is None


def test_resume_falls_back_to_the_newest_checkpoint_that_verifies_and_says_why_changing_nothing(tmp_path, trained):
    for i in (1, 2, 3):
        _save(tmp_path, trained, i, env_steps=i)
    root = tmp_path / "checkpoints"
    _flip_last_byte(root / "000003" / "pretrained_model" / "model.safetensors")
    before = _digests(tmp_path)
    point = ckpt.find_resume_checkpoint(tmp_path, expected_config_hash="h")
    assert point.info.path == (root / "000002").resolve() and point.info.counters["env_steps"] == 2
    assert len(point.skipped) == 1 and point.skipped[0].startswith("last -> 000003: ")
    assert "sha256" in point.note and "resumed from 000002 (iteration 2)" in point.note and "\n" not in point.note
    assert _digests(tmp_path) == before and os.readlink(root / "last") == "000003"  # a choice, no write

    shutil.rmtree(root / "000002" / "algorithm")  # 2 incomplete as well: on to 1
    point = ckpt.find_resume_checkpoint(tmp_path, expected_config_hash="h")
    assert point.info.iteration == 1 and [s.split(":")[0] for s in point.skipped] == ["last -> 000003", "000002"]


def test_a_dangling_last_falls_back_too(tmp_path, trained):
    for i in (1, 2):
        _save(tmp_path, trained, i)
    shutil.rmtree(tmp_path / "checkpoints" / "000002")
    assert ckpt.find_resume_checkpoint(tmp_path).info.iteration == 1


def test_resume_stops_in_one_line_when_no_checkpoint_verifies(tmp_path, trained):
    with pytest.raises(CheckpointError, match="no checkpoint in") as exc:
        ckpt.find_resume_checkpoint(tmp_path)
    assert not ckpt.has_checkpoints(tmp_path)
    for i in (1, 2):
        _save(tmp_path, trained, i)
        _flip_last_byte(tmp_path / "checkpoints" / f"{i:06d}" / "algorithm" / "model.safetensors")
    assert ckpt.has_checkpoints(tmp_path)
    with pytest.raises(CheckpointError) as exc:
        ckpt.find_resume_checkpoint(tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and str(tmp_path / "checkpoints") in msg
    assert "--resume-from" in msg and "--force" in msg and "--fresh" in msg
    assert ckpt.find_resume_checkpoint(tmp_path, force=True).info.iteration == 2  # --force: last, damaged
