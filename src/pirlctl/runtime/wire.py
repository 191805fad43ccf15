"""What crosses LeRobot's ``LearnerService``, encoded and decoded with validation.

The proto and its BEGIN/MIDDLE/END byte chunking stay LeRobot's. Inside the byte streams:

- Parameters: a raw layout (JSON header + aligned tensor bytes, :func:`encode_parameters`) of
  ``algorithm.get_weights()``, a version, a stop flag and the sha256 of the frozen policy part; decoded into
  zero-copy views with every offset, size and dtype checked. No pickle.
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
from pirlctl.errors import PirlError

MAX_PARAMETERS_BYTES = 8 * 1024**3
MAX_TRANSITIONS_BYTES = 512 * 1024**2
MAX_INTERACTION_BYTES = 64 * 1024

# complementary_info keys PI-RL needs on every transition
PIRL_FIELDS = ("chain", "stochastic", "log_prob", "value", "bootstrap_value", "policy_version", "actor_id")


class WireError(PirlError, ValueError):
    """A payload could not be decoded or failed validation."""


# what a decoded tensor may hold: real numbers in the dtypes the policy uses (no complex, quantized, float8)
FLOAT_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
INT_DTYPES = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})
# a preprocessed observation may carry a bool mask (LeRobot's tokenizer step: observation.language.attention_mask)
OBSERVATION_DTYPES = FLOAT_DTYPES | INT_DTYPES | frozenset({torch.bool})
INT64_MAX = 2**63 - 1
# a segment is one actor's rollout (``rollout_chunks`` chunks); pickle memo references make a list of millions of
# copies of one dict cheap to send, so the count is bounded, not only the bytes
MAX_SEGMENT_TRANSITIONS = 65_536


def _describe(x: Any) -> str:
    """A short, one-line description of a decoded value: ``repr`` of a hostile object can be huge or recurse."""
    if x is None or isinstance(x, bool | float):
        return repr(x)
    if isinstance(x, int):
        return str(x) if abs(x) <= INT64_MAX else "an out-of-range int"
    if isinstance(x, str):
        return repr(x) if len(x) <= 40 else repr(x[:40]) + "..."
    return type(x).__name__


def _is_int(x: Any, *, lo: int = 0) -> bool:
    """A plain int (not a bool) in ``[lo, INT64_MAX]``."""
    return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= INT64_MAX


def _is_finite_number(x: Any) -> bool:
    """A finite int or float (not a bool) that converts to a float without overflow."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:  # an int beyond float range
        return False


def _tensor(x: Any, what: str, dtypes: frozenset[torch.dtype], *, to_float32: bool = False) -> Tensor:
    """A dense CPU tensor of one of ``dtypes`` with finite values, detached; else :class:`WireError` naming ``what``.

    ``to_float32`` converts before the finiteness check: a float64 1e300 is finite, its float32 is not.
    """
    if not isinstance(x, Tensor):
        raise WireError(f"{what} must be a tensor, got {_describe(x)}")
    if x.layout != torch.strided or x.is_quantized or x.device.type != "cpu":
        raise WireError(f"{what} must be a dense CPU tensor (layout {x.layout})")
    if x.dtype not in dtypes:
        raise WireError(f"{what} has dtype {x.dtype}; expected one of {sorted(str(d) for d in dtypes)}")
    x = x.detach().float() if to_float32 else x.detach()
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise WireError(f"{what} has NaN/Inf")
    return x


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
# Raw layout, no pickle: MAGIC | u64 header length | u64 total length | UTF-8 JSON header | padding | tensor
# bytes, each tensor at a 64-byte-aligned offset (the total lets a receiver size its buffer from the first chunk).
# The header: {"version", "stop", "base_fingerprint", "tensors": [[group, name, dtype, shape, offset, nbytes], ...]}.
# Decoding makes zero-copy views into the received buffer, so a push costs one copy into a (reusable) send buffer,
# the gRPC stream, one copy into a (reusable) receive buffer, and the copy into the model's parameters.
PARAMETERS_MAGIC = b"PIRLPRM1"
_PREFIX = len(PARAMETERS_MAGIC) + 16
ALIGN = 64
MAX_PARAMETERS_HEADER_BYTES = 16 * 1024**2
MAX_TENSOR_DIMS = 16
PARAMETER_DTYPES: dict[str, torch.dtype] = {
    str(d).removeprefix("torch."): d for d in (*FLOAT_DTYPES, *INT_DTYPES, torch.bool)
}
_DTYPE_NAMES = {d: name for name, d in PARAMETER_DTYPES.items()}


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass
class ParametersMessage:
    version: int
    stop: bool
    weights: dict[str, Any]
    base_fingerprint: str = ""  # sha256 of the frozen (not pushed) policy parameters


def encode_parameters(
    version: int,
    weights: dict[str, dict[str, Tensor]],
    *,
    stop: bool = False,
    base_fingerprint: str = "",
    out: bytearray | None = None,
) -> memoryview:
    """Encode a push in the raw layout; into ``out`` when it is large enough (reused across pushes: no fresh
    allocation), else into a new buffer. Returns a view of the encoded bytes. The tensors are copied, so the
    result is a snapshot: training may go on while it is sent."""
    entries: list[list[Any]] = []
    tensors: list[Tensor] = []
    for group, sd in weights.items():
        for name, t in sd.items():
            if t.dtype not in _DTYPE_NAMES:
                raise WireError(f"parameters: {group}.{name} has dtype {t.dtype}, which the wire does not carry")
            if t.device.type == "meta" or t.layout != torch.strided:
                raise WireError(f"parameters: {group}.{name} is not a dense tensor with data ({t.device.type})")
            t = t.detach()
            entries.append([group, name, _DTYPE_NAMES[t.dtype], list(t.shape), 0, t.numel() * t.element_size()])
            tensors.append(t)
    meta = {"version": int(version), "stop": bool(stop), "base_fingerprint": str(base_fingerprint)}
    # offsets depend on the header length and the header on the offsets: size the header with worst-case offsets
    probe = json.dumps({**meta, "tensors": [[*e[:4], 2**62, e[5]] for e in entries]}).encode()
    offset = _aligned(_PREFIX + len(probe))
    for e in entries:
        e[4] = offset
        offset = _aligned(offset + e[5])
    header = json.dumps({**meta, "tensors": entries}).encode()
    total = offset
    buf = out if out is not None and len(out) >= total else bytearray(total)
    view = memoryview(buf)[:total]
    view[: len(PARAMETERS_MAGIC)] = PARAMETERS_MAGIC
    view[8:16] = len(header).to_bytes(8, "little")
    view[16:24] = total.to_bytes(8, "little")
    view[_PREFIX : _PREFIX + len(header)] = header
    for e, t in zip(entries, tensors, strict=True):
        if e[5]:
            dst = torch.frombuffer(buf, dtype=torch.uint8, count=e[5], offset=e[4])
            dst.copy_(t.cpu().contiguous().reshape(-1).view(torch.uint8))
    return view


def parameters_size(first_chunk: bytes) -> int | None:
    """The whole message's size, read from its first chunk (None if it does not start like a parameters message).
    Lets a receiver allocate once instead of growing its buffer."""
    if len(first_chunk) < _PREFIX or first_chunk[: len(PARAMETERS_MAGIC)] != PARAMETERS_MAGIC:
        return None
    return int.from_bytes(first_chunk[16:24], "little")


def decode_parameters(blob: bytes | bytearray | memoryview) -> ParametersMessage:
    """Decode a push into zero-copy tensor views of ``blob`` (keep ``blob`` unchanged while they are in use).

    Checks the layout (magic, header, dtypes, shapes against byte counts, offsets inside the message, aligned and
    not overlapping). Shapes, dtypes and finiteness against the model are :meth:`PiRLAlgorithm.load_weights`'s
    contract (a second full pass here would double the cost of a push).
    """
    n = len(blob)
    if n == 0:
        raise WireError("parameters: empty payload")
    if n > MAX_PARAMETERS_BYTES:
        raise WireError(f"parameters: {n} bytes exceeds the {MAX_PARAMETERS_BYTES}-byte limit")
    mv = memoryview(blob)
    if mv.readonly:  # views of immutable bytes must not be writable tensors: take a private copy (small paths)
        mv = memoryview(bytearray(mv))
    if n < _PREFIX or bytes(mv[: len(PARAMETERS_MAGIC)]) != PARAMETERS_MAGIC:
        raise WireError(
            "parameters: not a pirlctl parameters message (bad magic); run the same pirlctl on learner and actors"
        )
    hlen = int.from_bytes(mv[8:16], "little")
    total = int.from_bytes(mv[16:24], "little")
    if total != n:
        raise WireError(f"parameters: the message is {n} bytes but says {total} (truncated or padded in transit)")
    if hlen > min(n - _PREFIX, MAX_PARAMETERS_HEADER_BYTES):
        raise WireError(f"parameters: header length {hlen} does not fit the {n}-byte message")
    try:
        obj = json.loads(bytes(mv[_PREFIX : _PREFIX + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise WireError(f"parameters: undecodable header ({type(err).__name__})") from err
    if not isinstance(obj, dict) or not {"version", "stop", "tensors"} <= set(obj):
        raise WireError("parameters: expected a header with version, stop, tensors")
    version, stop, entries = obj["version"], obj["stop"], obj["tensors"]
    if not _is_int(version):
        raise WireError(f"parameters: invalid version {_describe(version)} (expected an int in [0, 2**63))")
    if not isinstance(stop, bool):
        raise WireError(f"parameters: stop must be a bool, got {_describe(stop)}")
    fp = obj.get("base_fingerprint", "")
    if not isinstance(fp, str):
        raise WireError("parameters: base_fingerprint must be a string")
    if not isinstance(entries, list):
        raise WireError("parameters: tensors must be a list")
    weights: dict[str, dict[str, Tensor]] = {}
    end = _PREFIX + hlen
    for i, e in enumerate(entries):
        if not (isinstance(e, list) and len(e) == 6 and isinstance(e[0], str) and isinstance(e[1], str)):
            raise WireError(f"parameters: tensor entry {i} is not [group, name, dtype, shape, offset, nbytes]")
        group, name, dtype_name, shape, offset, nbytes = e
        what = f"parameters: weights[{_describe(group)}][{_describe(name)}]"
        dtype = PARAMETER_DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
        if dtype is None:
            raise WireError(f"{what} has unsupported dtype {_describe(dtype_name)}")
        if not (isinstance(shape, list) and len(shape) <= MAX_TENSOR_DIMS and all(_is_int(d) for d in shape)):
            raise WireError(f"{what} has an invalid shape")
        if not (_is_int(offset) and _is_int(nbytes)):
            raise WireError(f"{what} has an invalid offset or size")
        numel = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel * itemsize != nbytes:
            raise WireError(f"{what}: shape {tuple(shape)} of {dtype_name} is not {nbytes} bytes")
        if offset % ALIGN or offset < end or offset + nbytes > n:
            raise WireError(f"{what}: bytes [{offset}, {offset + nbytes}) misplaced in the {n}-byte message")
        end = offset + nbytes
        sd = weights.setdefault(group, {})
        if name in sd:
            raise WireError(f"{what} appears twice")
        t = torch.frombuffer(mv, dtype=dtype, count=numel, offset=offset) if numel else torch.empty(0, dtype=dtype)
        sd[name] = t.view(shape)
    return ParametersMessage(version, stop, weights, fp)


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
                    "env_index": int(tr.extra.get("env_index", 0)),  # which of the actor's envs: one GAE stream each
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


def decode_segment(
    blob: bytes,
    *,
    expected_obs: dict[str, tuple[int, ...]],
    chain_shape: tuple[int, ...],
    log_prob_shape: tuple[int, ...],
) -> Segment:
    """Decode and validate one rollout segment; any problem raises :class:`WireError` naming it.

    Each transition must carry every ``expected_obs`` key with that shape (real numbers, finite), a float chain of
    ``chain_shape``, a bool ``stochastic`` of ``chain_shape[0] - 1`` steps, a float ``log_prob`` of
    ``log_prob_shape``, finite reward / value / bootstrap value, bool done / truncated, and non-negative int policy
    version and actor id, the same for the whole segment.
    """
    items = _torch_loads(blob, "transitions", MAX_TRANSITIONS_BYTES)
    if not isinstance(items, list) or not items:
        raise WireError("transitions: expected a non-empty list of Transition dicts")
    if len(items) > MAX_SEGMENT_TRANSITIONS:
        raise WireError(f"transitions: {len(items)} transitions exceed the {MAX_SEGMENT_TRANSITIONS} limit")
    sto_shape = (chain_shape[0] - 1,)
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
        observation = {}
        for key, shape in expected_obs.items():
            if key not in state:
                raise WireError(f"{where}: observation {key!r} missing")
            t = _tensor(state[key], f"{where}: observation {key!r}", OBSERVATION_DTYPES)
            if tuple(t.shape) != shape:
                raise WireError(f"{where}: observation {key!r} shape {tuple(t.shape)} != {shape}")
            observation[key] = t
        chain = _tensor(info["chain"], f"{where}: chain", FLOAT_DTYPES, to_float32=True)
        if tuple(chain.shape) != chain_shape:
            raise WireError(f"{where}: chain must be a float tensor of shape {chain_shape}, got {tuple(chain.shape)}")
        sto = _tensor(info["stochastic"], f"{where}: stochastic", frozenset({torch.bool}))
        if tuple(sto.shape) != sto_shape:
            raise WireError(f"{where}: stochastic must have shape {sto_shape}, got {tuple(sto.shape)}")
        lp = _tensor(info["log_prob"], f"{where}: log_prob", FLOAT_DTYPES, to_float32=True)
        if tuple(lp.shape) != log_prob_shape:
            raise WireError(f"{where}: log_prob must have shape {log_prob_shape}, got {tuple(lp.shape)}")
        reward, value, boot = item.get("reward"), info["value"], info["bootstrap_value"]
        for name, x in (("reward", reward), ("value", value), ("bootstrap_value", boot)):
            if not _is_finite_number(x):
                raise WireError(f"{where}: {name} must be a finite number, got {_describe(x)}")
        done, truncated = item.get("done", False), item.get("truncated", False)
        if not (isinstance(done, bool) and isinstance(truncated, bool)):
            raise WireError(f"{where}: done and truncated must be bools")
        version, actor = info["policy_version"], info["actor_id"]
        if not (_is_int(version) and _is_int(actor)):
            raise WireError(f"{where}: policy_version and actor_id must be non-negative integers")
        n = info.get("env_steps", 1)
        if not _is_int(n):
            raise WireError(f"{where}: env_steps must be a non-negative integer, got {_describe(n)}")
        env_index = info.get("env_index", 0)
        if not _is_int(env_index):
            raise WireError(f"{where}: env_index must be a non-negative integer, got {_describe(env_index)}")
        versions.add(version)
        actors.add(actor)
        env_steps += n
        out.append(
            ChunkTransition(
                observation=observation,
                chain=chain,
                stochastic=sto,
                log_prob=lp,
                value=float(value),
                reward=float(reward),  # type: ignore[arg-type]
                terminated=done,
                truncated=truncated,
                bootstrap_value=float(boot),
                policy_version=version,
                extra={"actor_id": actor, "env_index": env_index},
            )
        )
    if len(versions) != 1 or len(actors) != 1:
        raise WireError("transitions: a segment must come from one actor and one policy version")
    return Segment(out, versions.pop(), actors.pop(), env_steps)


# -- interactions -------------------------------------------------------------------------------------------
def encode_interaction(stats: dict[str, float | int | bool | str]) -> bytes:
    return json.dumps(stats).encode("utf-8")


def decode_interaction(blob: bytes) -> dict[str, float | int | bool | str]:
    """A flat JSON object of finite scalars (ints within int64), at most :data:`MAX_INTERACTION_BYTES`."""
    if not isinstance(blob, bytes | bytearray):
        raise WireError(f"interaction: expected bytes, got {type(blob).__name__}")
    if len(blob) > MAX_INTERACTION_BYTES:
        raise WireError(f"interaction: {len(blob)} bytes exceeds {MAX_INTERACTION_BYTES}")
    try:
        obj = json.loads(blob.decode("utf-8"))
    # ValueError covers bad UTF-8, bad JSON and ints over Python's digit limit; RecursionError deep nesting
    except (ValueError, RecursionError) as err:
        raise WireError(f"interaction: not UTF-8 JSON ({type(err).__name__})") from err
    if not isinstance(obj, dict):
        raise WireError("interaction: expected a JSON object")
    clean: dict[str, float | int | bool | str] = {}
    for k, v in obj.items():
        if not isinstance(v, int | float | bool | str):
            raise WireError(f"interaction: field {_describe(k)} must be a scalar")
        if isinstance(v, float) and not math.isfinite(v):
            raise WireError(f"interaction: field {_describe(k)} is not finite")
        if isinstance(v, int) and not isinstance(v, bool) and not _is_int(v, lo=-INT64_MAX - 1):
            raise WireError(f"interaction: field {_describe(k)} is out of the int64 range")
        clean[k] = v
    return clean
