"""Config typos and wrong types as one line, before draccus sees them.

draccus reports an unknown override flag through argparse (a usage dump of every field, ~500 lines, then
SystemExit), an unknown key in a file as "The fields `x` are not valid for Y" without a suggestion, and a wrong type
without the field's dotted name. :func:`check_settings` walks the file's data merged with the dotted overrides
against the dataclass tree, the way draccus will decode it (``policy`` and ``algorithm`` are draccus ChoiceRegistry
fields: their ``type`` picks the class), and raises :class:`ConfigFieldError` with one line:

    unknown setting algorithm.clip_ratoi (flag --algorithm.clip_ratoi=0.3); did you mean algorithm.clip_ratio?
    algorithm.clip_ratio="abc" (file run.json) is not a valid float; give a float

:func:`draccus_errors` turns whatever draccus still raises (and its SystemExit) into the same kind of line.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pirlctl.errors import PirlError, explain

SUGGESTIONS = 3  # closest valid names offered for an unknown one
TYPE_KEY = "type"  # draccus's CHOICE_TYPE_KEY: names the registered subclass of a ChoiceRegistry field


class ConfigFieldError(PirlError, ValueError):
    """A setting of the run config is unknown or has the wrong type; the message names it and the fix."""


def split_overrides(args: list[str]) -> dict[str, str]:
    """``--a.b=c`` / ``--a.b c`` -> ``{"a.b": "c"}`` (raw strings, as draccus's argparse receives them)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigFieldError(f"unexpected argument {arg!r}; overrides look like --section.field=value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ConfigFieldError(f"--{key} has no value; write --{key}=VALUE")
            i += 1
            value = args[i]
        out[key] = value
        i += 1
    return out


def check_settings(cls: type, data: dict[str, Any], overrides: list[str], *, source: str) -> None:
    """Raise :class:`ConfigFieldError` for the first unknown setting or badly typed value in ``data`` (a config
    file's content, named ``source``) merged with ``overrides`` (dotted flags); silent when draccus will accept it.

    Must run inside ``draccus.config_type(...)``: flag values are parsed by that format, as draccus does.
    """
    import mergedeep
    from draccus import cfgparsing
    from draccus.utils import deflatten

    if not isinstance(data, dict):
        raise ConfigFieldError(
            f"{source} holds a JSON {type(data).__name__}, not an object; see configs/ for the shape"
        )
    flags = {key: raw for key, raw in split_overrides(overrides).items() if key != "config_path"}
    parsed = {key: cfgparsing.parse_string(raw) for key, raw in flags.items()}
    tree = mergedeep.merge(copy.deepcopy(data), deflatten(parsed, sep="."))
    _Walk(flags, source).dataclass(cls, tree, ())


class _Walk:
    """One walk of the merged tree; knows which dotted keys came from flags, to say where a bad value was set."""

    def __init__(self, flags: dict[str, str], source: str) -> None:
        self.flags = flags
        self.source = source

    def origin(self, dotted: str) -> str:
        for key, raw in self.flags.items():
            if key == dotted or key.startswith(dotted + "."):
                return f"flag --{key}={raw}"
        return f"file {self.source}"

    def dataclass(self, cls: type, data: dict[str, Any], path: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        for key, value in data.items():
            if key not in names:
                raise ConfigFieldError(self.unknown(path, key, names))
            self.value(hints.get(key, Any), value, (*path, key))

    def value(self, ftype: Any, value: Any, path: tuple[str, ...]) -> None:
        from draccus.choice_types import ChoiceType
        from draccus.parsers.decoding import decode

        inner, optional = _strip_optional(ftype)
        if value is None and optional:
            return
        dotted = ".".join(path)
        section = isinstance(inner, type) and (issubclass(inner, ChoiceType) or dataclasses.is_dataclass(inner))
        if section and not isinstance(value, dict):
            raise ConfigFieldError(
                f"{dotted}={value!r} ({self.origin(dotted)}) is a group of settings, not a value; "
                f"set its fields instead, e.g. {dotted}.<field>=..."
            )
        if section and issubclass(inner, ChoiceType):
            rest = {k: v for k, v in value.items() if k != TYPE_KEY}
            self.dataclass(self.choice(inner, value.get(TYPE_KEY), path), rest, path)
        elif section:
            self.dataclass(inner, value, path)
        else:
            try:
                decode(ftype, value)
            except Exception as err:  # noqa: BLE001 - any decode failure is this field's wrong type
                raise ConfigFieldError(
                    f"{dotted}={value!r} ({self.origin(dotted)}) is not a valid {type_name(ftype)}; "
                    f"give {_a(type_name(ftype))}{' in JSON syntax' if typing.get_origin(inner) else ''}"
                ) from err

    def choice(self, base: Any, name: Any, path: tuple[str, ...]) -> type:
        """The registered subclass ``name`` of a ChoiceRegistry field (e.g. ``algorithm.type = "pi_rl"``)."""
        dotted = ".".join((*path, TYPE_KEY))
        known = sorted(base.get_known_choices())
        name = name if name is not None else base.default_choice_name()
        if name is None:
            raise ConfigFieldError(f"{dotted} is not set; set it to one of {', '.join(known)}")
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=SUGGESTIONS)
            hint = f"did you mean {' or '.join(close)}?" if close else f"use one of {', '.join(known)}"
            raise ConfigFieldError(f"unknown {dotted} {name!r} ({self.origin(dotted)}); {hint}")
        return base.get_choice_class(name)

    def unknown(self, path: tuple[str, ...], key: str, names: list[str]) -> str:
        dotted = ".".join((*path, key))
        origin = self.origin(dotted)
        # a flag's full key: a typo in a section name keeps the rest (algorithmm.gamma -> algorithm.gamma)
        flag = next((k for k in self.flags if k == dotted or k.startswith(dotted + ".")), dotted)
        rest = flag[len(dotted) :]
        close = difflib.get_close_matches(key, names, n=SUGGESTIONS)
        shown = [".".join((*path, name)) + rest for name in close]
        if shown:
            return f"unknown setting {flag} ({origin}); did you mean {' or '.join(shown)}?"
        nearest = difflib.get_close_matches(key, names, n=SUGGESTIONS, cutoff=0.0)
        where = ".".join(path) or "the top level"
        return f"unknown setting {flag} ({origin}); {where} has no such field (closest: {', '.join(nearest)})"


def _strip_optional(ftype: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(ftype, False)``."""
    if typing.get_origin(ftype) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ftype) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(ftype)):
            return args[0], True
    return ftype, False


def type_name(ftype: Any) -> str:
    """``float``, ``list[float]``, ``str or null``: the expected type as a user reads it."""
    inner, optional = _strip_optional(ftype)
    plain = isinstance(inner, type) and typing.get_origin(inner) is None
    name = inner.__name__ if plain else str(inner).replace("typing.", "")
    return f"{name} or null" if optional else name


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


@contextmanager
def draccus_errors(source: str) -> Iterator[None]:
    """Whatever draccus still rejects becomes one :class:`ConfigFieldError` line (never its usage dump); a config
    class's own validation error (a :class:`PirlError` raised while draccus builds it) passes through unchanged."""
    import argparse

    from draccus.utils import DecodingError, DraccusException

    try:
        yield
    except (SystemExit, argparse.ArgumentError) as err:  # argparse (draccus.parse with exit_on_error left on)
        raise ConfigFieldError(f"overrides of {source} rejected: {err}; write them as --section.field=value") from err
    except DraccusException as err:
        cause = explain(err)
        if isinstance(cause, PirlError):
            raise
        where = ".".join(err.key_path) if isinstance(err, DecodingError) and err.key_path else "the config"
        text = cause.message if isinstance(cause, DecodingError) else str(cause)
        first = (str(text).strip().splitlines() or [type(cause).__name__])[0]
        raise ConfigFieldError(f"{where} ({source}): {first}") from err
