"""Known errors become one line that names the problem and the fix (tracebacks only with --debug)."""

from __future__ import annotations


def root_cause(exc: BaseException) -> BaseException:
    """The innermost meaningful exception: draccus wraps a field's ValueError in a generic parsing error."""
    seen: set[int] = set()
    best = exc
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        best = cur
        cur = cur.__cause__ or cur.__context__
    return best


def one_line(exc: BaseException) -> str:
    """A single-line message for a user: the root cause's text, first line only."""
    cause = root_cause(exc)
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return text
