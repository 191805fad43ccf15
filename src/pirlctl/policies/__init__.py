"""Flow-policy adapters, looked up by the LeRobot policy's ``name``."""

from __future__ import annotations

from typing import Any

from torch import nn

from pirlctl.policies.base import FlowPolicyAdapter


def make_flow_adapter(policy: nn.Module) -> FlowPolicyAdapter:
    """The PI-RL adapter for a policy; one-line error for policies without one."""
    name = getattr(policy, "name", type(policy).__name__)
    if name == "xvla":
        from pirlctl.policies.xvla import XVLAAdapter

        return XVLAAdapter(policy)
    if name == "toy_flow":
        from pirlctl.policies.toy import ToyAdapter

        adapter: Any = ToyAdapter(policy)  # type: ignore[arg-type]
        return adapter
    raise ValueError(f"policy type {name!r} has no PI-RL flow adapter; supported: xvla (π0, π0.5, SmolVLA are planned)")
