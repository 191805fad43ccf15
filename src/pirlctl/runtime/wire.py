"""What crosses LeRobot's ``LearnerService``, encoded and decoded with validation.

The proto and its BEGIN/MIDDLE/END byte chunking stay LeRobot's. Inside the byte streams:

- Parameters: ``torch.save({"version": int, "stop": bool, "weights": algorithm.get_weights(),
  "base_fingerprint": sha256 of the frozen policy part})``, decoded with ``weights_only=True`` (no arbitrary
  unpickling).
- Transitions: ``torch.save`` of a list of LeRobot ``Transition`` dicts, ``weights_only=True``. One list is one
  rollout segment of one actor, in time order; PI-RL data rides in ``complementary_info`` (:data:`PIRL_FIELDS`).
  ``next_state`` is empty: the actor sends V(s') as ``bootstrap_value`` instead of the next images.
- Interactions: UTF-8 JSON of flat episode statistics (LeRobot pickles these; peers are never unpickled here).

Every decoder raises :class:`WireError` with a one-line reason; callers log it and keep running.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition

MAX_PARAMETERS_BYTES = 8 * 1024**3
MAX_TRANSITIONS_BYTES = 512 * 1024**2
MAX_INTERACTION_BYTES = 64 * 1024

# complementary_info keys PI-RL needs on every transition
PIRL_FIELDS = ("chain", "stochastic", "log_prob", "value", "bootstrap_value", "policy_version", "actor_id")


class WireError(ValueError):
    """A payload could not be decoded or failed validation."""


def _torch_dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _torch_loads(blob: bytes, what: str, limit: int) -> Any:
    if not isinstance(blob, (bytes, bytearray)) or len(blob) == 0:
        raise WireError(f"{what}: empty payload")
    if len(blob) > limit:
        raise WireError(f"{what}: {len(blob)} bytes exceeds the {limit}-byte limit")
    try:
        return torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - any decoder failure is a bad payload
        raise WireError(f"{what}: undecodable payload ({type(err).__name__})") from err


# -- parameters ---------------------------------------------------------------------------------------------
@dataclass
class ParametersMessage:
    version: int
    stop: bool
    weights: dict[str, Any]
    base_fingerprint: str = ""  # sha256 of the frozen (not pushed) policy parameters


def encode_parameters(
    version: int, weights: dict[str, Any], *, stop: bool = False, base_fingerprint: str = ""
) -> bytes:
    return _torch_dumps(
        {"version": int(version), "stop": bool(stop), "weights": weights, "base_fingerprint": str(base_fingerprint)}
    )


def decode_parameters(blob: bytes) -> ParametersMessage:
    obj = _torch_loads(blob, "parameters", MAX_PARAMETERS_BYTES)
    if not isinstance(obj, dict) or not {"version", "stop", "weights"} <= set(obj):
        raise WireError("parameters: expected a dict with version, stop, weights")
    version, weights = obj["version"], obj["weights"]
    if not isinstance(version, int) or version < 0:
        raise WireError(f"parameters: invalid version {version!r}")
    if not isinstance(weights, dict) or not all(isinstance(g, dict) for g in weights.values()):
        raise WireError("parameters: weights must be a dict of state dicts")
    fp = obj.get("base_fingerprint", "")
    if not isinstance(fp, str):
        raise WireError("parameters: base_fingerprint must be a string")
    return ParametersMessage(version, bool(obj["stop"]), weights, fp)


# -- transitions --------------------------------------------------------------------------------------------
def encode_segment(transitions: list[ChunkTransition], *, actions: list[Tensor], env_steps: list[int]) -> bytes:
    """One actor's rollout segment as LeRobot ``Transition`` dicts."""
    out = []
    for tr, act, n in zip(transitions, actions, env_steps, strict=True):
        out.append(
            {
                "state": tr.observation,
                "action": act,
                "reward": float(tr.reward),
                "next_state": {},
                "done": bool(tr.terminated),
                "truncated": bool(tr.truncated),
                "complementary_info": {
                    "chain": tr.chain,
                    "stochastic": tr.stochastic,
                    "log_prob": tr.log_prob,
                    "value": float(tr.value),
                    "bootstrap_value": float(tr.bootstrap_value),
                    "policy_version": int(tr.policy_version),
                    "actor_id": int(tr.extra.get("actor_id", 0)),
                    "env_steps": int(n),
                },
            }
        )
    return _torch_dumps(out)


@dataclass
class Segment:
    transitions: list[ChunkTransition]
    policy_version: int
    actor_id: int
    env_steps: int


def _finite(t: Tensor) -> bool:
    return (not t.is_floating_point()) or bool(torch.isfinite(t).all())


def decode_segment(
    blob: bytes,
    *,
    expected_obs: dict[str, tuple[int, ...]],
    chain_shape: tuple[int, ...],
    log_prob_shape: tuple[int, ...],
) -> Segment:
    """Decode and validate one rollout segment; any problem raises :class:`WireError` naming it."""
    items = _torch_loads(blob, "transitions", MAX_TRANSITIONS_BYTES)
    if not isinstance(items, list) or not items:
        raise WireError("transitions: expected a non-empty list of Transition dicts")
    out: list[ChunkTransition] = []
    versions, actors = set(), set()
    env_steps = 0
    for i, item in enumerate(items):
        where = f"transitions[{i}]"
        if not isinstance(item, dict):
            raise WireError(f"{where}: not a Transition dict")
        state, info = item.get("state"), item.get("complementary_info")
        if not isinstance(state, dict):
            raise WireError(f"{where}: missing state")
        if not isinstance(info, dict):
            raise WireError(f"{where}: missing complementary_info (PI-RL fields)")
        missing = [k for k in PIRL_FIELDS if k not in info]
        if missing:
            raise WireError(f"{where}: missing PI-RL field(s) {missing}")
        for key, shape in expected_obs.items():
            t = state.get(key)
            if not isinstance(t, Tensor):
                raise WireError(f"{where}: observation {key!r} missing")
            if tuple(t.shape) != shape:
                raise WireError(f"{where}: observation {key!r} shape {tuple(t.shape)} != {shape}")
            if not _finite(t):
                raise WireError(f"{where}: observation {key!r} has NaN/Inf")
        chain, sto, lp = info["chain"], info["stochastic"], info["log_prob"]
        if not isinstance(chain, Tensor) or tuple(chain.shape) != chain_shape or not chain.is_floating_point():
            raise WireError(f"{where}: chain must be a float tensor of shape {chain_shape}")
        if not isinstance(sto, Tensor) or tuple(sto.shape) != (chain_shape[0] - 1,):
            raise WireError(f"{where}: stochastic must have shape {(chain_shape[0] - 1,)}")
        if not isinstance(lp, Tensor) or tuple(lp.shape) != log_prob_shape:
            raise WireError(f"{where}: log_prob must have shape {log_prob_shape}")
        if not (_finite(chain) and _finite(lp)):
            raise WireError(f"{where}: chain or log_prob has NaN/Inf")
        reward, value, boot = item.get("reward"), info["value"], info["bootstrap_value"]
        for name, x in (("reward", reward), ("value", value), ("bootstrap_value", boot)):
            if not isinstance(x, (int, float)) or not math.isfinite(float(x)):
                raise WireError(f"{where}: {name} must be a finite number")
        version, actor = info["policy_version"], info["actor_id"]
        if not isinstance(version, int) or version < 0 or not isinstance(actor, int):
            raise WireError(f"{where}: policy_version and actor_id must be non-negative integers")
        versions.add(version)
        actors.add(actor)
        n = info.get("env_steps", 1)
        env_steps += int(n) if isinstance(n, int) and n >= 0 else 0
        out.append(
            ChunkTransition(
                observation={k: state[k] for k in expected_obs},
                chain=chain.float(),
                stochastic=sto.bool(),
                log_prob=lp.float(),
                value=float(value),
                reward=float(reward),  # type: ignore[arg-type]
                terminated=bool(item.get("done", False)),
                truncated=bool(item.get("truncated", False)),
                bootstrap_value=float(boot),
                policy_version=version,
                extra={"actor_id": actor},
            )
        )
    if len(versions) != 1 or len(actors) != 1:
        raise WireError("transitions: a segment must come from one actor and one policy version")
    return Segment(out, versions.pop(), actors.pop(), env_steps)


# -- interactions -------------------------------------------------------------------------------------------
def encode_interaction(stats: dict[str, float | int | bool | str]) -> bytes:
    return json.dumps(stats).encode("utf-8")


def decode_interaction(blob: bytes) -> dict[str, float | int | bool | str]:
    if len(blob) > MAX_INTERACTION_BYTES:
        raise WireError(f"interaction: {len(blob)} bytes exceeds {MAX_INTERACTION_BYTES}")
    try:
        obj = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError("interaction: not UTF-8 JSON") from err
    if not isinstance(obj, dict):
        raise WireError("interaction: expected a JSON object")
    clean: dict[str, float | int | bool | str] = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, (int, float, bool, str)):
            raise WireError(f"interaction: field {k!r} must be a scalar")
        if isinstance(v, float) and not math.isfinite(v):
            raise WireError(f"interaction: field {k!r} is not finite")
        clean[k] = v
    return clean
