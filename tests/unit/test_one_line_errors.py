"""``errors.one_line``: what a user reads of an exception."""

from __future__ import annotations

import grpc

from pirlctl.errors import PirlError, one_line


class _Rendezvous(grpc.RpcError):
    """What a failed streaming call raises: its ``str`` starts with a line that names no reason."""

    def __str__(self) -> str:
        return "<_MultiThreadedRendezvous of RPC that terminated with:\n\tstatus = StatusCode.UNAVAILABLE\n\t...>"

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "failed to connect to all addresses; Connection refused"


def test_a_grpc_error_is_its_code_and_details_on_one_line():
    assert one_line(_Rendezvous()) == "gRPC UNAVAILABLE: failed to connect to all addresses; Connection refused"
    try:
        raise PirlError("the learner is gone") from _Rendezvous()
    except PirlError as err:
        assert one_line(err) == "the learner is gone"  # our own message wins over its cause


def test_other_errors_keep_their_first_line():
    assert one_line(ValueError("bad value\nmore detail")) == "bad value"
    assert one_line(KeyError()) == "KeyError"
