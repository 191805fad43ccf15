"""bench/policy_params.py counts push bytes from the learner's own PiRLAlgorithm; on the tiny builds its figure
equals the bytes of the tensors ``get_weights()`` really returns, and the scopes shrink the push in order."""

from __future__ import annotations

import pytest
from bench.policy_params import push_bytes

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm
from pirlctl.policies.loading import CONFIGS_DIR, build_policy, load_policy_config


def _tiny(kind: str):
    return build_policy(load_policy_config(CONFIGS_DIR / "policy" / f"tiny_{kind}.json"))


@pytest.mark.parametrize("kind", ["pi0", "pi05", "smolvla"])
def test_push_bytes_equal_the_bytes_get_weights_returns(kind):
    counted = {}
    for scope, blocks in (("all", 0), ("action_expert", 0), ("action_expert", 1)):
        counted[(scope, blocks)] = push_bytes(_tiny(kind), scope, blocks)
        weights = PiRLAlgorithm(_tiny(kind), PiRLConfig(trainable=scope, trainable_blocks=blocks)).get_weights()
        sent = sum(t.numel() * t.element_size() for group in weights.values() for t in group.values())
        assert counted[(scope, blocks)] == sent
        assert not any("lm_head" in name for name in weights["policy"])  # never used, never pushed
    assert counted[("all", 0)] >= counted[("action_expert", 0)] > counted[("action_expert", 1)]
