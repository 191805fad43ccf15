"""PI-RL algorithm configuration, registered in LeRobot's ``RLAlgorithmConfig`` registry as ``pi_rl``.

Every PI-RL hyperparameter is defined here, once. Defaults follow the RLinf LIBERO π0 Flow-SDE recipe
(``shared/reference/pirl-method.md``, "Reference hyperparameters"), with batch sizes scaled from 64 envs × 8
rollout epochs on 8 GPUs down to one machine. The tiny CPU configs in ``pirlctl/configs/`` override the learning
rates, because a freshly behaviour-cloned tiny X-VLA tolerates (and needs) far larger steps than a pretrained VLA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lerobot.configs.policies import PreTrainedConfig
from lerobot.rl.algorithms.configs import RLAlgorithmConfig

from pirlctl.errors import PirlError

NOISE_METHODS = ("flow_sde", "flow_noise", "flow_ode")
SAMPLING_MODES = ("hybrid", "full_chain")
LOGPROB_REDUCTIONS = ("chunk_level", "token_level")
CHAIN_AGGREGATIONS = ("sum", "mean")
VALUE_HEAD_PLACEMENTS = ("vlm_prefix", "action_expert")
TRAINABLE_SCOPES = ("action_expert", "all", "lora")
STALE_SAMPLE_RULES = ("drop", "importance_weight")
ADVANTAGE_ESTIMATORS = ("gae", "grpo")
# Observation key of the simulator-only state the critic reads when `critic_privileged_dim` > 0.
PRIVILEGED_STATE_KEY = "observation.privileged_state"


def linear_anneal(start: float, final: float | None, iters: int, iteration: int) -> float:
    """``start`` moved linearly to ``final`` over ``iters`` iterations, then held (``start`` when ``final`` is None
    or ``iters`` <= 0)."""
    if final is None or iters <= 0:
        return start
    frac = min(1.0, max(0.0, iteration / iters))
    return start + frac * (final - start)


def planned_iterations(total_env_steps: int, num_actors: int, rollout_chunks: int, n_exec: int) -> int:
    """PPO iterations a run plans: its env-step budget over the env steps of one full batch (each actor's
    ``rollout_chunks`` chunks of ``n_exec`` steps). A run usually makes one more: an episode that ends inside a chunk
    executes fewer than ``n_exec`` steps of it, so batches count slightly fewer env steps than planned."""
    return math.ceil(total_env_steps / (num_actors * rollout_chunks * n_exec))


def anneal_horizon(frac: float, planned: int) -> int:
    """The PPO iterations a schedule anneals over: the first ``frac`` of the ``planned`` ones, rounded down
    (0.84 of 22 = 18)."""
    return math.floor(frac * planned + 1e-9)  # 1e-9: a product such as 0.7 * 90 lands just below its integer


class PiRLConfigError(PirlError, ValueError):
    """A PI-RL config value is invalid. The message names the field and the fix."""


@RLAlgorithmConfig.register_subclass("pi_rl")
@dataclass
class PiRLConfig(RLAlgorithmConfig):
    """PPO over a stochastic denoising chain (πRL, arXiv 2510.25889) for flow-matching policies.

    Time convention (pirl-method.md): x_t = t·ε + (1−t)·a; K steps from t=1 (noise) to t=0 (action).
    """

    # --- Stochastic denoising chain -------------------------------------------------------------------
    # How each denoising step is made stochastic: "flow_sde" (ODE→SDE conversion, noise level `noise_level`),
    # "flow_noise" (learned per-token σ from a small noise head), "flow_ode" (deterministic; evaluation only).
    noise_method: str = "flow_sde"
    # Flow-SDE noise level a in s_t = a·sqrt(t/(1−t)). RLinf uses 0.5 (0.3 on easier tasks).
    noise_level: float = 0.5
    # Optional linear annealing of `noise_level` to this value (None = constant).
    noise_level_final: float | None = None
    # Fraction of the run's planned PPO iterations (`planned_iterations`, from runtime.total_env_steps, num_actors,
    # rollout_chunks and n_exec, computed when the run starts) over which `noise_level` anneals to
    # `noise_level_final`; it is held after that. 0 = constant.
    noise_anneal_frac: float = 0.0
    # Flow-Noise lower bound on the learned step std σ (RLinf: 0.08).
    noise_sigma_min: float = 0.08
    # Flow-Noise upper bound on the learned step std σ (RLinf: 0.16).
    noise_sigma_max: float = 0.16
    # K, number of denoising steps for rollouts, re-scoring and ODE evaluation (RLinf LIBERO: 4).
    num_denoise_steps: int = 4
    # "hybrid": one stochastic step k* ~ U{0..K−1} per chunk, the others ODE (two-layer MDP; re-score cost ≈ 1/K);
    # "full_chain": every step stochastic (one-layer MDP). None picks the method default: hybrid for flow_sde,
    # full_chain for flow_noise.
    sampling: str | None = None
    # Chain-term aggregation for full_chain: "sum" (joint density of the chain; the default) or "mean"
    # (RLinf's choice: divides the log-ratio by the number of stochastic steps, widening the effective clip range).
    chain_aggregation: str = "sum"
    # "chunk_level": one ratio per chunk, log-probs summed over executed rows and real action dims;
    # "token_level": one ratio per (row, dim), the chunk's advantage broadcast to each.
    logprob_reduction: str = "chunk_level"
    # Executed chunk length n_exec: actions run per policy call (≤ chunk_size). None = the policy's n_action_steps.
    n_exec: int | None = None

    # --- PPO -----------------------------------------------------------------------------------------
    # Where the advantages come from. "gae": chunk-level GAE from the critic (the default). "grpo": critic-free,
    # group-relative (pirl-method.md, GRPO): groups of `group_size` episodes start from the same initial state, each
    # episode's advantage is (return − group mean) / (group std + eps), and every chunk of the episode gets it; the
    # value head is then neither trained nor used (no value loss, no GAE, no batch re-normalisation).
    advantage: str = "gae"
    # GRPO group size G: episodes per group, all from the same reset seed (RLinf: 8). Must be >= 2 under
    # advantage="grpo" (one episode has no baseline to compare with); unused under "gae".
    group_size: int = 8
    # Discount per chunk (one outer-MDP step executes n_exec actions).
    gamma: float = 0.99
    # GAE λ per chunk.
    gae_lambda: float = 0.95
    # What the env's time limit means. False: it is part of the task (success must come within
    # max_episode_steps, as evaluation counts it), so a time-limited episode ends there like a terminated one: no
    # V(final obs) bootstrap, and the shaping potential is 0 at every episode end (the shaped return is then exactly
    # the sparse one minus w·Phi(s_0)). True: the infinite-horizon view, bootstrap V(final obs) at the limit and
    # keep Phi(s_T); a critic that overrates "cube held, not lifted" states then pays the policy for ending there.
    bootstrap_time_limit: bool = False
    # PPO clip range ε on the probability ratio.
    clip_ratio: float = 0.2
    # Value clipping range around the rollout's value (None disables value clipping).
    value_clip: float | None = 0.2
    # Huber δ of the critic loss.
    huber_delta: float = 1.0
    # Weight of the critic loss in the total loss (critic and actor have separate optimizers and parameters).
    value_loss_coef: float = 1.0
    # Normalise advantages per PPO iteration (zero mean, unit std over the whole batch).
    normalize_advantages: bool = True
    # PPO epochs over each on-policy batch (RLinf LIBERO: 4).
    ppo_epochs: int = 4
    # Minibatch size in chunks (RLinf: micro 128 of global 2048; scaled down for one machine).
    minibatch_size: int = 64
    # Stop the remaining epochs of an iteration once approx_kl exceeds this (None = never).
    target_kl: float | None = None
    # Entropy bonus coefficient. None = method default: 0.005 for flow_noise, 0 for flow_sde (σ is not learned).
    entropy_coef: float | None = None

    # --- Optimisation ----------------------------------------------------------------------------------
    # Actor learning rate (policy action expert and noise head). RLinf: 5e-6 for a pretrained π0.
    actor_lr: float = 5e-6
    # Optional linear annealing of `actor_lr` to this value (None = constant), as CleanRL's PPO anneals to 0.
    actor_lr_final: float | None = None
    # Fraction of the run's planned PPO iterations over which `actor_lr` anneals to `actor_lr_final` (0 = constant).
    # The final value is reached one iteration after that horizon: with 1.0 the planned run's last update, and the
    # one extra update runs usually make (see `planned_iterations`), still learn.
    lr_anneal_frac: float = 0.0
    # Critic (value head) learning rate. RLinf: 1e-4.
    value_lr: float = 1e-4
    # AdamW betas (RLinf: 0.9, 0.95).
    adam_betas: tuple[float, float] = (0.9, 0.95)
    # AdamW weight decay (RLinf: 0.01).
    weight_decay: float = 0.01
    # Gradient-norm clip, applied separately to actor and critic parameters (RLinf: 1.0).
    grad_clip_norm: float = 1.0
    # PPO iterations at the start during which only the value head trains (critic warm-up).
    critic_warmup_iters: int = 0

    # --- Heads and trainable parts -----------------------------------------------------------------------
    # Where the value head reads its features: "vlm_prefix" (mean-pooled VLM encoder output plus the proprio
    # state; noise-independent, the default for X-VLA, as for π0.5) or "action_expert" (mean-pooled action-token
    # hidden states of the first denoise step, as for π0). The features are detached either way.
    value_head: str = "vlm_prefix"
    # Hidden width of the value-head MLP.
    value_hidden_dim: int = 256
    # Asymmetric actor-critic: width of a simulator-only state vector (observation key
    # `observation.privileged_state`, which the actor adds to each transition) that the value head reads besides
    # its features. The policy does not read this key, and evaluation does not need it. 0 = none. Pick-cube provides 4
    # numbers (gripper-to-cube offset and lift fraction); with it the critic sees where the cube is, which the
    # mean-pooled features of a tiny frozen VLM barely encode.
    critic_privileged_dim: int = 0
    # Hidden width of the Flow-Noise σ head.
    noise_head_hidden_dim: int = 128
    # Which policy parameters PPO trains: "action_expert" (VLM frozen; X-VLA's soft-prompted transformer, soft
    # prompts and projections train), "all", or "lora" (the policy is frozen; peft LoRA adapters on `lora_targets`
    # train, and pushes carry only the adapters and the heads; pirlctl.policies.lora).
    trainable: str = "action_expert"
    # With trainable="action_expert": train only the last N blocks of the action expert's transformer (its
    # input/output projections, soft prompts and final norm still train); 0 trains every block. Pushes shrink
    # with it: for X-VLA-0.9B, N=6 sends 11x fewer bytes than the whole policy (B4 in docs/benchmarks.md).
    trainable_blocks: int = 0
    # With trainable="lora": the rank r of each LoRA adapter (peft LoraConfig.r).
    lora_rank: int = 16
    # With trainable="lora": LoRA alpha; an adapter adds (alpha / r)·B·A to its layer's weight (peft lora_alpha).
    lora_alpha: int = 32
    # With trainable="lora": the linear layers that get adapters, each a module name or a suffix of one (peft's
    # target_modules rule: "q_proj" matches every "...q_proj"). Empty = every linear layer of the action expert
    # (and of the VLM with `lora_vlm`); the models' unused lm_heads never get one.
    lora_targets: list[str] = field(default_factory=list)
    # With trainable="lora": let adapters reach into the VLM too (its linear layers join the default targets and
    # `lora_targets` may name them); the prefix is then re-scored with gradients, as under trainable="all".
    lora_vlm: bool = False

    # --- Observations ----------------------------------------------------------------------------------------
    # DrQ-style random shift of every camera image the policy reads (arXiv 2004.13649): each image moves by a random
    # integer offset of at most this many pixels along each axis, edge pixels replicated (pirlctl.policies.augment).
    # One setting for both stages that train the policy: behaviour cloning shifts each minibatch, and in RL the actor
    # shifts each observation before its policy call and sends the shifted one, so the learner re-scores exactly
    # what was sampled (the PPO ratio stays exact). Evaluation never shifts. 0 = off; DrQ: 4 on 84 px images.
    image_shift: int = 0

    # --- On-policy data -----------------------------------------------------------------------------------
    # What the learner does with a transition produced by an older policy version than the current one:
    # "drop" it, or "importance_weight" it (kept when at most `max_policy_lag` versions old; its stored log-prob
    # keeps PPO's ratio correct, the ratio being clipped as usual).
    stale_sample_rule: str = "drop"
    # Largest accepted version lag for "importance_weight" (samples older than this are dropped).
    max_policy_lag: int = 1

    # Filled in by TrainRLServerPipelineConfig.validate() / from_policy_config().
    policy_config: PreTrainedConfig | None = None

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`PiRLConfigError` naming the first invalid field and how to fix it."""

        def choice(name: str, allowed: tuple[str, ...], allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if value not in allowed:
                raise PiRLConfigError(
                    f"pi_rl.{name}={value!r} is invalid; use one of {', '.join(repr(a) for a in allowed)}"
                )

        def positive(name: str, strict: bool = True) -> None:
            value = getattr(self, name)
            bad = not isinstance(value, (int, float)) or not math.isfinite(value)
            bad = bad or (value <= 0 if strict else value < 0)
            if bad:
                rel = "> 0" if strict else ">= 0"
                raise PiRLConfigError(f"pi_rl.{name}={value!r} is invalid; it must be a finite number {rel}")

        def unit_interval(name: str) -> None:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise PiRLConfigError(f"pi_rl.{name}={value!r} is invalid; it must lie in [0, 1]")

        choice("noise_method", NOISE_METHODS)
        choice("sampling", SAMPLING_MODES, allow_none=True)
        choice("chain_aggregation", CHAIN_AGGREGATIONS)
        choice("logprob_reduction", LOGPROB_REDUCTIONS)
        choice("value_head", VALUE_HEAD_PLACEMENTS)
        choice("trainable", TRAINABLE_SCOPES)
        choice("stale_sample_rule", STALE_SAMPLE_RULES)
        choice("advantage", ADVANTAGE_ESTIMATORS)
        if not isinstance(self.group_size, int) or isinstance(self.group_size, bool) or self.group_size < 1:
            raise PiRLConfigError(f"pi_rl.group_size={self.group_size!r} is invalid; it must be an integer >= 2")
        if self.advantage == "grpo" and self.group_size < 2:
            raise PiRLConfigError(
                f"pi_rl.group_size={self.group_size} is invalid with advantage='grpo': one episode has no group "
                "baseline (its advantage is always 0); use group_size >= 2 (RLinf: 8)"
            )
        if self.advantage == "grpo" and self.critic_warmup_iters:
            raise PiRLConfigError(
                f"pi_rl.critic_warmup_iters={self.critic_warmup_iters} would freeze the policy while a critic that "
                "advantage='grpo' never uses warms up; set it to 0"
            )
        positive("noise_level", strict=False)
        if self.noise_level_final is not None:
            positive("noise_level_final", strict=False)
        unit_interval("noise_anneal_frac")
        positive("noise_sigma_min")
        positive("noise_sigma_max")
        if self.noise_sigma_min > self.noise_sigma_max:
            raise PiRLConfigError(
                f"pi_rl.noise_sigma_min={self.noise_sigma_min} exceeds noise_sigma_max={self.noise_sigma_max}; "
                "swap them or widen the bounds"
            )
        if not isinstance(self.num_denoise_steps, int) or self.num_denoise_steps < 1:
            raise PiRLConfigError(
                f"pi_rl.num_denoise_steps={self.num_denoise_steps!r} is invalid; it must be an integer >= 1"
            )
        if self.n_exec is not None and (not isinstance(self.n_exec, int) or self.n_exec < 1):
            raise PiRLConfigError(f"pi_rl.n_exec={self.n_exec!r} is invalid; use an integer >= 1 or null")
        unit_interval("gamma")
        unit_interval("gae_lambda")
        positive("clip_ratio")
        if self.value_clip is not None:
            positive("value_clip")
        positive("huber_delta")
        positive("value_loss_coef", strict=False)
        for name in ("ppo_epochs", "minibatch_size", "max_policy_lag"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "max_policy_lag" else 1):
                raise PiRLConfigError(f"pi_rl.{name}={value!r} is invalid; it must be a positive integer")
        if self.target_kl is not None:
            positive("target_kl")
        if self.entropy_coef is not None:
            positive("entropy_coef", strict=False)
            if self.entropy_coef > 0 and self.noise_method != "flow_noise":
                raise PiRLConfigError(
                    f"pi_rl.entropy_coef={self.entropy_coef} has no effect with noise_method="
                    f"{self.noise_method!r} (σ is not learned); set it to 0 or use flow_noise"
                )
        positive("actor_lr", strict=False)
        if self.actor_lr_final is not None:
            positive("actor_lr_final", strict=False)
        unit_interval("lr_anneal_frac")
        positive("value_lr", strict=False)
        positive("weight_decay", strict=False)
        positive("grad_clip_norm")
        positive("critic_warmup_iters", strict=False)
        positive("trainable_blocks", strict=False)
        if self.trainable == "lora":
            if self.trainable_blocks:
                raise PiRLConfigError(
                    f"pi_rl.trainable_blocks={self.trainable_blocks} has no effect with trainable='lora'; set it to 0 "
                    "(name the layers to adapt in lora_targets instead)"
                )
            for name in ("lora_rank", "lora_alpha"):
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise PiRLConfigError(f"pi_rl.{name}={value!r} is invalid; it must be an integer >= 1")
            if not all(isinstance(t, str) and t.strip() for t in self.lora_targets):
                raise PiRLConfigError(
                    f"pi_rl.lora_targets={list(self.lora_targets)!r} is invalid; use non-empty module names "
                    "(e.g. ['q_proj', 'v_proj']) or [] for every linear layer of the action expert"
                )
        if len(tuple(self.adam_betas)) != 2 or not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise PiRLConfigError(f"pi_rl.adam_betas={self.adam_betas!r} is invalid; use two numbers in [0, 1)")
        positive("value_hidden_dim")
        if not isinstance(self.image_shift, int) or isinstance(self.image_shift, bool) or self.image_shift < 0:
            raise PiRLConfigError(
                f"pi_rl.image_shift={self.image_shift!r} is invalid; use a number of pixels >= 0 (0 = off; DrQ: 4)"
            )
        if not isinstance(self.critic_privileged_dim, int) or self.critic_privileged_dim < 0:
            raise PiRLConfigError(
                f"pi_rl.critic_privileged_dim={self.critic_privileged_dim!r} is invalid; use an integer >= 0 "
                "(0 = the critic reads policy features only)"
            )
        positive("noise_head_hidden_dim")

    # -- derived values (computed, never stored twice) -----------------------------------------------------
    @property
    def uses_critic(self) -> bool:
        """Whether the value head is trained and read: under GAE yes; GRPO is critic-free."""
        return self.advantage == "gae"

    @property
    def resolved_sampling(self) -> str:
        """The sampling mode in force: the explicit one, else the noise method's default."""
        if self.sampling is not None:
            return self.sampling
        return "full_chain" if self.noise_method == "flow_noise" else "hybrid"

    @property
    def grad_through_prefix(self) -> bool:
        """Whether the learner re-scores the VLM prefix with gradients: something in the VLM trains."""
        return self.trainable == "all" or (self.trainable == "lora" and self.lora_vlm)

    @property
    def resolved_entropy_coef(self) -> float:
        """The entropy coefficient in force: explicit, else 0.005 for flow_noise (RLinf) and 0 otherwise."""
        if self.entropy_coef is not None:
            return self.entropy_coef
        return 0.005 if self.noise_method == "flow_noise" else 0.0

    def noise_level_at(self, iteration: int, planned: int) -> float:
        """Flow-SDE noise level a after `iteration` PPO iterations of a run that plans `planned` (linear annealing
        over `anneal_horizon(noise_anneal_frac, planned)` when configured)."""
        horizon = anneal_horizon(self.noise_anneal_frac, planned)
        return linear_anneal(self.noise_level, self.noise_level_final, horizon, iteration)

    def policy_frozen_after(self, iteration: int, planned: int) -> bool:
        """True when every update after `iteration` completed ones would run at an actor learning rate of 0: the
        schedule has annealed to `actor_lr_final` = 0. Such updates cannot change the policy, so the learner ends the
        run there (a run whose episodes end early, GRPO's, makes more updates than `planned` before its env-step
        budget is spent). A constant learning rate, 0 included, never freezes."""
        if self.lr_anneal_frac <= 0 or self.actor_lr_final != 0:
            return False
        return iteration > anneal_horizon(self.lr_anneal_frac, planned)

    def actor_lr_at(self, iteration: int, planned: int) -> float:
        """Actor learning rate for the PPO iteration that follows `iteration` completed ones, in a run that plans
        `planned`: `actor_lr_final` is reached one iteration after `anneal_horizon(lr_anneal_frac, planned)`."""
        horizon = anneal_horizon(self.lr_anneal_frac, planned)
        return linear_anneal(self.actor_lr, self.actor_lr_final, horizon + 1 if horizon > 0 else 0, iteration)

    def resolved_n_exec(self, chunk_size: int, n_action_steps: int | None = None) -> int:
        """Executed chunk length n_exec, checked against the policy's chunk size."""
        n = self.n_exec if self.n_exec is not None else (n_action_steps or chunk_size)
        if n > chunk_size:
            raise PiRLConfigError(
                f"pi_rl.n_exec={n} exceeds the policy's chunk_size={chunk_size}; lower n_exec or raise chunk_size"
            )
        return n

    @classmethod
    def from_policy_config(cls, policy_cfg: Any) -> PiRLConfig:
        """Default PI-RL config for a policy (LeRobot's factory contract)."""
        return cls(policy_config=policy_cfg)
