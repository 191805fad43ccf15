"""Known errors become one line that names the problem and the fix (tracebacks only with --debug)."""

from __future__ import annotations


class PirlError(Exception):
    """Base of pirlctl's own errors: their message is already the one line a user should read."""


class StoppedByUserError(PirlError):
    """Ctrl-C, handled: what was saved and how to go on is in the message. The CLI exits 130, as for SIGINT."""


def _chain(exc: BaseException) -> list[BaseException]:
    seen: set[int] = set()
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception (draccus wraps a field's ValueError in a generic parsing error)."""
    return _chain(exc)[-1]


def explain(exc: BaseException) -> BaseException:
    """The exception to show: the outermost pirlctl error in the chain, else the root cause."""
    for e in _chain(exc):
        if isinstance(e, PirlError):
            return e
    return root_cause(exc)


def _rpc_text(exc: BaseException) -> str | None:
    """A gRPC error as ``CODE: details`` (its ``str`` is a multi-line dump whose first line says nothing)."""
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if not (callable(code) and callable(details)):
        return None
    try:
        status = code()
        return f"gRPC {getattr(status, 'name', status)}: {details()}"
    except Exception:  # noqa: BLE001 - a half-built RpcError: fall back to its str
        return None


def one_line(exc: BaseException) -> str:
    """A single-line message for a user."""
    cause = explain(exc)
    text = (_rpc_text(cause) or str(cause)).strip()
    return text.splitlines()[0] if text else type(cause).__name__
