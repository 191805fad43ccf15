"""Flow-policy adapters, looked up by the LeRobot policy's ``name`` (its config's ``type``)."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from pirlctl.errors import PirlError
from pirlctl.policies.base import FlowPolicyAdapter


class NoAdapterError(PirlError, ValueError):
    """The policy type has no PI-RL flow adapter."""


# policy name -> "module:class"; π0, π0.5 and SmolVLA share the velocity convention (policies/velocity.py)
ADAPTERS = {
    "xvla": "pirlctl.policies.xvla:XVLAAdapter",
    "pi0": "pirlctl.policies.pi0:PI0Adapter",
    "pi05": "pirlctl.policies.pi05:PI05Adapter",
    "smolvla": "pirlctl.policies.smolvla:SmolVLAAdapter",
    "toy_flow": "pirlctl.policies.toy:ToyAdapter",
}


def make_flow_adapter(policy: nn.Module) -> FlowPolicyAdapter:
    """The PI-RL adapter for a policy; one-line error for policies without one."""
    name = getattr(policy, "name", type(policy).__name__)
    if name not in ADAPTERS:
        supported = ", ".join(n for n in ADAPTERS if n != "toy_flow")
        raise NoAdapterError(f"policy type {name!r} has no PI-RL flow adapter; set policy.type to one of: {supported}")
    module, cls = ADAPTERS[name].split(":")
    adapter: Any = getattr(importlib.import_module(module), cls)(policy)
    return adapter
