"""``checklist`` (alias ``doctor``): the "looks done but isn't" items of pitfalls-research.md, each run for real.

Every item runs the real code path on the tiny config and reports PASS/FAIL with its evidence:

- **recipe wired**: a pi_rl + xvla run config parses, and LeRobot's own ``make_algorithm`` builds a
  :class:`PiRLAlgorithm` (fails when pirlctl's factory registration is missing, ``lerobot_compat.uninstall()``).
- **learner branch works**: PPO iterations on on-policy batches sampled with ``act`` (chunk GAE through
  ``build_rollout_batch``), finite stats, parameters moved, a checkpoint saved and verified.
- **actor sync works**: weights v over LeRobot's gRPC ``LearnerService`` on loopback, an update, then v+1; the
  actor loads both and matches the learner tensor for tensor (sha256).
- **SAC unaffected**: LeRobot's SAC builds through the same factory and one update trains; a SAC
  ``TrainRLServerPipelineConfig`` still round-trips and validates.
- environment: Python, the LeRobot version range, the MuJoCo GL backend, a gym_hil frame that is not black (in a
  subprocess: only one image env may live per process), the configured learner port, py-spy.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import draccus
import torch

from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.envs.configs import TaskEnvConfig
from pirlctl.errors import one_line

# item names (tests and scripts match on these)
PYTHON = "python >= 3.12"
LEROBOT_VERSION = "lerobot version supported"
RECIPE_WIRED = "recipe wired"
LEARNER_BRANCH = "learner branch works"
ACTOR_SYNC = "actor sync works"
SAC_UNAFFECTED = "SAC unaffected"
MUJOCO_GL = "MuJoCo GL backend set"
ENV_RENDERS = "env renders"
PORT_FREE = "learner port free"
PY_SPY = "py-spy present"

GL_BACKENDS = ("osmesa", "egl", "glfw")
MIN_LEARNER_ITERATIONS = 2  # PPO iterations the learner item runs: at least one past the critic warm-up
BATCH_CHUNKS = 8  # chunk decisions per PPO batch in the learner / sync items
RENDER_TIMEOUT_S = 90.0
# The render probe: one env of the config's env.type built through the env interface, one reset, pixel stats of each
# image the policy would read, as JSON. os._exit skips MuJoCo's osmesa __del__ noise at interpreter shutdown.
RENDER_PROBE = """
import json, os, sys
import draccus
import pirlctl.config.run_config  # registers every env type
from pirlctl.envs.configs import TaskEnvConfig
env = draccus.decode(TaskEnvConfig, json.loads(sys.argv[1])).build_task_env()
obs = env.policy_observation(env.reset(0))
stats = {}
for key, img in obs.items():
    if key.startswith("observation.image"):
        px = img.permute(1, 2, 0).float() * 255
        cam = key.removeprefix("observation.images.").removeprefix("observation.")
        stats[cam] = {"shape": list(px.shape), "mean": float(px.mean()), "max": int(px.max())}
sys.stdout.write(json.dumps(stats) + "\\n")
sys.stdout.flush()
os._exit(0)
"""


@dataclass
class CheckItem:
    name: str
    passed: bool
    evidence: str  # what was run and what it showed; on failure, the problem and the fix
    seconds: float


@dataclass
class ChecklistReport:
    config: str
    passed: bool
    seconds: float
    items: list[CheckItem] = field(default_factory=list)

    def item(self, name: str) -> CheckItem:
        return next(i for i in self.items if i.name == name)


class ItemFailedError(Exception):
    """An item's check did not hold; the message is its evidence."""


def _run_item(name: str, fn: Callable[[], str]) -> CheckItem:
    t0 = time.perf_counter()
    try:
        evidence, passed = fn(), True
    except ItemFailedError as err:
        evidence, passed = str(err), False
    except Exception as err:  # noqa: BLE001 - any error in an item is that item's FAIL, the others still run
        evidence, passed = f"{type(err).__name__}: {one_line(err)}", False
    return CheckItem(name, passed, evidence, time.perf_counter() - t0)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a logger's warnings for the duration of the block."""
    log = logging.getLogger(logger_name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ItemFailedError(message)


# ---------------------------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------------------------


def check_python() -> str:
    v = sys.version_info
    _require(v >= (3, 12), f"Python {v.major}.{v.minor}; pirlctl needs >= 3.12 (recreate the venv with python3.12)")
    return f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})"


def check_lerobot() -> str:
    from pirlctl.lerobot_compat import SUPPORTED_LEROBOT, check_lerobot_version

    (lo_major, lo_minor), (hi_major, hi_minor) = SUPPORTED_LEROBOT
    v = check_lerobot_version()
    return f"lerobot {v} in [{lo_major}.{lo_minor}, {hi_major}.{hi_minor})"


def check_mujoco_gl() -> str:
    gl = os.environ.get("MUJOCO_GL", "")
    _require(
        gl in GL_BACKENDS,
        f"MUJOCO_GL={gl or '(unset)'}; export MUJOCO_GL=osmesa (CPU) or egl (GPU) before MuJoCo loads",
    )
    return f"MUJOCO_GL={gl}, PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM', '(unset)')}"


def start_render_probe(cfg: PiRLRunConfig) -> subprocess.Popen[str]:
    """Start the render probe of the config's env type in a subprocess (it runs while the other items run)."""
    env = dict(os.environ)
    env.setdefault("MUJOCO_GL", "osmesa")
    env.setdefault("PYOPENGL_PLATFORM", env["MUJOCO_GL"])
    return subprocess.Popen(
        [sys.executable, "-c", RENDER_PROBE, json.dumps(draccus.encode(cfg.env, TaskEnvConfig))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish_render_probe(proc: subprocess.Popen[str], timeout: float = RENDER_TIMEOUT_S) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise ItemFailedError(f"no frame within {timeout:.0f}s; check MUJOCO_GL and the OSMesa/EGL libraries") from None
    lines = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
    if proc.returncode != 0:
        raise ItemFailedError(
            f"env process exited {proc.returncode}: {lines[-1] if lines else 'no output'}; "
            "install the env type's package and an OpenGL backend (MUJOCO_GL=osmesa needs libosmesa6)"
        )
    try:
        stats = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ItemFailedError(f"env process printed no frame stats: {out[-200:]!r}") from None
    dark = [cam for cam, s in stats.items() if s["max"] == 0 or s["mean"] < 1.0]
    _require(bool(stats), "the env returned no camera images; check env.cameras and image_obs")
    _require(not dark, f"black frame from camera(s) {dark}; the GL backend renders nothing (try MUJOCO_GL=osmesa)")
    shape = "×".join(str(d) for d in next(iter(stats.values()))["shape"])
    means = ", ".join(f"{cam} mean {s['mean']:.0f}/255" for cam, s in stats.items())
    return f"reset rendered {shape}: {means}"


def check_port(host: str, port: int) -> str:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free for the learner
        try:
            s.bind((host, port))
        except OSError as err:
            raise ItemFailedError(
                f"{host}:{port} is in use ({err.strerror}); stop the other learner or set --runtime.learner_port"
            ) from None
    return f"{host}:{port} can be bound"


def check_py_spy() -> str:
    found = shutil.which("py-spy")
    beside = Path(sys.executable).with_name("py-spy")
    if found is None and beside.is_file():
        found = str(beside)
    if found is None and importlib.util.find_spec("py_spy") is not None:
        found = "python module py_spy"
    _require(found is not None, "py-spy not found; pip install py-spy (actor profiling uses it)")
    return f"py-spy at {found}"


# ---------------------------------------------------------------------------------------------------------------
# The recipe items
# ---------------------------------------------------------------------------------------------------------------


def check_recipe_wired(cfg: PiRLRunConfig) -> str:
    from lerobot.rl.algorithms.factory import make_algorithm

    from pirlctl import lerobot_compat
    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm
    from pirlctl.policies.loading import build_policy
    from pirlctl.runtime.build import run_processors

    policy_type = getattr(cfg.policy, "type", None)
    algo_type = getattr(cfg.algorithm, "type", None)
    _require(algo_type == "pi_rl", f"algorithm.type={algo_type!r}; set algorithm.type to pi_rl")
    torch.manual_seed(cfg.seed)
    policy = build_policy(cfg.policy, cfg.policy_path)
    processors = run_processors(cfg)  # as runtime.build.build_algorithm: refused in one line when they do not fit
    try:
        algo = make_algorithm(cfg.pirl, policy)
    except ValueError as err:
        raise ItemFailedError(
            f"LeRobot's make_algorithm refused pi_rl ({one_line(err)}); the factory registration is "
            f"{'present' if lerobot_compat.is_installed() else 'missing'}: import pirlctl.algorithms.pi_rl "
            "(lerobot_compat.install())"
        ) from None
    _require(
        isinstance(algo, PiRLAlgorithm),
        f"make_algorithm built {type(algo).__name__}, not PiRLAlgorithm; check lerobot_compat.install()",
    )
    return (
        f"algorithm.type=pi_rl, policy.type={policy_type}; LeRobot make_algorithm → {type(algo).__name__} "
        f"({len(algo.trainable_policy_parameters())} trainable policy tensors); processors "
        f"{len(processors.preprocessor.steps)} + {len(processors.postprocessor.steps)} steps"
    )


def _on_policy_batch(algo, cfg: PiRLRunConfig, obs: dict[str, torch.Tensor], seed: int):
    """Chunks sampled with ``act`` under the current weights, turned into a PPO batch by chunk-level GAE."""
    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition, build_rollout_batch

    g = torch.Generator(device=algo.device).manual_seed(seed)
    step = algo.act({k: v.to(algo.device) for k, v in obs.items()}, generator=g)
    rewards = torch.rand(len(step.value), generator=torch.Generator().manual_seed(seed))
    n = len(step.value)
    stream = [
        ChunkTransition(
            observation={k: v[i] for k, v in obs.items()},
            chain=step.chain[i].cpu(),
            stochastic=step.stochastic[i].cpu(),
            log_prob=step.log_prob[i].cpu(),
            value=float(step.value[i]),
            reward=float(rewards[i]),
            terminated=i == n - 1,
            truncated=False,
            bootstrap_value=0.0,
            policy_version=algo.iteration,
        )
        for i in range(n)
    ]
    return build_rollout_batch([stream], gamma=cfg.pirl.gamma, gae_lambda=cfg.pirl.gae_lambda)


def check_learner_branch(cfg: PiRLRunConfig) -> str:
    from pirlctl.config.run_config import config_hash, encode_run_config
    from pirlctl.diagnostics.sync_checks import policy_observations
    from pirlctl.runtime.build import build_algorithm
    from pirlctl.runtime.checkpoint import save_checkpoint, verify_checkpoint

    algo = build_algorithm(cfg, cfg.runtime.device)
    algo.make_optimizers_and_scheduler()
    policy_before = {k: v.detach().clone() for k, v in algo.trainable_policy_parameters().items()}
    value_before = {k: v.detach().clone() for k, v in algo.value_head.state_dict().items()}
    obs = policy_observations(cfg, algo, BATCH_CHUNKS, seed=cfg.seed)
    iterations = max(MIN_LEARNER_ITERATIONS, cfg.pirl.critic_warmup_iters + 1)  # so the policy itself trains
    last: dict[str, float] = {}
    for it in range(iterations):
        batch = _on_policy_batch(algo, cfg, obs, seed=cfg.seed + it)
        stats = algo.update(iter([batch]))
        last = {**stats.losses, **{f"grad_{k}": v for k, v in stats.grad_norms.items()}, **stats.extra}
        bad = sorted(k for k, v in last.items() if not math.isfinite(float(v)))
        _require(not bad, f"iteration {it + 1}: non-finite {bad}; lower the learning rates or check the batch")
    _require(algo.iteration == iterations, f"iteration counter {algo.iteration} != {iterations}")
    policy_moved = sum(
        not torch.equal(p.detach(), policy_before[k]) for k, p in algo.trainable_policy_parameters().items()
    )
    value_moved = sum(not torch.equal(v, value_before[k]) for k, v in algo.value_head.state_dict().items())
    _require(value_moved > 0, "the value head did not change over the PPO iterations; check value_lr")
    _require(policy_moved > 0, "no trainable policy tensor changed after the critic warm-up; check actor_lr")
    with tempfile.TemporaryDirectory(prefix="pirlctl-checklist-") as tmp:
        path = save_checkpoint(
            tmp,
            algo.iteration,
            policy=algo.policy,
            algorithm=algo,
            processors=algo.processors,
            run_config_json=encode_run_config(cfg),
            config_hash=config_hash(cfg),
            counters={"env_steps": 0, "policy_version": algo.iteration},
        )
        info = verify_checkpoint(tmp, expected_config_hash=config_hash(cfg))
        _require(info.iteration == algo.iteration, f"checkpoint says iteration {info.iteration}")
        n_files = sum(1 for p in path.rglob("*") if p.is_file())
    return (
        f"{iterations} PPO iterations on {BATCH_CHUNKS}-chunk on-policy batches of synthetic observations, stats "
        f"finite (policy_loss {last['policy_loss']:.3g}, value_loss {last['value_loss']:.3g}, "
        f"approx_kl {last['approx_kl']:.2g}); "
        f"{policy_moved} policy + {value_moved} value-head tensors moved; checkpoint {path.name} "
        f"({n_files} files) verified"
    )


def check_actor_sync(cfg: PiRLRunConfig) -> str:
    from pirlctl.diagnostics.sync_checks import policy_observations, sample_batch
    from pirlctl.diagnostics.sync_live import (
        InProcessLearner,
        ParameterReceiver,
        actor_load,
        compare_hashes,
        publish_and_receive,
        weight_hashes,
    )
    from pirlctl.runtime.build import build_algorithm

    learner = build_algorithm(cfg, cfg.runtime.device)
    actor = build_algorithm(cfg, cfg.runtime.actor_device)
    fingerprint = learner.frozen_fingerprint()
    served = InProcessLearner()
    receiver = ParameterReceiver(served.host, served.port)
    try:
        v = learner.iteration
        first = publish_and_receive(served, receiver, v, learner.get_weights(), fingerprint)
        _require(first.message.version == v, f"received v{first.message.version}, published v{v}")
        actor_load(actor, first.message)
        at_v = weight_hashes(actor.get_weights())
        batch = sample_batch(actor, policy_observations(cfg, actor, BATCH_CHUNKS, seed=cfg.seed), seed=cfg.seed)
        learner.update(iter([batch]))
        second = publish_and_receive(served, receiver, learner.iteration, learner.get_weights(), fingerprint)
        _require(
            second.message.version == v + 1,
            f"after an update the actor received v{second.message.version}, expected v{v + 1}",
        )
        actor_load(actor, second.message)
    finally:
        receiver.close()
        served.close()
    compared, mismatches = compare_hashes(learner.get_weights(), actor.get_weights())
    if mismatches:
        raise ItemFailedError(
            f"v{v + 1}: {len(mismatches)} tensor(s) differ from the learner after loading, first {mismatches[0].key}; "
            "run pirlctl verify-sync for the per-key report"
        )
    changed = sum(at_v[k] != h for k, h in weight_hashes(actor.get_weights()).items())
    _require(changed > 0, f"the actor's weights did not change from v{v} to v{v + 1}")
    return (
        f"v{v} → v{v + 1} over gRPC {served.host}:{served.port}: actor loaded both, {compared}/{compared} tensors "
        f"match the learner (sha256), {changed} changed by the update; {second.bytes / 1e6:.2f} MB in "
        f"{second.seconds * 1e3:.0f} ms"
    )


def check_sac() -> str:
    import draccus
    from lerobot.configs.default import DatasetConfig
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
    from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy
    from lerobot.rl.algorithms.factory import make_algorithm
    from lerobot.rl.algorithms.sac import SACAlgorithm, SACAlgorithmConfig
    from lerobot.rl.train_rl import TrainRLServerPipelineConfig

    torch.manual_seed(0)
    policy_cfg = GaussianActorConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (4,))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (2,))},
        dataset_stats=None,
        state_encoder_hidden_dim=16,
        latent_dim=16,
        push_to_hub=False,
    )
    algo = make_algorithm(SACAlgorithmConfig.from_policy_config(policy_cfg), GaussianActorPolicy(policy_cfg))
    _require(type(algo) is SACAlgorithm, f"make_algorithm built {type(algo).__name__} for sac, not SACAlgorithm")
    algo.make_optimizers_and_scheduler()
    B = 8

    def batches():
        while True:
            yield {
                "state": {"observation.state": torch.randn(B, 4)},
                "next_state": {"observation.state": torch.randn(B, 4)},
                "action": torch.rand(B, 2) * 2 - 1,
                "reward": torch.randn(B),
                "done": torch.zeros(B),
            }

    before = [p.detach().clone() for p in algo.critic_ensemble.parameters()]
    stats = algo.update(batches())
    loss = float(stats.losses["loss_critic"])
    _require(math.isfinite(loss), f"SAC critic loss {loss}; LeRobot's SAC update is broken")
    moved = sum(not torch.equal(a, b) for a, b in zip(before, algo.critic_ensemble.parameters(), strict=True))
    _require(moved > 0, "SAC's update did not change the critics")

    # DatasetConfig resolves its video backend and logs a page about torchcodec/FFmpeg when torchcodec cannot load
    # (upstream's fallback to pyav): not this item's business.
    with _quiet("lerobot.utils.import_utils"), tempfile.TemporaryDirectory(prefix="pirlctl-checklist-sac-") as tmp:
        run_cfg = TrainRLServerPipelineConfig(
            policy=policy_cfg,
            dataset=DatasetConfig(repo_id="user/demo"),
            algorithm=SACAlgorithmConfig(),
            output_dir=Path(tmp) / "out",
        )
        path = Path(tmp) / "sac.json"
        path.write_text(json.dumps(draccus.encode(run_cfg)))
        with draccus.config_type("json"):
            parsed = draccus.parse(TrainRLServerPipelineConfig, str(path), args=[])
        parsed.validate()
    _require(
        getattr(parsed.algorithm, "type", None) == "sac",
        f"a SAC run config parsed as algorithm.type={getattr(parsed.algorithm, 'type', None)!r}",
    )
    return (
        f"make_algorithm(sac) → SACAlgorithm, one update (critic loss {loss:.3g}, {moved} critic tensors moved); "
        "a SAC TrainRLServerPipelineConfig round-trips and validates"
    )


# ---------------------------------------------------------------------------------------------------------------
# The checklist
# ---------------------------------------------------------------------------------------------------------------


def run_checklist(cfg: PiRLRunConfig, *, config_path: str = "") -> ChecklistReport:
    """Run every item (each one's failure is its own row; the others still run)."""
    started = time.perf_counter()
    probe: subprocess.Popen[str] | None = None
    probe_error = ""
    try:
        probe = start_render_probe(cfg)  # renders in parallel with the in-process items
    except OSError as err:
        probe_error = f"cannot start the env process ({err.strerror})"

    def renders() -> str:
        _require(probe is not None, probe_error)
        assert probe is not None
        return finish_render_probe(probe)

    items = [
        _run_item(PYTHON, check_python),
        _run_item(LEROBOT_VERSION, check_lerobot),
        _run_item(RECIPE_WIRED, lambda: check_recipe_wired(cfg)),
        _run_item(LEARNER_BRANCH, lambda: check_learner_branch(cfg)),
        _run_item(ACTOR_SYNC, lambda: check_actor_sync(cfg)),
        _run_item(SAC_UNAFFECTED, check_sac),
        _run_item(MUJOCO_GL, check_mujoco_gl),
        _run_item(ENV_RENDERS, renders),
        _run_item(PORT_FREE, lambda: check_port(cfg.runtime.learner_host, cfg.runtime.learner_port)),
        _run_item(PY_SPY, check_py_spy),
    ]
    return ChecklistReport(
        config=config_path,
        passed=all(i.passed for i in items),
        seconds=time.perf_counter() - started,
        items=items,
    )
