"""Fuzzing every decoder of peer input: whatever arrives, a validated object or a one-line WireError.

Never another exception type, never a hang. Inputs: random bytes, truncations and byte flips of valid payloads,
valid torch payloads with hostile fields (wrong dtype or shape, NaN/Inf, sparse or quantized tensors, missing
PI-RL fields, bools and out-of-range ints for versions), raw parameter messages with hostile header fields,
oversized and deeply nested JSON, and chunk streams with
unknown states or non-bytes data. About 4,000 inputs; run with ``pytest -m slow``.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from lerobot.transport import services_pb2
from lerobot.transport import utils as lerobot_transport
from torch import Tensor

from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition
from pirlctl.runtime.transport import BufferPool, chunk_messages, iter_messages, iter_messages_into
from pirlctl.runtime.wire import (
    MAX_INTERACTION_BYTES,
    PARAMETER_DTYPES,
    PIRL_FIELDS,
    ParametersMessage,
    Segment,
    WireError,
    decode_interaction,
    decode_parameters,
    decode_segment,
    encode_interaction,
    encode_parameters,
    encode_segment,
)

# torch warns on decoding sparse or TypedStorage payloads: expected here, refused by the decoders
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

OBS = {"observation.state": (3,), "observation.language.tokens": (4,)}  # a float and an int64 observation
CHAIN = (3, 2, 2)  # K+1, T, D
INT64_MAX = 2**63 - 1
SECONDS_PER_INPUT = 5.0  # generous; a hang is what this bounds (pytest-timeout stops a real one)


def fuzz(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        database=None,  # no .hypothesis/ folder in the repository
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def _dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _transition(version: int = 2, actor: int = 1, seed: int = 0) -> ChunkTransition:
    g = torch.Generator().manual_seed(seed)
    return ChunkTransition(
        observation={"observation.state": torch.randn(3, generator=g), "observation.language.tokens": torch.arange(4)},
        chain=torch.randn(*CHAIN, generator=g),
        stochastic=torch.tensor([True, False]),
        log_prob=torch.tensor(-1.5),
        value=0.5,
        reward=1.0,
        terminated=seed % 2 == 0,
        truncated=False,
        bootstrap_value=0.25,
        policy_version=version,
        extra={"actor_id": actor},
    )


def _encode(trs: list[ChunkTransition]) -> bytes:
    return encode_segment(trs, actions=[torch.zeros(2, 4)] * len(trs), env_steps=[2] * len(trs))


VALID_SEGMENT = _encode([_transition(seed=i) for i in range(3)])
VALID_PARAMETERS = encode_parameters(
    3,
    {"policy": {"w": torch.randn(4, 4), "b": torch.zeros(4)}, "value_head": {"v": torch.ones(2)}},
    base_fingerprint="ab" * 32,
)
VALID_INTERACTION = encode_interaction({"episode_return": 1.5, "success": True, "length": 40, "task": "pick"})


def _segment(blob: bytes) -> Segment:
    return decode_segment(blob, expected_obs=OBS, chain_shape=CHAIN, log_prob_shape=())


# -- the property ---------------------------------------------------------------------------------------------
def _finite(t: Tensor) -> bool:
    return not t.is_floating_point() or bool(torch.isfinite(t).all())


def _check_segment(seg: Segment) -> None:
    assert isinstance(seg, Segment) and seg.transitions
    assert type(seg.policy_version) is int and 0 <= seg.policy_version <= INT64_MAX
    assert type(seg.actor_id) is int and 0 <= seg.actor_id <= INT64_MAX
    assert type(seg.env_steps) is int and seg.env_steps >= 0
    for tr in seg.transitions:
        assert set(tr.observation) == set(OBS)
        for key, shape in OBS.items():
            t = tr.observation[key]
            assert isinstance(t, Tensor) and t.layout == torch.strided and tuple(t.shape) == shape and _finite(t)
            assert t.dtype not in (torch.bool, torch.complex64, torch.complex128)
        assert tr.chain.dtype == torch.float32 and tuple(tr.chain.shape) == CHAIN and _finite(tr.chain)
        assert tr.stochastic.dtype == torch.bool and tuple(tr.stochastic.shape) == (CHAIN[0] - 1,)
        assert tr.log_prob.dtype == torch.float32 and tuple(tr.log_prob.shape) == () and _finite(tr.log_prob)
        for x in (tr.value, tr.reward, tr.bootstrap_value):
            assert type(x) is float and math.isfinite(x)
        assert type(tr.terminated) is bool and type(tr.truncated) is bool
        assert tr.policy_version == seg.policy_version
        assert set(tr.extra) == {"actor_id", "env_index"} and tr.extra["actor_id"] == seg.actor_id
        env_index = tr.extra["env_index"]  # which of the actor's vectorised envs (one GAE stream each)
        assert type(env_index) is int and 0 <= env_index <= INT64_MAX


def _check_parameters(msg: ParametersMessage) -> None:
    assert isinstance(msg, ParametersMessage)
    assert type(msg.version) is int and 0 <= msg.version <= INT64_MAX
    assert type(msg.stop) is bool and isinstance(msg.base_fingerprint, str)
    assert isinstance(msg.weights, dict)
    for group, sd in msg.weights.items():
        assert isinstance(group, str) and isinstance(sd, dict)
        for key, t in sd.items():
            assert isinstance(key, str) and isinstance(t, Tensor) and t.layout == torch.strided and not t.is_quantized
            assert t.dtype in PARAMETER_DTYPES.values() and t.dim() <= 16
            t.sum()  # every byte of every view lies inside the message (a view past it would crash or read junk)


def _check_interaction(stats: dict) -> None:
    assert isinstance(stats, dict)
    for key, v in stats.items():
        assert isinstance(key, str) and type(v) in (bool, int, float, str)
        if type(v) is float:
            assert math.isfinite(v)
        if type(v) is int:
            assert -INT64_MAX - 1 <= v <= INT64_MAX


DECODERS = {
    "segment": (_segment, _check_segment),
    "parameters": (decode_parameters, _check_parameters),
    "interaction": (decode_interaction, _check_interaction),
}


def _event(label: str) -> None:
    """Count outcomes for ``pytest --hypothesis-show-statistics`` (the share decoded shows the fuzz is not vacuous)."""
    if currently_in_test_context():
        event(label)


def decoded_or_refused(kind: str, blob: bytes) -> Any:
    """Decode ``blob``; a result must pass the validity check, a refusal must be a one-line WireError."""
    decode, check = DECODERS[kind]
    t0 = time.monotonic()
    try:
        out = decode(blob)
    except WireError as err:
        msg = str(err)
        assert msg and "\n" not in msg and len(msg) < 300, msg
        reason = re.sub(r"\[\d+\]|, got .*| \(.*|'.*|(?<=invalid version ).*", "", msg)
        _event(f"{kind} refused: {re.sub(r'[0-9]+', 'N', reason)[:60]}")
        out = None
    else:
        check(out)
        _event(f"{kind} decoded")
    assert time.monotonic() - t0 < SECONDS_PER_INPUT
    return out


# -- strategies ---------------------------------------------------------------------------------------------
DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.uint8,
    torch.bool,
    torch.complex64,
]
SPECIALS = [0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e38, 1e300, -0.0, 3.5]  # 1e300: float32 inf
SHAPES = [(), (0,), (1,), (2,), (3,), (4,), (2, 2), (3, 2, 2), (4, 2, 2), (2, 2, 2), (3, 1, 2, 2)]


@st.composite
def tensors(
    draw: st.DrawFn, shape: tuple[int, ...] | None = None, dtype: torch.dtype | None = None, plain: bool = False
) -> Tensor:
    """Small tensors of any dtype and shape, finite or not; unless ``plain``, sometimes sparse, quantized, strided
    or with grad."""
    shape = draw(st.sampled_from(SHAPES)) if shape is None else shape
    dtype = draw(st.sampled_from(DTYPES)) if dtype is None else dtype
    values = draw(st.lists(st.sampled_from(SPECIALS), min_size=1, max_size=4))
    n = math.prod(shape)
    flat = torch.tensor([values[i % len(values)] for i in range(n)], dtype=torch.float64)
    with torch.no_grad():
        t = flat.reshape(shape).to(dtype) if dtype != torch.bool else flat.reshape(shape) != 0
    form = "plain" if plain else draw(st.sampled_from(["plain"] * 6 + ["sparse", "quantized", "strided", "grad"]))
    if form == "sparse" and t.dim() > 0 and dtype != torch.bool:
        t = t.to_sparse()
    elif form == "quantized" and t.is_floating_point() and dtype == torch.float32:
        t = torch.quantize_per_tensor(torch.nan_to_num(t), 0.1, 0, torch.quint8)
    elif form == "strided" and t.dim() >= 2:
        t = t.transpose(0, 1)
    elif form == "grad" and t.is_floating_point():
        t = t.clone().requires_grad_(True)
    return t


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-1, 0, 2, INT64_MAX, INT64_MAX + 1, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
HOSTILE = st.one_of(
    SCALARS,
    tensors(),
    st.lists(SCALARS, max_size=3),
    st.tuples(SCALARS, SCALARS),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=3),
)
DELETE = object()

# where a segment can be damaged: (field path, a near-valid replacement strategy)
SEGMENT_FIELDS: list[tuple[tuple[str, ...], st.SearchStrategy]] = [
    (("state",), st.one_of(HOSTILE, st.just({}))),
    (("state", "observation.state"), tensors(shape=(3,)) | tensors(dtype=torch.float32)),
    (("state", "observation.language.tokens"), tensors(shape=(4,)) | tensors(dtype=torch.int64)),
    (("complementary_info",), st.one_of(HOSTILE, st.just({}))),
    (("complementary_info", "chain"), tensors(shape=CHAIN) | tensors(dtype=torch.float32)),
    (("complementary_info", "stochastic"), tensors(shape=(2,)) | tensors(dtype=torch.bool)),
    (("complementary_info", "log_prob"), tensors(shape=()) | tensors(dtype=torch.float32)),
    (("complementary_info", "value"), HOSTILE),
    (("complementary_info", "bootstrap_value"), HOSTILE),
    (("complementary_info", "policy_version"), HOSTILE),
    (("complementary_info", "actor_id"), HOSTILE),
    (("complementary_info", "env_steps"), HOSTILE),
    (("reward",), HOSTILE),
    (("done",), HOSTILE),
    (("truncated",), HOSTILE),
    (("action",), HOSTILE),
]


def _valid_items(n: int) -> list[dict]:
    return torch.load(io.BytesIO(_encode([_transition(seed=i) for i in range(n)])), weights_only=True)


@st.composite
def damaged_segments(draw: st.DrawFn) -> bytes:
    """A real encoder's segment, then 0..3 fields replaced by near-valid or hostile values, or deleted."""
    items = _valid_items(draw(st.integers(1, 3)))
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        item = items[draw(st.integers(0, len(items) - 1))]
        path, near_valid = draw(st.sampled_from(SEGMENT_FIELDS))
        value = draw(st.one_of(st.just(DELETE), near_valid, HOSTILE))
        parent = item
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            if value is DELETE:
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
    container = draw(st.sampled_from(["list"] * 16 + ["tuple", "dict", "empty", "bare"]))
    obj: Any = {
        "list": items,
        "tuple": tuple(items),
        "dict": {"transitions": items},
        "empty": [],
        "bare": items[0],
    }[container]
    return _dumps(obj)


JSON_HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([INT64_MAX + 1, -1, 0, 63, 64, 2**40]),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.lists(st.integers(-2, 5), max_size=20),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
PARAMETER_DAMAGE: dict[str, st.SearchStrategy] = {
    "version": st.one_of(st.integers(-3, -1), st.sampled_from([INT64_MAX + 1, 2**100, True, 1.0, "3"]), JSON_HOSTILE),
    "stop": st.one_of(st.integers(0, 1), JSON_HOSTILE),
    "tensors": JSON_HOSTILE,
    "base_fingerprint": JSON_HOSTILE,
}
ENTRY_DAMAGE: dict[int, st.SearchStrategy] = {  # index in [group, name, dtype, shape, offset, nbytes]
    0: JSON_HOSTILE,
    1: JSON_HOSTILE,
    2: st.one_of(st.sampled_from(["complex64", "float8_e4m3fn", "qint8", "float", "int64", "bool"]), JSON_HOSTILE),
    3: st.one_of(
        st.lists(st.integers(-1, 4), max_size=4), st.lists(st.just(1), min_size=17, max_size=20), JSON_HOSTILE
    ),
    4: st.one_of(st.integers(0, 4096), JSON_HOSTILE),
    5: st.one_of(st.integers(0, 4096), JSON_HOSTILE),
}


@st.composite
def damaged_parameters(draw: st.DrawFn) -> bytes:
    """A valid raw parameters message, then 0..3 header edits: a hostile version, stop flag, fingerprint or tensor
    list; a hostile field of one tensor entry (dtype, shape, offset, size, names); an entry duplicated, dropped or
    replaced; a key deleted. The header is written back in place when it fits, so the tensor bytes stay put."""
    weights = draw(
        st.dictionaries(
            st.sampled_from(["policy", "value_head", "noise_head"]),
            st.dictionaries(
                st.text(min_size=1, max_size=4),
                tensors(plain=True).filter(lambda t: t.dtype in PARAMETER_DTYPES.values()),
                max_size=3,
            ),
            min_size=1,
            max_size=3,
        )
    )
    blob = bytearray(
        encode_parameters(
            draw(st.integers(0, 10)), weights, stop=draw(st.booleans()), base_fingerprint=draw(st.text(max_size=8))
        )
    )
    hlen = int.from_bytes(blob[8:16], "little")
    header = json.loads(blob[24 : 24 + hlen])
    room = min([e[4] for e in header["tensors"]] + [len(blob)]) - 24
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
        entries = header.get("tensors")
        what = draw(st.sampled_from([*PARAMETER_DAMAGE, "entry", "entry", "entry", "duplicate", "drop", "delete"]))
        if what in ("entry", "duplicate", "drop") and not (isinstance(entries, list) and entries):
            what = "version"
        if what in PARAMETER_DAMAGE:
            header[what] = draw(PARAMETER_DAMAGE[what])
        elif what == "entry":
            i = draw(st.integers(0, len(entries) - 1))
            if isinstance(entries[i], list) and len(entries[i]) == 6 and draw(st.booleans()):
                field = draw(st.sampled_from(list(ENTRY_DAMAGE)))
                entries[i][field] = draw(ENTRY_DAMAGE[field])
            else:
                entries[i] = draw(JSON_HOSTILE)
        elif what == "duplicate":
            entry = entries[draw(st.integers(0, len(entries) - 1))]
            entries.append(list(entry) if isinstance(entry, list) else entry)
        elif what == "drop":
            entries.pop(draw(st.integers(0, len(entries) - 1)))
        else:
            header.pop(draw(st.sampled_from(list(header))), None)
    text = json.dumps(header).encode()
    if len(text) <= room:
        blob[8:16] = len(text).to_bytes(8, "little")
        blob[24 : 24 + room] = text + b" " * (room - len(text))
        return bytes(blob)
    return bytes(blob[:8]) + len(text).to_bytes(8, "little") + bytes(blob[16:24]) + text + bytes(blob[24 + hlen :])


@st.composite
def byte_damage(draw: st.DrawFn, payload: bytes) -> bytes:
    """A valid payload truncated, with 1..8 bytes flipped, or extended."""
    blob = bytearray(payload)
    kind = draw(st.sampled_from(["truncate", "flip", "flip", "truncate+flip", "append"]))
    if "truncate" in kind:
        blob = blob[: draw(st.integers(0, len(blob) - 1))]
    if "flip" in kind and blob:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(blob) - 1))
            blob[i] ^= draw(st.integers(1, 255))
    if kind == "append":
        blob += draw(st.binary(min_size=1, max_size=64))
    return bytes(blob)


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


@st.composite
def interaction_blobs(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["object", "object", "any_json", "text", "nested", "padded", "huge_int"]))
    if kind == "object":
        return json.dumps(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6))).encode()
    if kind == "any_json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "text":
        codec = draw(st.sampled_from(["utf-8", "utf-16", "latin-1"]))
        return draw(st.text(max_size=64)).encode(codec, errors="replace")
    if kind == "nested":
        depth = draw(st.integers(1, 40_000))
        opener = draw(st.sampled_from(["[", '{"a":']))
        return (opener * depth).encode()
    if kind == "padded":  # around the size limit
        return b" " * draw(st.integers(MAX_INTERACTION_BYTES - 80, MAX_INTERACTION_BYTES + 8)) + VALID_INTERACTION
    return b'{"n": ' + b"9" * draw(st.integers(18, 6000)) + b"}"


# -- decoders -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(DECODERS))
@fuzz(300)
@given(blob=st.one_of(st.binary(max_size=2048), st.binary(max_size=512).map(lambda b: b"PK\x03\x04" + b)))
def test_random_bytes_are_refused_or_decoded(kind, blob):
    decoded_or_refused(kind, blob)


@fuzz(500)
@given(blob=byte_damage(VALID_SEGMENT))
def test_truncated_and_flipped_segments_never_escape_as_another_exception(blob):
    decoded_or_refused("segment", blob)


@fuzz(300)
@given(blob=byte_damage(VALID_PARAMETERS))
def test_truncated_and_flipped_parameters_never_escape_as_another_exception(blob):
    decoded_or_refused("parameters", blob)


@fuzz(700)
@given(blob=damaged_segments())
def test_segments_with_hostile_fields_are_refused_or_fully_valid(blob):
    decoded_or_refused("segment", blob)


@fuzz(400)
@given(blob=damaged_parameters())
def test_parameters_with_hostile_fields_are_refused_or_fully_valid(blob):
    decoded_or_refused("parameters", blob)


@fuzz(500)
@given(blob=st.one_of(interaction_blobs(), byte_damage(VALID_INTERACTION)))
def test_interactions_are_refused_or_flat_finite_scalars(blob):
    out = decoded_or_refused("interaction", blob)
    if len(blob) > MAX_INTERACTION_BYTES:
        assert out is None


def test_valid_payloads_decode():
    """The property is not vacuous: the unmutated payloads pass it as objects, not refusals."""
    assert len(decoded_or_refused("segment", VALID_SEGMENT).transitions) == 3
    assert decoded_or_refused("parameters", VALID_PARAMETERS).version == 3
    assert decoded_or_refused("interaction", VALID_INTERACTION)["length"] == 40


# -- chunk reassembly ------------------------------------------------------------------------------------------
STATES = st.one_of(st.sampled_from([1, 2, 3]), st.integers(-(2**31), 2**31 - 1))
FAKE_DATA = st.one_of(st.binary(max_size=40), st.text(max_size=5), st.integers(0, 50), st.none())
FAKE_STATES = st.one_of(STATES, st.none(), st.text(max_size=2), st.floats())


def _reassemble_spec(chunks: list[tuple[int, bytes]], limit: int) -> tuple[list[bytes], bool]:
    """LeRobot's receive_bytes_in_chunks contract plus the size limit: (messages, refused)."""
    out, buf = [], b""
    for state, data in chunks:
        if state not in (1, 2, 3):
            return out, True
        buf = data if state == 1 else buf + data
        if len(buf) > limit:
            return out, True
        if state == 3:
            out, buf = [*out, buf], b""
    return out, False


def _drain(chunks: list[Any], limit: int, pooled: bool = False) -> tuple[list[bytes], bool]:
    """Reassemble with ``iter_messages`` or, ``pooled``, with ``iter_messages_into`` handing every buffer back (so
    later messages are written over earlier ones)."""
    got: list[bytes] = []
    pool = BufferPool(keep=1)
    messages = iter_messages_into(iter(chunks), limit, pool) if pooled else iter_messages(iter(chunks), limit)
    t0 = time.monotonic()
    try:
        for message in messages:
            if pooled:
                assert isinstance(message, memoryview) and isinstance(message.obj, bytearray)
                pool.give_back(message.obj)
                message = bytes(message)
            assert isinstance(message, bytes) and len(message) <= limit
            got.append(message)
    except WireError as err:
        assert "\n" not in str(err)
        return got, True
    finally:
        assert time.monotonic() - t0 < SECONDS_PER_INPUT
    return got, False


POOLED = pytest.mark.parametrize("pooled", [False, True], ids=["joined", "pooled"])


@POOLED
@fuzz(400)
@given(chunks=st.lists(st.tuples(STATES, st.binary(max_size=40)), max_size=30), limit=st.integers(0, 200))
def test_real_chunk_streams_reassemble_to_spec_or_are_refused(pooled, chunks, limit):
    stream = [services_pb2.Transition(transfer_state=s, data=d) for s, d in chunks]
    assert _drain(stream, limit, pooled) == _reassemble_spec(chunks, limit)


@POOLED
@fuzz(300)
@given(chunks=st.lists(st.tuples(FAKE_STATES, FAKE_DATA), max_size=12), limit=st.integers(0, 100))
def test_fake_chunk_objects_with_hostile_attributes_are_refused_with_a_wire_error(pooled, chunks, limit):
    _drain([SimpleNamespace(transfer_state=s, data=d) for s, d in chunks], limit, pooled)


@POOLED
@fuzz(200)
@given(blobs=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5), chunk=st.integers(1, 64))
def test_lerobot_chunking_round_trips(pooled, blobs, chunk):
    with mock.patch.object(lerobot_transport, "CHUNK_SIZE", chunk):
        stream = [c for b in blobs for c in lerobot_transport.send_bytes_in_chunks(b, services_pb2.Transition)]
    assert _drain(stream, max(map(len, blobs)), pooled) == (blobs, False)
    if max(map(len, blobs)) > 1:
        assert _drain(stream, max(map(len, blobs)) - 1, pooled)[1]  # one byte over the limit: refused
    framed = [c for b in blobs for c in chunk_messages(b, services_pb2.Transition, chunk_size=chunk)]
    assert [(c.transfer_state, c.data) for c in framed] == [(c.transfer_state, c.data) for c in stream]


def test_pirl_fields_are_what_the_mutations_cover():
    covered = {path[-1] for path, _ in SEGMENT_FIELDS if path[0] == "complementary_info" and len(path) == 2}
    assert set(PIRL_FIELDS) <= covered
