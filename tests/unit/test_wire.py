"""Decoders refuse bad payloads with a reason; PI-RL interactions are JSON, never pickles."""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace

import pytest
import torch

from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition
from pirlctl.runtime.wire import (
    WireError,
    decode_interaction,
    decode_parameters,
    decode_segment,
    encode_interaction,
    encode_parameters,
    encode_segment,
)

OBS = {"observation.state": (3,)}
CHAIN = (3, 2, 2)


def _tr(**kw) -> ChunkTransition:
    base = dict(
        observation={"observation.state": torch.zeros(3)},
        chain=torch.zeros(*CHAIN),
        stochastic=torch.tensor([True, False]),
        log_prob=torch.tensor(-1.0),
        value=0.5,
        reward=1.0,
        terminated=True,
        truncated=False,
        bootstrap_value=0.0,
        policy_version=2,
        extra={"actor_id": 1},
    )
    base.update(kw)
    return ChunkTransition(**base)


def _encode(trs):
    return encode_segment(trs, actions=[torch.zeros(2, 4)] * len(trs), env_steps=[2] * len(trs))


def test_segment_round_trip():
    seg = decode_segment(_encode([_tr(), _tr()]), expected_obs=OBS, chain_shape=CHAIN, log_prob_shape=())
    assert (seg.policy_version, seg.actor_id, seg.env_steps, len(seg.transitions)) == (2, 1, 4, 2)
    assert seg.transitions[0].terminated and seg.transitions[0].reward == 1.0


def test_a_preprocessed_observation_keeps_the_pipelines_domain_id_and_bool_attention_mask():
    """What LeRobot's preprocessor adds (X-VLA's domain_id [], a tokenizer step's bool attention mask) reaches the
    learner, as the learner's expected shapes list them (runtime.build.expected_observation_shapes)."""
    obs = {
        "observation.state": torch.zeros(3),
        "domain_id": torch.tensor(0),
        "observation.language.attention_mask": torch.tensor([True, True, False, False]),
    }
    expected = {"observation.state": (3,), "domain_id": (), "observation.language.attention_mask": (4,)}
    seg = decode_segment(_encode([_tr(observation=obs)]), expected_obs=expected, chain_shape=CHAIN, log_prob_shape=())
    got = seg.transitions[0].observation
    assert got["domain_id"].dtype == torch.int64 and torch.equal(
        got["observation.language.attention_mask"], obs["observation.language.attention_mask"]
    )
    with pytest.raises(WireError, match="'domain_id' missing"):
        decode_segment(
            _encode([_tr(observation={"observation.state": torch.zeros(3)})]),
            expected_obs=expected,
            chain_shape=CHAIN,
            log_prob_shape=(),
        )


@pytest.mark.parametrize(
    ("trs", "needle"),
    [
        ([_tr(chain=torch.zeros(4, 2, 2))], "chain must be"),
        ([_tr(log_prob=torch.tensor(float("nan")))], "NaN"),
        ([_tr(observation={"observation.state": torch.zeros(5)})], "shape"),
        ([_tr(observation={})], "missing"),
        ([_tr(reward=float("inf"))], "reward must be a finite"),
        ([_tr(), _tr(policy_version=3)], "one policy version"),
    ],
)
def test_bad_segments_are_refused_naming_the_problem(trs, needle):
    with pytest.raises(WireError, match=needle):
        decode_segment(_encode(trs), expected_obs=OBS, chain_shape=CHAIN, log_prob_shape=())


def test_missing_pirl_fields_truncated_and_pickled_payloads_are_refused():
    blob = _encode([_tr()])
    with pytest.raises(WireError, match="undecodable"):
        decode_segment(blob[: len(blob) // 2], expected_obs=OBS, chain_shape=CHAIN, log_prob_shape=())
    buf = io.BytesIO()
    torch.save([{"state": {}, "reward": 0.0, "complementary_info": {"chain": torch.zeros(1)}}], buf)
    with pytest.raises(WireError, match="missing PI-RL field"):
        decode_segment(buf.getvalue(), expected_obs={}, chain_shape=CHAIN, log_prob_shape=())

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(WireError, match="undecodable"):
        decode_segment(pickle.dumps([Evil()]), expected_obs=OBS, chain_shape=CHAIN, log_prob_shape=())


def test_parameters_round_trip_every_dtype_and_shape_as_views():
    weights = {
        "policy": {
            "w": torch.randn(3, 4),
            "i": torch.arange(5),
            "empty": torch.zeros(0, 3),
            "scalar": torch.tensor(2.5, dtype=torch.float64),
            "strided": torch.randn(4, 6)[:, ::2],  # non-contiguous: sent contiguous
        },
        "value_head": {"h": torch.ones(2, dtype=torch.bfloat16), "mask": torch.tensor([True, False])},
    }
    blob = encode_parameters(3, weights, stop=True, base_fingerprint="abc")
    msg = decode_parameters(blob)
    assert (msg.version, msg.stop, msg.base_fingerprint) == (3, True, "abc")
    for group, sd in weights.items():
        assert list(msg.weights[group]) == list(sd)
        for key, t in sd.items():
            got = msg.weights[group][key]
            assert got.dtype == t.dtype and got.shape == t.shape and torch.equal(got, t)


def test_encoding_into_a_large_enough_buffer_reuses_it_and_snapshots_the_tensors():
    w = torch.zeros(1000)
    out = bytearray()
    first = encode_parameters(1, {"p": {"w": w}}, out=out)
    assert first.obj is not out  # too small: a new buffer
    again = encode_parameters(2, {"p": {"w": w + 1}}, out=first.obj)
    assert again.obj is first.obj and len(again) == len(first)
    w += 7  # training goes on after the push: the encoded bytes do not change
    assert torch.equal(decode_parameters(again).weights["p"]["w"], torch.ones(1000))


def _raw(header: object, data_len: int = 64, *, magic: bytes = b"PIRLPRM1", hlen: int | None = None) -> bytes:
    import json

    h = json.dumps(header).encode() if not isinstance(header, bytes) else header
    body = h + b"\0" * (-(len(h) + 24) % 64 + data_len)
    total = 24 + len(body)
    return magic + (len(h) if hlen is None else hlen).to_bytes(8, "little") + total.to_bytes(8, "little") + body


def _hdr(**kw) -> dict:
    return {"version": 1, "stop": False, "base_fingerprint": "", "tensors": [], **kw}


@pytest.mark.parametrize(
    ("blob", "needle"),
    [
        (b"", "empty payload"),
        (pickle.dumps({"version": 1}), "bad magic"),
        (_raw(_hdr(), magic=b"PIRLPRM0"), "bad magic"),
        (_raw(_hdr(), hlen=2**40), "header length"),
        (_raw(b"{not json"), r"undecodable header \(JSONDecodeError\)"),
        (_raw(b"\xff\xfe"), r"undecodable header \(UnicodeDecodeError\)"),
        (_raw(b"[" * 60_000), r"undecodable header \(RecursionError\)"),
        (_raw([1, 2]), "expected a header"),
        (_raw(_hdr(version=-1)), "invalid version -1"),
        (_raw(_hdr(version=True)), "invalid version True"),
        (_raw(_hdr(version=2**63)), "invalid version an out-of-range int"),
        (_raw(_hdr(version="3")), "invalid version '3'"),
        (_raw(_hdr(stop=1)), "stop must be a bool"),
        (_raw(_hdr(base_fingerprint=None)), "base_fingerprint"),
        (_raw(_hdr(tensors={})), "tensors must be a list"),
        (_raw(_hdr(tensors=[["p", "w", "float32", [2]]])), "entry 0 is not"),
        (_raw(_hdr(tensors=[["p", "w", "complex64", [2], 64, 16]])), "unsupported dtype 'complex64'"),
        (_raw(_hdr(tensors=[["p", "w", "float32", [-1], 64, 4]])), "invalid shape"),
        (_raw(_hdr(tensors=[["p", "w", "float32", [1] * 17, 64, 4]])), "invalid shape"),
        (_raw(_hdr(tensors=[["p", "w", "float32", [3], 128, 8]])), r"shape \(3,\) of float32 is not 8 bytes"),
        (_raw(_hdr(tensors=[["p", "w", "float32", [2], 0, 8]])), "misplaced"),  # over the header
        (_raw(_hdr(tensors=[["p", "w", "float32", [2], 130, 8]])), "misplaced"),  # unaligned
        (_raw(_hdr(tensors=[["p", "w", "float32", [64], 128, 256]])), "misplaced"),  # past the end
        (
            _raw(_hdr(tensors=[["p", "a", "float32", [32], 512, 128], ["p", "b", "float32", [2], 576, 8]]), 640),
            "misplaced",  # overlapping
        ),
        (
            _raw(_hdr(tensors=[["p", "a", "float32", [2], 512, 8], ["p", "a", "float32", [2], 576, 8]]), 640),
            "appears twice",
        ),
    ],
)
def test_hostile_parameters_are_refused_with_a_wire_error(blob, needle):
    with pytest.raises(WireError, match=needle) as exc:
        decode_parameters(blob)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 200


def test_interactions_are_json_scalars_only():
    assert decode_interaction(encode_interaction({"a": 1, "b": True})) == {"a": 1, "b": True}
    with pytest.raises(WireError, match="not UTF-8 JSON"):
        decode_interaction(pickle.dumps({"a": 1}))
    with pytest.raises(WireError, match="scalar"):
        decode_interaction(b'{"a": [1, 2]}')
    with pytest.raises(WireError, match="not finite"):
        decode_interaction(b'{"a": NaN}')


# -- hostile payloads that used to escape as other exception types, or pass unchecked -------------------------------
def _dumps(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _item(**overrides):
    """One Transition dict as encode_segment writes it; ``overrides`` replace top-level or complementary_info keys."""
    item = pickle.loads(pickle.dumps(torch.load(io.BytesIO(_encode([_tr()])), weights_only=True)[0]))
    for key, value in overrides.items():
        (item if key in item else item["complementary_info"])[key] = value
    return item


def _decode_items(*items):
    return decode_segment(_dumps(list(items)), expected_obs=OBS, chain_shape=CHAIN, log_prob_shape=())


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"chain": torch.zeros(*CHAIN, dtype=torch.int64)}, "chain has dtype torch.int64"),
        ({"chain": torch.zeros(*CHAIN).to_sparse()}, "chain must be a dense CPU tensor"),
        ({"log_prob": torch.tensor(True)}, "log_prob has dtype torch.bool"),
        ({"log_prob": torch.tensor(-1)}, "log_prob has dtype torch.int64"),
        ({"log_prob": torch.tensor([-1.0])}, r"log_prob must have shape \(\), got \(1,\)"),
        ({"log_prob": torch.tensor(float("-inf"))}, "log_prob has NaN/Inf"),
        ({"chain": torch.full(CHAIN, 1e300, dtype=torch.float64)}, "chain has NaN/Inf"),  # inf as float32
        ({"stochastic": torch.tensor([0.5, 0.0])}, "stochastic has dtype torch.float32"),
        ({"stochastic": torch.tensor(True)}, r"stochastic must have shape \(2,\)"),
        ({"state": [torch.zeros(3)]}, "missing state"),
        ({"state": {"observation.state": torch.zeros(3, dtype=torch.complex64)}}, "dtype torch.complex64"),
        ({"state": {"observation.state": torch.zeros(3).to_sparse()}}, "dense CPU tensor"),
        ({"state": {"observation.state": torch.tensor([0.0, float("nan"), 0.0])}}, "NaN/Inf"),
        ({"state": {"observation.state": [0.0, 0.0, 0.0]}}, "must be a tensor, got list"),
        ({"reward": 10**400}, "reward must be a finite number, got an out-of-range int"),
        ({"value": True}, "value must be a finite number, got True"),
        ({"bootstrap_value": torch.tensor(0.0)}, "bootstrap_value must be a finite number, got Tensor"),
        ({"done": torch.ones(2, dtype=torch.bool)}, "done and truncated must be bools"),
        ({"truncated": 1}, "done and truncated must be bools"),
        ({"policy_version": True}, "policy_version and actor_id must be non-negative integers"),
        ({"policy_version": 2**63}, "policy_version and actor_id"),
        ({"actor_id": -1}, "policy_version and actor_id"),
        ({"env_steps": -2}, "env_steps must be a non-negative integer"),
        ({"env_index": "1"}, "env_index must be a non-negative integer"),
        ({"complementary_info": None}, "missing complementary_info"),
    ],
)
def test_hostile_transition_fields_are_refused_with_a_wire_error(overrides, needle):
    with pytest.raises(WireError, match=needle) as exc:
        _decode_items(_item(**overrides))
    assert "\n" not in str(exc.value)


def test_a_valid_segment_decodes_to_detached_float_tensors():
    seg = _decode_items(_item(chain=torch.zeros(*CHAIN, dtype=torch.float64, requires_grad=True)))
    tr = seg.transitions[0]
    assert tr.chain.dtype == torch.float32 and not tr.chain.requires_grad
    assert tr.stochastic.dtype == torch.bool and tr.log_prob.dtype == torch.float32
    assert (tr.terminated, tr.truncated, tr.policy_version) == (True, False, 2)
    assert tr.extra == {"actor_id": 1, "env_index": 0}


def test_a_segment_of_many_references_to_one_transition_is_refused_by_count():
    from pirlctl.runtime.wire import MAX_SEGMENT_TRANSITIONS

    blob = _dumps([_item()] * (MAX_SEGMENT_TRANSITIONS + 1))  # pickle memo: a few hundred KB
    with pytest.raises(WireError, match="exceed the"):
        decode_segment(blob, expected_obs=OBS, chain_shape=CHAIN, log_prob_shape=())


def test_payloads_over_the_byte_limits_are_refused_before_decoding(monkeypatch):
    from pirlctl.runtime import wire

    blob = _encode([_tr()])
    monkeypatch.setattr(wire, "MAX_TRANSITIONS_BYTES", len(blob) - 1)
    with pytest.raises(WireError, match="exceeds the"):
        decode_segment(blob, expected_obs=OBS, chain_shape=CHAIN, log_prob_shape=())
    params = encode_parameters(0, {})
    monkeypatch.setattr(wire, "MAX_PARAMETERS_BYTES", len(params) - 1)
    with pytest.raises(WireError, match="exceeds the"):
        decode_parameters(params)
    assert decode_interaction(b" " * (wire.MAX_INTERACTION_BYTES - 2) + b"{}") == {}
    with pytest.raises(WireError, match="exceeds"):
        decode_interaction(b" " * (wire.MAX_INTERACTION_BYTES - 1) + b"{}")


@pytest.mark.parametrize(
    ("blob", "needle"),
    [
        (b"[" * 60_000, r"not UTF-8 JSON \(RecursionError\)"),  # was a RecursionError
        (b'{"a": ' + b"1" * 5000 + b"}", r"not UTF-8 JSON \(ValueError\)"),  # over Python's int-digit limit
        (b'{"a": ' + str(2**63).encode() + b"}", "out of the int64 range"),
        (b'{"a": -1e999}', "not finite"),
        (b'{"a": {"b": 1}}', "must be a scalar"),
        (b'{"' + b"k" * 1000 + b'": null}', r"field 'kkkk.*\.\.\. must be a scalar"),
        (b"\xef\xbb\xbf{}", "not UTF-8 JSON"),
        (b"[]", "expected a JSON object"),
    ],
)
def test_hostile_interactions_are_refused_with_a_wire_error(blob, needle):
    with pytest.raises(WireError, match=needle) as exc:
        decode_interaction(blob)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 200


# -- chunk reassembly (transport.iter_messages) ----------------------------------------------------------------
def _chunks(*pairs):
    from lerobot.transport import services_pb2

    return [services_pb2.Transition(transfer_state=s, data=d) for s, d in pairs]


def test_chunks_reassemble_as_lerobot_sends_them():
    from lerobot.transport import services_pb2
    from lerobot.transport.utils import send_bytes_in_chunks

    from pirlctl.runtime.transport import iter_messages

    blob = bytes(range(256)) * 20_000  # 5 MB: BEGIN, MIDDLE, END chunks of 2 MiB
    chunks = list(send_bytes_in_chunks(blob, services_pb2.Transition)) + list(
        send_bytes_in_chunks(b"small", services_pb2.Transition)  # one chunk: a lone END
    )
    assert [c.transfer_state for c in chunks] == [1, 2, 3, 3]
    assert list(iter_messages(iter(chunks), limit=len(blob))) == [blob, b"small"]
    # BEGIN starts over; a stream that ends mid-message yields nothing for it
    assert list(iter_messages(iter(_chunks((1, b"lost"), (1, b"a"), (2, b"b"), (3, b"c"), (1, b"cut"))), 10)) == [
        b"abc"
    ]


@pytest.mark.parametrize(
    ("chunks", "needle"),
    [
        (_chunks((0, b"x")), "unknown transfer state 0"),
        (_chunks((7, b"x")), "unknown transfer state 7"),
        (_chunks((1, b"12345"), (2, b"67")), "message exceeds 6 bytes"),
        ([SimpleNamespace(transfer_state=3, data="text")], "chunk data must be bytes, got str"),
        ([SimpleNamespace(transfer_state=1, data=10**12)], "chunk data must be bytes, got int"),
        ([SimpleNamespace(transfer_state=None, data=b"")], "unknown transfer state NoneType"),
        ([object()], "chunk data must be bytes, got NoneType"),
    ],
)
def test_bad_chunk_streams_are_refused_with_a_wire_error(chunks, needle):
    from pirlctl.runtime.transport import iter_messages

    with pytest.raises(WireError, match=needle):
        list(iter_messages(iter(chunks), limit=6))


def test_pooled_reassembly_writes_into_a_buffer_given_back_and_never_one_still_held():
    from lerobot.transport import services_pb2

    from pirlctl.runtime.transport import BufferPool, chunk_messages, iter_messages_into

    pool = BufferPool(keep=2)
    a, b = bytes(range(256)) * 20_000, bytes(range(255, -1, -1)) * 20_000  # 5 MB each: 3 chunks

    def stream(*blobs):
        return iter([c for blob in blobs for c in chunk_messages(blob, services_pb2.Parameters)])

    first = next(iter_messages_into(stream(a), limit=len(a), pool=pool))
    assert bytes(first) == a and pool.allocations == 1
    pool.give_back(first.obj)
    second = next(iter_messages_into(stream(b), limit=len(b), pool=pool))
    assert second.obj is first.obj and bytes(second) == b and pool.allocations == 1  # reused, no allocation
    held = second  # not given back: the next message must not land in it
    third = next(iter_messages_into(stream(a), limit=len(a), pool=pool))
    assert third.obj is not held.obj and bytes(held) == b and bytes(third) == a and pool.allocations == 2
    # a buffer that is too small grows (in place when nothing views it) and the size hint carries over
    small = BufferPool()
    got = list(iter_messages_into(stream(b"xy", a), limit=len(a), pool=small))
    assert [bytes(g) for g in got] == [b"xy", a] and small.size_hint == len(a)
    with pytest.raises(WireError, match="message exceeds"):
        list(iter_messages_into(stream(a), limit=len(a) - 1, pool=pool))


def test_a_parameters_message_announces_its_size_so_the_receive_buffer_is_allocated_once():
    from lerobot.transport import services_pb2

    from pirlctl.runtime.transport import BufferPool, chunk_messages, iter_messages_into
    from pirlctl.runtime.wire import parameters_size

    blob = encode_parameters(1, {"p": {"w": torch.randn(3_000_000)}})  # 12 MB: 6 chunks
    assert parameters_size(bytes(blob[:64])) == len(blob) and parameters_size(b"PK\x03\x04") is None
    pool = BufferPool()
    chunks = list(chunk_messages(blob, services_pb2.Parameters))
    got = next(iter_messages_into(iter(chunks), len(blob), pool, parameters_size))
    assert len(got.obj) == len(blob) and bytes(got) == bytes(blob)  # exactly sized: no doubling, no copy
    with pytest.raises(WireError, match="announces"):  # refused from the first chunk, before allocating
        next(iter_messages_into(iter(chunks[:1]), len(blob) - 1, BufferPool(), parameters_size))
