"""``PiRLAlgorithm``: PPO over the stochastic denoising chain, on LeRobot's ``RLAlgorithm`` API.

The actor calls :meth:`PiRLAlgorithm.act` (chunk, log-prob, value, chain and k* in one pass). The learner builds
a :class:`RolloutBatch` from the actors' transitions (:func:`build_rollout_batch` computes chunk-level GAE) and
calls :meth:`update` with an iterator that yields it: one PPO iteration = ``ppo_epochs`` passes of shuffled
minibatches. The maths lives in ``sampler``, ``advantages`` and ``losses``; this class holds state only.
Under ``advantage="grpo"`` the batch comes from ``group_batch.build_group_batch`` (group-relative advantages of
whole episodes) and :meth:`update` trains the actor only: no value loss, no critic step, no re-normalisation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from lerobot.rl.algorithms.base import RLAlgorithm
from lerobot.rl.algorithms.configs import TrainingStats
from torch import Tensor, nn
from torch.optim import Optimizer

from pirlctl.algorithms.pi_rl.advantages import chunk_gae, explained_variance, normalize
from pirlctl.algorithms.pi_rl.batch import ChunkTransition, RolloutBatch
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PRIVILEGED_STATE_KEY, PiRLConfig, PiRLConfigError
from pirlctl.algorithms.pi_rl.data_parallel import DataParallel, combine_stats, loss_scale, shard_range, stats_row
from pirlctl.algorithms.pi_rl.heads import NoiseHead, ValueHead
from pirlctl.algorithms.pi_rl.losses import clipped_surrogate, clipped_value_loss
from pirlctl.algorithms.pi_rl.sampler import (
    action_mask,
    gaussian_entropy,
    reduce_chain_log_prob,
    rescore_chain,
    sample_chain,
)
from pirlctl.errors import PirlError
from pirlctl.policies import make_flow_adapter
from pirlctl.policies.base import FlowPolicyAdapter, initial_noise


class WeightsContractError(PirlError, ValueError):
    """Pushed weights do not match what the actor's model expects. The message names the key."""


@dataclass
class PolicyStep:
    """One rollout call of the PI-RL sampler for a batch of B observations."""

    actions: Tensor  # [B, n_exec, real_dim] env actions, postprocessed, to execute in order
    chain: Tensor  # [B, K+1, T, D] latents x_0..x_K
    stochastic: Tensor  # [B, K] bool
    log_prob: Tensor  # [B] (chunk_level) or [B, T, D] (token_level)
    value: Tensor  # [B] V(s)


def build_rollout_batch(
    streams: Sequence[Sequence[ChunkTransition]], *, gamma: float, gae_lambda: float
) -> RolloutBatch:
    """Chunk-level GAE per time-ordered stream (one per actor segment), concatenated into one batch."""
    obs: dict[str, list[Tensor]] = {}
    chains, stoch, logps, vals, advs, rets = [], [], [], [], [], []
    for stream in streams:
        if not stream:
            continue
        rewards = torch.tensor([tr.reward for tr in stream], dtype=torch.float64)
        values = torch.tensor([tr.value for tr in stream], dtype=torch.float64)
        adv, ret = chunk_gae(
            rewards,
            values,
            torch.tensor([tr.terminated for tr in stream]),
            torch.tensor([tr.truncated for tr in stream]),
            torch.tensor([tr.bootstrap_value for tr in stream], dtype=torch.float64),
            gamma=gamma,
            gae_lambda=gae_lambda,
        )
        advs.append(adv)
        rets.append(ret)
        vals.append(values.float())
        for tr in stream:
            for k, v in tr.observation.items():
                obs.setdefault(k, []).append(v)
            chains.append(tr.chain)
            stoch.append(tr.stochastic)
            logps.append(tr.log_prob)
    if not chains:
        raise ValueError("empty rollout: no transitions to build a PPO batch from")
    return RolloutBatch(
        observations={k: torch.stack(v) for k, v in obs.items()},
        chain=torch.stack(chains),
        stochastic=torch.stack(stoch).bool(),
        old_log_prob=torch.stack(logps),
        old_values=torch.cat(vals),
        advantages=torch.cat(advs),
        returns=torch.cat(rets),
    )


class PiRLAlgorithm(RLAlgorithm):
    """PI-RL (Flow-SDE / Flow-Noise PPO) for a flow-matching policy."""

    config_class = PiRLConfig
    name = "pi_rl"

    def __init__(self, policy: nn.Module, config: PiRLConfig, adapter: FlowPolicyAdapter | None = None) -> None:
        config.validate()
        self.policy = policy
        self.config = config
        self.adapter = adapter or make_flow_adapter(policy)
        self.n_exec = config.resolved_n_exec(self.adapter.chunk_size, self.adapter.n_action_steps)
        device = next(policy.parameters()).device
        feat_dim = self.adapter.prefix_feature_dim if config.value_head == "vlm_prefix" else self.adapter.hidden_size
        self.value_head = ValueHead(feat_dim + config.critic_privileged_dim, config.value_hidden_dim).to(device)
        self.noise_head: NoiseHead | None = None
        if config.noise_method == "flow_noise":
            self.noise_head = NoiseHead(
                self.adapter.hidden_size,
                self.adapter.action_dim,
                config.noise_head_hidden_dim,
                config.noise_sigma_min,
                config.noise_sigma_max,
            ).to(device)
        self._apply_trainable_scope()
        self.mask = action_mask(
            self.adapter.chunk_size, self.adapter.action_dim, self.n_exec, self.adapter.real_action_dim, device=device
        )
        self.optimizers: dict[str, Optimizer] = {}
        self._optimization_step: int = 0
        # PPO iterations the run plans (configuration_pi_rl.planned_iterations): the schedules' time axis. Set from
        # the run config by runtime.build.build_algorithm, for learner and actors alike; 0 holds them at their start.
        self.planned_iterations: int = 0
        # The policy's LeRobot pre/post-processors (pirlctl.policies.processors.PolicyProcessors), set with the
        # planned iterations by runtime.build.build_algorithm; the chain and its log-probs live in their
        # normalised action space. None: the caller feeds model-space inputs itself (unit tests).
        self.processors: Any = None
        # The data-parallel ranks the PPO update runs on (pirlctl.runtime.ranks.attach sets it; data_parallel says
        # how a minibatch is split). None: one process.
        self.data_parallel: DataParallel | None = None
        # Every module of the policy, as of its last eval() (see _eval_mode); None: eval() not called yet.
        self._policy_modules: list[nn.Module] | None = None

    # -- parameters ------------------------------------------------------------------------------------------
    def _apply_trainable_scope(self) -> None:
        """Freeze what ``config.trainable`` excludes (the VLM under "action_expert", and the first blocks of the
        action expert when ``trainable_blocks`` > 0); under "lora", inject the adapters (everything else frozen)."""
        cfg = self.config
        if cfg.trainable == "lora":
            from pirlctl.policies.lora import apply_lora

            apply_lora(
                self.policy,
                self.adapter,
                rank=cfg.lora_rank,
                alpha=cfg.lora_alpha,
                targets=cfg.lora_targets,
                include_vlm=cfg.lora_vlm,
            )
            return
        frozen: tuple[str, ...] = ()
        if self.config.trainable == "action_expert":
            frozen = self.adapter.frozen_parameter_prefixes()
            n = self.config.trainable_blocks
            if n:
                blocks = self.adapter.expert_block_prefixes()
                if n > len(blocks):
                    raise PiRLConfigError(
                        f"pi_rl.trainable_blocks={n} but the policy's action expert has {len(blocks)} blocks; "
                        f"use at most {len(blocks)} (0 trains them all)"
                    )
                frozen += blocks[: len(blocks) - n]
        for name, p in self.policy.named_parameters():
            if frozen and name.startswith(frozen):
                p.requires_grad_(False)

    def trainable_policy_parameters(self) -> dict[str, nn.Parameter]:
        """Policy parameters PPO updates (and pushes), by name."""
        return {n: p for n, p in self.policy.named_parameters() if p.requires_grad}

    @property
    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    def _eval_mode(self) -> None:
        """Put the policy in eval mode, walking its module tree only when some module is in train mode.

        ``nn.Module.eval()`` sets ``training`` on every module through ``__setattr__``: ~240 µs on the tiny π0.5's
        100 modules, 5% of its chunk call, paid by every actor call. Reading the flags of the modules listed at the
        last eval() costs ~8 µs and still catches a submodule switched to train mode on its own. (Modules added to
        the policy after the first call are not listed: the trainable scope, LoRA included, is applied before.)
        """
        mods = self._policy_modules
        if mods is None or any(m.training for m in mods):
            self.policy.eval()
            self._policy_modules = list(self.policy.modules())

    @property
    def iteration(self) -> int:
        """Completed PPO iterations; also the policy version of the current weights."""
        return self.optimization_step

    def noise_level(self, iteration: int | None = None) -> float:
        """The Flow-SDE noise level of the current (or the given) iteration, on this run's schedule."""
        it = self.iteration if iteration is None else iteration
        return self.config.noise_level_at(it, self.planned_iterations)

    @property
    def _sigma_fn(self):
        return self.noise_head if self.noise_head is not None else None

    def _value_features(self, prefix: Any, obs_batch_size: int, chain0: Tensor | None = None) -> Tensor:
        if self.config.value_head == "vlm_prefix":
            return self.adapter.prefix_features(prefix)
        x0 = chain0 if chain0 is not None else initial_noise(self.adapter, obs_batch_size, device=self.device)
        t = torch.ones(obs_batch_size, device=self.device)
        with torch.no_grad():
            return self.adapter.denoise_fn(prefix)(x0, t, x0).hidden.mean(dim=1)

    def _critic(self, features: Tensor, observation: dict[str, Tensor]) -> Tensor:
        """V(s) from the value features, plus the privileged state when the critic is asymmetric."""
        if self.config.critic_privileged_dim:
            priv = observation.get(PRIVILEGED_STATE_KEY)
            if priv is None:
                raise PiRLConfigError(
                    f"pi_rl.critic_privileged_dim={self.config.critic_privileged_dim} but the observation has no "
                    f"{PRIVILEGED_STATE_KEY!r}; the actor must add the simulator state (or set the dim to 0)"
                )
            if priv.shape[-1] != self.config.critic_privileged_dim:
                raise PiRLConfigError(
                    f"{PRIVILEGED_STATE_KEY!r} has {priv.shape[-1]} numbers but pi_rl.critic_privileged_dim="
                    f"{self.config.critic_privileged_dim}; set the dim to what the env provides"
                )
            features = torch.cat([features.float(), priv.to(self.device).float()], dim=-1)
        return self.value_head(features)  # detaches its input

    def _chunk_log_prob(self, step_log_prob: Tensor, stochastic: Tensor) -> Tensor:
        """The one reduction used by both the actor's sampling pass and the learner's re-score (ratio = 1 at lr 0)."""
        return reduce_chain_log_prob(
            step_log_prob,
            stochastic,
            self.mask,
            reduction=self.config.logprob_reduction,
            aggregation=self.config.chain_aggregation,
        )

    # -- acting ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(
        self,
        observation: dict[str, Tensor],
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        x_init: Tensor | None = None,
    ) -> PolicyStep:
        """Sample a chunk for a batch of observations: actions, chain, log-prob and value in one pass.

        ``deterministic`` uses flow_ode (evaluation); the log-prob is then 0.
        """
        self._eval_mode()
        cfg = self.config
        prefix = self.adapter.encode(observation)
        B = next(iter(observation.values())).shape[0]
        x0 = x_init if x_init is not None else initial_noise(self.adapter, B, device=self.device, generator=generator)
        method = "flow_ode" if deterministic else cfg.noise_method
        sample = sample_chain(
            self.adapter.denoise_fn(prefix),
            x0,
            cfg.num_denoise_steps,
            method,
            sampling=cfg.resolved_sampling,
            noise_level=self.noise_level(),
            sigma_fn=self._sigma_fn,
            generator=generator,
        )
        log_prob = self._chunk_log_prob(sample.step_log_prob, sample.stochastic)
        if deterministic and cfg.critic_privileged_dim and PRIVILEGED_STATE_KEY not in observation:
            value = torch.zeros(B, device=self.device)  # evaluation: no V needed, and no simulator state given
        elif cfg.value_head == "vlm_prefix":
            value = self._critic(self.adapter.prefix_features(prefix), observation)
        else:
            value = self._critic(sample.first_hidden.mean(dim=1), observation)
        actions = self.adapter.postprocess(sample.actions)[:, : self.n_exec]
        return PolicyStep(actions, sample.chain, sample.stochastic, log_prob, value)

    @torch.no_grad()
    def value(self, observation: dict[str, Tensor]) -> Tensor:
        """V(s) [B] for a batch of observations (bootstrap values at truncation / rollout end)."""
        self._eval_mode()
        prefix = self.adapter.encode(observation)
        B = next(iter(observation.values())).shape[0]
        return self._critic(self._value_features(prefix, B), observation)

    # -- learning --------------------------------------------------------------------------------------------
    def evaluate(self, batch: RolloutBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Re-score stored chains under the current parameters: (log_prob, values, entropy [N])."""
        cfg = self.config
        grad_prefix = cfg.grad_through_prefix
        with torch.set_grad_enabled(grad_prefix and torch.is_grad_enabled()):
            prefix = self.adapter.encode(batch.observations)
        rescore = rescore_chain(
            self.adapter.denoise_fn(prefix),
            batch.chain,
            batch.stochastic,
            cfg.noise_method,
            noise_level=self.noise_level(),
            sigma_fn=self._sigma_fn,
            hybrid=cfg.resolved_sampling == "hybrid",
        )
        log_prob = self._chunk_log_prob(rescore.step_log_prob, batch.stochastic)
        if not cfg.uses_critic:
            values = torch.zeros(len(batch), device=self.device)  # GRPO: no critic to score
        elif cfg.value_head == "vlm_prefix":
            values = self._critic(self.adapter.prefix_features(prefix), batch.observations)
        else:
            values = self._critic(self._value_features(prefix, len(batch), batch.chain[:, 0]), batch.observations)
        sto = batch.stochastic[:, :, None, None].to(rescore.step_std.dtype) * self.mask
        ent = gaussian_entropy(rescore.step_std.clamp_min(1e-12)) * sto
        entropy = ent.sum(dim=(1, 2, 3)) / sto.sum(dim=(1, 2, 3)).clamp_min(1.0)
        return log_prob, values, entropy

    def update(self, batch_iterator: Iterator[Any]) -> TrainingStats:
        """One PPO iteration (``ppo_epochs`` × shuffled minibatches) over ``next(batch_iterator)``, a RolloutBatch."""
        batch: RolloutBatch = next(batch_iterator)
        cfg = self.config
        if not self.optimizers:
            self.make_optimizers_and_scheduler()
        dev = self.device
        batch = RolloutBatch(
            observations={k: v.to(dev) for k, v in batch.observations.items()},
            **{f.name: getattr(batch, f.name).to(dev) for f in fields(batch) if f.name != "observations"},
        )
        N = len(batch)
        critic = cfg.uses_critic  # GRPO: advantages come group-normalised; no value loss, no critic step
        adv = normalize(batch.advantages) if cfg.normalize_advantages and critic else batch.advantages
        batch.advantages = adv
        warmup = self.iteration < cfg.critic_warmup_iters
        actor_lr = cfg.actor_lr_at(self.iteration, self.planned_iterations)
        for group in self.optimizers["actor"].param_groups:
            group["lr"] = actor_lr
        ent_coef = cfg.resolved_entropy_coef
        actor_params = list(self.trainable_policy_parameters().values())
        if self.noise_head is not None:
            actor_params += list(self.noise_head.parameters())
        critic_params = list(self.value_head.parameters())

        sums: dict[str, float] = {}
        count = 0
        ratio_min, ratio_max, max_abs_lr = float("inf"), float("-inf"), 0.0
        # |log ratio| of the first minibatch, scored before any step of this update: the on-policy check.
        # It is ~0 exactly when the learner re-scores what the actor sampled with the same weights.
        onpolicy_lr: float | None = None
        epochs_run = 0
        self._eval_mode()  # no dropout: the re-score must match the actor's sampling pass
        dp = self.data_parallel
        for _epoch in range(cfg.ppo_epochs):
            epochs_run += 1
            perm = torch.randperm(N, device=dev) if dp is None else dp.permutation(N, dev)
            epoch_kl, epoch_n = 0.0, 0
            for start in range(0, N, cfg.minibatch_size):
                idx = perm[start : start + cfg.minibatch_size]
                n_own = len(idx)
                if dp is not None:  # this rank's shard of the minibatch (data_parallel: why the scale, why idx[:1])
                    lo, hi = shard_range(len(idx), dp.rank, dp.world_size)
                    n_own, scale = hi - lo, loss_scale(hi - lo, len(idx), dp.world_size)
                    idx = idx[lo:hi] if hi > lo else idx[:1]
                mb = batch.index(idx)
                log_prob, values, entropy = self.evaluate(mb) if dp is None else dp.score(mb)
                v_loss = (
                    clipped_value_loss(
                        values, mb.old_values, mb.returns, huber_delta=cfg.huber_delta, value_clip=cfg.value_clip
                    )
                    if critic
                    else torch.zeros((), device=dev)
                )
                pg_loss, st = clipped_surrogate(
                    log_prob,
                    mb.old_log_prob,
                    mb.advantages,
                    cfg.clip_ratio,
                    mask=self.mask if cfg.logprob_reduction == "token_level" else None,
                )
                ent = entropy.mean()
                if critic:
                    loss = cfg.value_loss_coef * v_loss
                    if not warmup:
                        loss = loss + pg_loss - ent_coef * ent
                else:
                    loss = pg_loss - ent_coef * ent
                if dp is not None:
                    loss = loss * scale
                for opt in self.optimizers.values():
                    opt.zero_grad(set_to_none=True)
                loss.backward()  # under DDP: the gradients averaged over ranks
                critic_gn = 0.0
                if critic:
                    critic_gn = float(torch.nn.utils.clip_grad_norm_(critic_params, cfg.grad_clip_norm))
                    self.optimizers["critic"].step()
                actor_gn = 0.0
                if not warmup and actor_params:
                    actor_gn = float(torch.nn.utils.clip_grad_norm_(actor_params, cfg.grad_clip_norm))
                    self.optimizers["actor"].step()
                mbs = {
                    "policy_loss": float(pg_loss.detach()),
                    "value_loss": float(v_loss.detach()),
                    "entropy": float(ent.detach()),
                    "approx_kl": st.approx_kl,
                    "clipfrac": st.clipfrac,
                    "ratio_min": st.ratio_min,
                    "ratio_max": st.ratio_max,
                    "max_abs_log_ratio": st.max_abs_log_ratio,
                }
                if dp is not None:  # the whole minibatch's numbers, the same on every rank
                    mbs = combine_stats(dp.gather(stats_row(n_own, mbs)))
                for key, val in (
                    ("policy_loss", mbs["policy_loss"]),
                    ("value_loss", mbs["value_loss"]),
                    ("entropy", mbs["entropy"]),
                    ("approx_kl", mbs["approx_kl"]),
                    ("clipfrac", mbs["clipfrac"]),
                    ("actor_grad_norm", actor_gn),
                    ("critic_grad_norm", critic_gn),
                ):
                    sums[key] = sums.get(key, 0.0) + val
                count += 1
                ratio_min, ratio_max = min(ratio_min, mbs["ratio_min"]), max(ratio_max, mbs["ratio_max"])
                max_abs_lr = max(max_abs_lr, mbs["max_abs_log_ratio"])
                if onpolicy_lr is None:
                    onpolicy_lr = mbs["max_abs_log_ratio"]
                epoch_kl += mbs["approx_kl"]
                epoch_n += 1
            if cfg.target_kl is not None and epoch_kl / max(epoch_n, 1) > cfg.target_kl:
                break
        mean = {k: v / max(count, 1) for k, v in sums.items()}
        self.optimization_step = self.iteration + 1
        return TrainingStats(
            losses={"policy_loss": mean["policy_loss"], "value_loss": mean["value_loss"]},
            grad_norms={"actor": mean["actor_grad_norm"], "critic": mean["critic_grad_norm"]},
            extra={
                "entropy": mean["entropy"],
                "approx_kl": mean["approx_kl"],
                "clipfrac": mean["clipfrac"],
                "explained_variance": explained_variance(batch.old_values, batch.returns) if critic else float("nan"),
                "ratio_min": ratio_min,
                "ratio_max": ratio_max,
                "max_abs_log_ratio": max_abs_lr,
                "onpolicy_max_abs_log_ratio": onpolicy_lr if onpolicy_lr is not None else 0.0,
                "noise_level": self.noise_level(self.iteration - 1),
                "actor_lr": actor_lr,
                "epochs": float(epochs_run),
                "samples": float(N),
                "critic_warmup": float(warmup),
                "mean_return": float(batch.returns.mean()),
            },
        )

    def make_optimizers_and_scheduler(self) -> dict[str, Optimizer]:
        """AdamW for the actor (trainable policy parameters + noise head) and for the critic, own learning rates."""
        cfg = self.config
        actor_params = list(self.trainable_policy_parameters().values())
        if self.noise_head is not None:
            actor_params += list(self.noise_head.parameters())
        betas = (float(cfg.adam_betas[0]), float(cfg.adam_betas[1]))
        self.optimizers = {
            "actor": torch.optim.AdamW(actor_params, lr=cfg.actor_lr, betas=betas, weight_decay=cfg.weight_decay),
            "critic": torch.optim.AdamW(
                self.value_head.parameters(), lr=cfg.value_lr, betas=betas, weight_decay=cfg.weight_decay
            ),
        }
        return self.optimizers

    def get_optimizers(self) -> dict[str, Optimizer]:
        return self.optimizers

    # -- weights and state -------------------------------------------------------------------------------------
    def get_weights(self) -> dict[str, Any]:
        """Exactly what an actor needs to sample like the learner, as CPU tensors.

        ``{"policy": trainable policy parameters by name, "value_head": ..., ["noise_head": ...]}``. Frozen
        parameters (the VLM under ``trainable="action_expert"``) are not sent: an actor starts from the same base
        checkpoint, and verify-sync checks that contract.
        """
        weights: dict[str, Any] = {
            "policy": {n: p.detach().cpu() for n, p in self.trainable_policy_parameters().items()},
            "value_head": {k: v.detach().cpu() for k, v in self.value_head.state_dict().items()},
        }
        if self.noise_head is not None:
            weights["noise_head"] = {k: v.detach().cpu() for k, v in self.noise_head.state_dict().items()}
        return weights

    def frozen_fingerprint(self) -> str:
        """sha256 over the policy parameters that are *not* pushed (names, shapes, bytes).

        An actor and a learner must agree on it: get_weights() sends only the trainable part, so both sides have
        to start from the same base checkpoint (or the same seeded random init).
        """
        import hashlib

        h = hashlib.sha256()
        trainable = self.trainable_policy_parameters()
        for name, p in sorted(self.policy.named_parameters()):
            if name in trainable:
                continue
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def expected_weights(self) -> dict[str, dict[str, tuple[tuple[int, ...], torch.dtype]]]:
        """What :meth:`load_weights` consumes: group -> key -> (shape, dtype)."""
        out = {
            "policy": {n: (tuple(p.shape), p.dtype) for n, p in self.trainable_policy_parameters().items()},
            "value_head": {k: (tuple(v.shape), v.dtype) for k, v in self.value_head.state_dict().items()},
        }
        if self.noise_head is not None:
            out["noise_head"] = {k: (tuple(v.shape), v.dtype) for k, v in self.noise_head.state_dict().items()}
        return out

    def load_weights(self, weights: dict[str, Any], device: str | torch.device = "cpu") -> None:
        """Apply pushed weights in place. Every key is checked first; nothing is written on a mismatch."""
        expected = self.expected_weights()
        unexpected_groups = set(weights) - set(expected)
        if unexpected_groups:
            raise WeightsContractError(f"unexpected weight group(s) {sorted(unexpected_groups)}")
        for group, spec in expected.items():
            got = weights.get(group)
            if not isinstance(got, dict):
                raise WeightsContractError(f"weight group {group!r} missing")
            missing = sorted(set(spec) - set(got))
            if missing:
                raise WeightsContractError(f"{group}: missing key {missing[0]!r} ({len(missing)} missing)")
            extra = sorted(set(got) - set(spec))
            if extra:
                raise WeightsContractError(f"{group}: unexpected key {extra[0]!r} ({len(extra)} unexpected)")
            for key, (shape, dtype) in spec.items():
                t = got[key]
                if not isinstance(t, Tensor):
                    raise WeightsContractError(f"{group}.{key}: not a tensor")
                if t.device.type == "meta":
                    raise WeightsContractError(f"{group}.{key}: a meta tensor carries no data")
                if tuple(t.shape) != shape:
                    raise WeightsContractError(f"{group}.{key}: shape {tuple(t.shape)} != expected {shape}")
                if t.dtype != dtype:
                    raise WeightsContractError(f"{group}.{key}: dtype {t.dtype} != expected {dtype}")
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise WeightsContractError(f"{group}.{key}: contains NaN or Inf")
        with torch.no_grad():
            params = self.trainable_policy_parameters()
            for key, t in weights["policy"].items():
                params[key].copy_(t)
            self.value_head.load_state_dict(weights["value_head"])
            if self.noise_head is not None:
                self.noise_head.load_state_dict(weights["noise_head"])

    def state_dict(self) -> dict[str, Tensor]:
        """Algorithm-owned tensors: ``value_head.*``, ``noise_head.*`` and, under ``trainable="lora"``, the policy's
        LoRA adapters as ``lora.<parameter name>`` (the checkpoint's policy folder holds merged weights only)."""
        out = {f"value_head.{k}": v for k, v in self.value_head.state_dict().items()}
        if self.noise_head is not None:
            out.update({f"noise_head.{k}": v for k, v in self.noise_head.state_dict().items()})
        if self.config.trainable == "lora":
            out.update({f"lora.{n}": p for n, p in self.trainable_policy_parameters().items()})
        return out

    def load_state_dict(self, state_dict: dict[str, Tensor], device: str | torch.device = "cpu") -> None:
        """In-place load (``copy_``), keeping the identity of every parameter an optimizer references."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if missing or unexpected:
            raise KeyError(f"algorithm state mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            for k, t in own.items():
                t.copy_(state_dict[k].to(t.device, t.dtype))
