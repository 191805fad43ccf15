"""Decoders refuse bad payloads with a reason; PI-RL interactions are JSON, never pickles."""

from __future__ import annotations

import io
import pickle

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


def test_parameters_round_trip_and_validation():
    blob = encode_parameters(3, {"policy": {"w": torch.ones(2)}}, stop=True, base_fingerprint="abc")
    msg = decode_parameters(blob)
    assert (msg.version, msg.stop, msg.base_fingerprint) == (3, True, "abc")
    with pytest.raises(WireError, match="empty"):
        decode_parameters(b"")
    buf = io.BytesIO()
    torch.save({"version": -1, "stop": False, "weights": {}}, buf)
    with pytest.raises(WireError, match="invalid version"):
        decode_parameters(buf.getvalue())


def test_interactions_are_json_scalars_only():
    assert decode_interaction(encode_interaction({"a": 1, "b": True})) == {"a": 1, "b": True}
    with pytest.raises(WireError, match="not UTF-8 JSON"):
        decode_interaction(pickle.dumps({"a": 1}))
    with pytest.raises(WireError, match="scalar"):
        decode_interaction(b'{"a": [1, 2]}')
    with pytest.raises(WireError, match="not finite"):
        decode_interaction(b'{"a": NaN}')
