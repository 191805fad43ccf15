"""The PI-RL run config: draccus JSON in LeRobot's style (``--config_path`` plus dotted overrides).

``algorithm.type = "pi_rl"`` selects the recipe; ``policy.type`` stays what it is (``xvla``). Runtime settings
(learner address, actors, rollout length, budget, push policy, output dir, device) live here, in ``runtime``, and
never on the policy config — LeRobot 0.6.1's SAC actor/learner read them from the policy, which X-VLA's config
does not have. PI-RL hyperparameters live only in ``algorithm`` (:class:`PiRLConfig`).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import draccus
from lerobot.configs.default import WandBConfig
from lerobot.configs.policies import PreTrainedConfig
from lerobot.rl.algorithms.configs import RLAlgorithmConfig

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.config.field_errors import check_settings, draccus_errors
from pirlctl.configs import ConfigFileError, is_composed, read_config_dict, resolve_config_path
from pirlctl.envs.base import EnvSetupError
from pirlctl.envs.configs import TaskEnvConfig
from pirlctl.envs.pick_cube_config import (  # noqa: F401  (re-exported: pick-cube's constants, as before)
    AGENT_STATE_DIM,
    CUBE_OFFSET_DIM,
    PRIVILEGED_STATE_DIM,
    RENDER_GEOM_GROUPS,
    PickCubeEnv,
    policy_state_dim,
)
from pirlctl.errors import PirlError


class RunConfigError(PirlError, ValueError):
    """The run config is invalid; the message names the field and the fix."""


# The run config's `env` is a LeRobot EnvConfig chosen by `env.type` (pirlctl.envs.configs); pick-cube's settings and
# constants live in pirlctl.envs.pick_cube_config. `EnvSettings` is pick-cube's config, under its former name.
EnvSettings = PickCubeEnv


@dataclass
class RuntimeSettings:
    """Where and how long the actor/learner pair runs."""

    # Learner address. 127.0.0.1 by default: any other bind address needs --allow-remote and a token or TLS.
    learner_host: str = "127.0.0.1"
    # Learner gRPC port.
    learner_port: int = 50061
    # Number of actors that contribute to each PPO batch.
    num_actors: int = 1
    # Chunks (policy calls) each actor collects per rollout segment with one policy version.
    rollout_chunks: int = 32
    # Envs each actor steps side by side, one batched policy call per chunk for all of them; each env sends its own
    # stream of rollout_chunks chunks (GAE per env), so a PPO batch is num_actors × envs_per_actor × rollout_chunks.
    envs_per_actor: int = 1
    # Stop after this many env steps in total (all actors).
    total_env_steps: int = 2_000
    # Weight push policy: "every_iteration" (after each PPO iteration, tagged with the new version).
    push: str = "every_iteration"
    # Seconds a learner waits for a complete batch before training on what it has (>= one minibatch); 0 = forever.
    batch_timeout_s: float = 0.0
    # Seconds an actor waits for the next policy version before collecting with the weights it has.
    weights_wait_s: float = 120.0
    # Seconds an actor waits for a learner when it starts (to answer, then to send the first weights) before it
    # exits with an error; a learner lost mid-run is waited for without limit (reconnect with backoff).
    connect_timeout_s: float = 60.0
    # Write a checkpoint every N PPO iterations (and always at the end).
    checkpoint_every: int = 5
    # Checkpoints kept in the run folder: older ones are deleted after each save, never the one `last` points at
    # (the newest, just written and verified). 0 keeps all.
    keep_checkpoints: int = 3
    # Torch device for the learner ("cpu", "cuda").
    device: str = "cpu"
    # Learner processes (data-parallel ranks, DDP on accelerate, issue 21). > 1: each PPO minibatch is split over
    # them (at most algorithm.minibatch_size ranks); rank 0 serves the actors, pushes and checkpoints.
    learner_ranks: int = 1
    # How the ranks share the model: "ddp" (each holds all of it) or "fsdp" (sharded, one unit per transformer block
    # of the action expert; rank 0 keeps a whole CPU copy for pushes and checkpoints: runtime/ranks.py).
    learner_strategy: str = "ddp"
    # Torch device for the actors.
    actor_device: str = "cpu"
    # Torch intra-op threads per process (0 = torch default). 1 keeps 2-core machines responsive.
    torch_threads: int = 1


@dataclass
class PipelineSettings:
    """The few-shot SFT -> PI-RL job around the runtime (``pirlctl train`` / ``pirlctl pretrain``)."""

    # Scripted demonstrations kept for SFT (successful ones only, unless demo_keep_failures): deliberately few.
    demo_episodes: int = 20
    # Gaussian noise on the demonstrator's xyz command (in action units, 1 = 2.5 cm): imperfect demos.
    demo_noise_std: float = 0.3
    # Per-episode aiming error of the demonstrator (metres, std of the believed cube xy).
    demo_aim_error: float = 0.01
    # Constant offset (metres, xyz) of where the demonstrator believes the cube is: a miscalibrated demonstrator
    # (e.g. an off camera-to-robot transform). Behaviour cloning copies it faithfully; reward does not. 0 = none.
    demo_aim_bias: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    # The demonstrator re-opens and tries again after a missed lift. False: its first miss ends the attempt (and the
    # episode is discarded), so the demos show one grasp each, never a recovery.
    demo_retry: bool = True
    # Scale error of where the demonstrator believes the cube is, about the table centre (a camera whose scale is
    # off): it aims at cube + scale * (cube - centre) in xy, on target at the centre and further beside the cube the
    # further out it lies. 0 = none.
    demo_aim_scale: float = 0.0
    # Keep the demonstrator's failed episodes too, as recorded (an uncurated session): the clone then copies where the
    # demonstrator fails as well as where it succeeds. False keeps successful episodes only.
    demo_keep_failures: bool = False
    # Behaviour-cloning optimiser steps.
    sft_steps: int = 2000
    # Behaviour-cloning minibatch size (frames).
    sft_batch_size: int = 32
    # Behaviour-cloning learning rate (AdamW, cosine decay).
    sft_lr: float = 1e-3
    # ODE evaluation episodes before and after RL (>= 50 for the published figures).
    eval_episodes: int = 50
    # Evaluation processes run side by side, each on a consecutive range of the episodes (same result as one).
    eval_workers: int = 2
    # Where demos, the SFT policy and its evaluation are cached, keyed by the settings that produce them.
    cache_dir: str = ".cache/pirlctl"


# Keys that PipelineSettings no longer has: the alarm thresholds live in pirlctl.alarms now. The run_config.json
# of a run made before carries them; loading drops them (load_run_config) so it still resumes.
RETIRED_PIPELINE_KEYS = (
    "alarm_approx_kl",
    "alarm_clipfrac",
    "alarm_value_loss_factor",
    "alarm_onpolicy_log_ratio",
    "alarm_success_drop",
    "alarm_window",
)


@dataclass
class PiRLRunConfig:
    """A whole PI-RL run: policy, algorithm, env, runtime."""

    # The flow policy (LeRobot policy config, e.g. type xvla).
    policy: PreTrainedConfig | None = None
    # Local directory of a pretrained LeRobot checkpoint of `policy` (the SFT policy); None = random init.
    policy_path: str | None = None
    # The RL algorithm; "pi_rl" for this recipe.
    algorithm: RLAlgorithmConfig | None = None
    # The env: `type` picks it (pick_cube, pusht, metaworld, aloha, libero; none = pick_cube); the rest are its
    # settings (pirlctl.envs.configs).
    env: TaskEnvConfig = field(default_factory=PickCubeEnv)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    # Optional Weights & Biases logging of the learner's records, in LeRobot's shape (enable, project, entity,
    # notes, run_id, mode); metrics.jsonl stays the source of truth. Needs LeRobot's `training` extra.
    wandb: WandBConfig = field(default_factory=WandBConfig)
    # Run folder: metrics.jsonl, checkpoints/, logs.
    output_dir: str = "runs/default"
    # Name of the run (defaults to the output folder's name).
    job_name: str | None = None
    # Global seed (torch, numpy, python).
    seed: int = 1000
    # Resume from output_dir/checkpoints/last.
    resume: bool = False

    def validate(self) -> None:
        if self.policy is None:
            raise RunConfigError(
                'policy is not set; add "policy": {"base": "policy/tiny_xvla.json"} (the built-in tiny X-VLA) or a '
                "LeRobot policy config"
            )
        if self.algorithm is None:
            self.algorithm = PiRLConfig()
        if getattr(self.algorithm, "policy_config", None) is None:
            self.algorithm.policy_config = self.policy
        rt = self.runtime
        if not isinstance(self.pipeline.eval_workers, int) or self.pipeline.eval_workers < 1:
            raise RunConfigError(f"pipeline.eval_workers={self.pipeline.eval_workers!r} is invalid; use 1 or more")
        for name in ("num_actors", "envs_per_actor", "rollout_chunks", "total_env_steps", "checkpoint_every"):
            value = getattr(rt, name)
            if not isinstance(value, int) or value < 1:
                raise RunConfigError(f"runtime.{name}={value!r} is invalid; it must be an integer >= 1")
        _check_learner_ranks(rt, self.algorithm)
        if not isinstance(rt.keep_checkpoints, int) or rt.keep_checkpoints < 0:
            raise RunConfigError(
                f"runtime.keep_checkpoints={rt.keep_checkpoints!r} is invalid; use 0 (keep all) or a count >= 1"
            )
        if not (1 <= rt.learner_port <= 65535):
            raise RunConfigError(f"runtime.learner_port={rt.learner_port} is invalid; use 1-65535")
        if not (isinstance(rt.connect_timeout_s, int | float) and 0 < rt.connect_timeout_s < float("inf")):
            raise RunConfigError(
                f"runtime.connect_timeout_s={rt.connect_timeout_s!r} is invalid; use a number of seconds > 0, e.g. 60"
            )
        if getattr(self.algorithm, "advantage", "gae") == "grpo" and rt.envs_per_actor != 1:
            raise RunConfigError(
                f"runtime.envs_per_actor={rt.envs_per_actor} is not supported with algorithm.advantage='grpo' yet "
                "(GRPO schedules one env per actor); use runtime.envs_per_actor=1 and more actors (runtime.num_actors)"
            )
        if getattr(self.algorithm, "advantage", "gae") == "grpo" and not self.env.episode_limit:
            raise RunConfigError(
                f"algorithm.advantage='grpo' schedules whole episodes, which needs an episode limit that "
                f"env.type={self.env.type} does not set; set env.episode_length"
            )
        if rt.push != "every_iteration":
            raise RunConfigError(f"runtime.push={rt.push!r} is invalid; use 'every_iteration'")
        bias = self.pipeline.demo_aim_bias
        if len(bias) != 3 or not all(isinstance(b, int | float) and math.isfinite(b) for b in bias):
            raise RunConfigError(
                f"pipeline.demo_aim_bias={bias!r} is invalid; give three finite offsets in metres, e.g. [0, 0.015, 0]"
            )
        if not (isinstance(self.pipeline.demo_aim_scale, int | float) and math.isfinite(self.pipeline.demo_aim_scale)):
            raise RunConfigError(
                f"pipeline.demo_aim_scale={self.pipeline.demo_aim_scale!r} is invalid; give a finite scale error, "
                "e.g. 1.0 (0 = none)"
            )
        try:
            self.env.check(
                policy=self.policy, critic_privileged_dim=getattr(self.algorithm, "critic_privileged_dim", 0)
            )
        except EnvSetupError as err:
            raise RunConfigError(str(err)) from err
        if self.job_name is None:
            self.job_name = Path(self.output_dir).name

    @property
    def pirl(self) -> PiRLConfig:
        """The algorithm config, checked to be PI-RL."""
        if not isinstance(self.algorithm, PiRLConfig):
            kind = getattr(self.algorithm, "type", None)
            raise RunConfigError(
                f"algorithm.type={kind!r}: pirlctl's learner/actor run pi_rl; run SAC with LeRobot's own "
                "lerobot-train-rl, or convert it with `pirlctl migrate-config`"
            )
        return self.algorithm


def encode_run_config(cfg: PiRLRunConfig) -> dict[str, Any]:
    """JSON-able dict (draccus encoding); ``policy_config`` inside the algorithm is left out (it is ``policy``)."""
    algo = cfg.algorithm
    saved = getattr(algo, "policy_config", None)
    if algo is not None and saved is not None:
        algo.policy_config = None
    try:
        data = draccus.encode(cfg)
    finally:
        if algo is not None and saved is not None:
            algo.policy_config = saved
    if isinstance(data.get("algorithm"), dict):
        data["algorithm"].pop("policy_config", None)
    return data


def _check_learner_ranks(rt: RuntimeSettings, algorithm: Any) -> None:
    n = rt.learner_ranks
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise RunConfigError(f"runtime.learner_ranks={n!r} is invalid; it must be an integer >= 1")
    minibatch = getattr(algorithm, "minibatch_size", n)
    if isinstance(minibatch, int) and minibatch >= 1 and n > minibatch:  # an invalid size: the algorithm says so
        raise RunConfigError(
            f"runtime.learner_ranks={n} is more than the {minibatch} samples of a minibatch "
            f"(algorithm.minibatch_size): each rank needs one; use at most {minibatch} ranks or a larger minibatch"
        )
    if rt.learner_strategy not in ("ddp", "fsdp"):
        raise RunConfigError(f"runtime.learner_strategy={rt.learner_strategy!r} is invalid; use 'ddp' or 'fsdp'")


def config_hash(cfg: PiRLRunConfig) -> str:
    """sha256 of what must match between a checkpoint and the config resuming it: policy and algorithm."""
    data = encode_run_config(cfg)
    key = {"policy": data.get("policy"), "algorithm": data.get("algorithm")}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def save_run_config(cfg: PiRLRunConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(encode_run_config(cfg), indent=2, default=str))


def load_run_config(path: str | Path | None, overrides: list[str] | None = None) -> PiRLRunConfig:
    """Parse a run config (a file, or a built-in name: :mod:`pirlctl.configs`) plus dotted overrides
    (``--runtime.num_actors=2``), then validate it. A file that builds on a ``base`` is merged first."""
    args = list(overrides or [])
    data: Any = {}
    parse_path: str | None = None
    rewrite = False
    if path is not None:
        try:
            p = resolve_config_path(path)
            data = read_config_dict(p)
            rewrite = is_composed(p)
        except ConfigFileError as err:
            raise RunConfigError(str(err)) from err
        _refuse_renamed_fields(p, data)
        parse_path = str(p)
        pipeline = data.get("pipeline") if isinstance(data, dict) else None
        if isinstance(pipeline, dict) and any(k in pipeline for k in RETIRED_PIPELINE_KEYS):
            for key in RETIRED_PIPELINE_KEYS:  # an older run's saved config: alarm thresholds now live in alarms.py
                pipeline.pop(key, None)
            rewrite = True
    source = str(path) if path is not None else "the defaults"
    with tempfile.TemporaryDirectory(prefix="pirlctl-config-") as tmp:
        if rewrite:  # draccus reads files: hand it the merged (and cleaned) config
            parse_path = str(Path(tmp) / p.name)
            Path(parse_path).write_text(json.dumps(data))
        with draccus.config_type("json"), draccus_errors(source):
            check_settings(PiRLRunConfig, data, args, source=source)  # one line, not usage
            cfg = draccus.parse(PiRLRunConfig, parse_path, args=args, exit_on_error=False)
    cfg.validate()
    return cfg


# Fields of older pirlctl versions, and what replaced them: a saved run_config.json names them.
RENAMED_FIELDS = {
    "noise_anneal_iters": "noise_anneal_frac (the fraction of the run's planned PPO iterations; the shipped configs "
    "use 0.84)",
    "lr_anneal_iters": "lr_anneal_frac (the fraction of the run's planned PPO iterations; the shipped configs use 1.0)",
}


def _refuse_renamed_fields(path: Path, data: dict[str, Any]) -> None:
    algo = data.get("algorithm")
    for old, new in RENAMED_FIELDS.items():
        if isinstance(algo, dict) and old in algo:
            raise RunConfigError(
                f"run config {path} sets algorithm.{old}={algo[old]!r}, a field of an older pirlctl: schedules are "
                f"now fractions of the run; replace it by algorithm.{new}"
            )
