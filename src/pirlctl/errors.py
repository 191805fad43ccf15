"""Known errors become one line that names the problem and the fix (tracebacks only with --debug)."""

from __future__ import annotations


class PirlError(Exception):
    """Base of pirlctl's own errors: their message is already the one line a user should read."""


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


def one_line(exc: BaseException) -> str:
    """A single-line message for a user."""
    cause = explain(exc)
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__
