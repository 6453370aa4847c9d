"""Typed decoding without third-party libraries: text (path and query
parameters, settings) into ``int``/``float``/``bool``/``str``, and JSON
values into dataclasses, with errors that name the field.

Supported types: ``str``, ``int`` (a signed 64-bit integer), ``float``,
``bool``, ``None``, ``typing.Any``, ``Optional[X]`` and other unions,
``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``, ``Literal[...]``,
``enum.Enum`` subclasses (by value) and dataclasses (nested, with
defaults; an ``Optional`` field may be absent).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from typing import Any

I64_MIN, I64_MAX = -(2**63), 2**63 - 1

_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?"
                    r"|inf|infinity|nan)\Z", re.IGNORECASE)


class DecodeError(Exception):
    """A value that does not fit its type: ``path`` is where (``""`` for the
    whole value, else ``title`` or ``items[2].title``), ``message`` what."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def parse_text(text: str, kind: Any) -> Any:
    """``text`` parsed as ``kind`` the way Rust's ``FromStr`` does: ``int``
    (ASCII digits with an optional sign, within 64 bits), ``float``,
    ``bool`` (``true``/``false``), ``str``, an ``Enum`` by value, an
    ``Optional`` of those; ``ValueError`` when it does not parse."""
    kind = _unwrap_optional(kind)
    if kind is str or kind is Any:
        return text
    if kind is bool:
        if text in ("true", "false"):
            return text == "true"
        raise ValueError(text)
    if kind is int:
        if not _INTEGER.match(text):
            raise ValueError(text)
        value = int(text)
        if not I64_MIN <= value <= I64_MAX:
            raise ValueError(text)
        return value
    if kind is float:
        if not _FLOAT.match(text):
            raise ValueError(text)
        return float(text)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        for member in kind:
            if str(member.value) == text:
                return member
        raise ValueError(text)
    if callable(kind):
        return kind(text)
    raise TypeError(f"cannot parse text as {kind!r}")


def _unwrap_optional(kind: Any) -> Any:
    args = typing.get_args(kind)
    if _is_union(kind) and len(args) == 2 and type(None) in args:
        return args[0] if args[1] is type(None) else args[1]
    return kind


def _is_union(kind: Any) -> bool:
    origin = typing.get_origin(kind)
    return origin is typing.Union or origin is types.UnionType


def describe(value: Any) -> str:
    """How serde describes a JSON value in an ``invalid type`` message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, list):
        return "a sequence"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


def expected(kind: Any) -> str:
    """What a type expects, in words."""
    if kind is str:
        return "a string"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a number"
    if kind is bool:
        return "a boolean"
    if kind is type(None) or kind is None:
        return "null"
    if dataclasses.is_dataclass(kind):
        return f"struct {kind.__name__}"
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        return "a sequence"
    if origin is dict:
        return "a map"
    if _is_union(kind):
        return " or ".join(expected(arg) for arg in typing.get_args(kind))
    return getattr(kind, "__name__", str(kind))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _one_of(names: list[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    if not quoted:
        return "there are no fields"
    if len(quoted) == 1:
        return f"expected {quoted[0]}"
    if len(quoted) == 2:
        return f"expected {quoted[0]} or {quoted[1]}"
    return f"expected one of {', '.join(quoted)}"


def decode(value: Any, kind: Any, *, path: str = "", unknown_fields: bool = False,
           int_bools: bool = False) -> Any:
    """``value`` (parsed JSON, or a row as a dict) checked against ``kind``
    and turned into it (dataclasses built, enums looked up).

    ``unknown_fields``: an object key that is not a dataclass field is
    ignored (rows may carry more columns) instead of an error (bodies).
    ``int_bools``: ``0``/``1`` are accepted as booleans (SQLite has none).
    Raises :class:`DecodeError`.
    """
    if kind is Any or kind is object:
        return value
    if kind is None or kind is type(None):
        if value is None:
            return None
        raise DecodeError(path, f"invalid type: {describe(value)}, expected null")
    if _is_union(kind):
        args = typing.get_args(kind)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return decode(value, arg, path=path, unknown_fields=unknown_fields,
                              int_bools=int_bools)
            except DecodeError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise DecodeError(path, f"invalid type: {describe(value)}, expected {expected(kind)}")
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        if value in allowed and type(value) in {type(a) for a in allowed}:
            return value
        raise DecodeError(path, f"invalid value: {describe(value)}, expected one of "
                                + ", ".join(f"`{a}`" for a in allowed))
    if kind is bool:
        if isinstance(value, bool):
            return value
        if int_bools and isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise DecodeError(path, f"invalid type: {describe(value)}, expected a boolean")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not I64_MIN <= value <= I64_MAX:
                raise DecodeError(path, f"invalid value: {describe(value)}, expected i64")
            return value
        raise DecodeError(path, f"invalid type: {describe(value)}, expected an integer")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise DecodeError(path, f"invalid type: {describe(value)}, expected a number")
    if kind is str:
        if isinstance(value, str):
            return value
        raise DecodeError(path, f"invalid type: {describe(value)}, expected a string")
    if kind is bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
            return bytes(value)
        raise DecodeError(path, f"invalid type: {describe(value)}, expected bytes")
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        for member in kind:
            if member.value == value:
                return member
        raise DecodeError(path, f"unknown variant {describe(value)}, expected one of "
                                + ", ".join(f"`{m.value}`" for m in kind))
    if origin in (list, typing.List) or kind is list:
        (item,) = typing.get_args(kind) or (Any,)
        if not isinstance(value, list):
            raise DecodeError(path, f"invalid type: {describe(value)}, expected a sequence")
        return [decode(v, item, path=_join(path, i), unknown_fields=unknown_fields,
                       int_bools=int_bools) for i, v in enumerate(value)]
    if origin is tuple or kind is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, list):
            raise DecodeError(path, f"invalid type: {describe(value)}, expected a sequence")
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif not args:
            args = (Any,) * len(value)
        elif len(args) != len(value):
            raise DecodeError(path, f"invalid length {len(value)}, expected {len(args)} items")
        return tuple(decode(v, a, path=_join(path, i), unknown_fields=unknown_fields,
                            int_bools=int_bools) for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or kind is dict:
        _, item = typing.get_args(kind) or (str, Any)
        if not isinstance(value, dict):
            raise DecodeError(path, f"invalid type: {describe(value)}, expected a map")
        return {k: decode(v, item, path=_join(path, k), unknown_fields=unknown_fields,
                          int_bools=int_bools) for k, v in value.items()}
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return _decode_dataclass(value, kind, path, unknown_fields, int_bools)
    raise TypeError(f"trellis_sdk cannot decode into {kind!r}")


def _decode_dataclass(value: Any, cls: type, path: str, unknown_fields: bool,
                      int_bools: bool) -> Any:
    if not isinstance(value, dict):
        raise DecodeError(path, f"invalid type: {describe(value)}, expected struct {cls.__name__}")
    hints = _hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    if not unknown_fields:
        for key in value:
            if key not in names:
                raise DecodeError(path, f"unknown field `{key}`, {_one_of(names)}")
    kwargs = {}
    for field in fields:
        kind = hints.get(field.name, Any)
        if field.name in value:
            kwargs[field.name] = decode(value[field.name], kind, path=_join(path, field.name),
                                        unknown_fields=unknown_fields, int_bools=int_bools)
        elif (field.default is dataclasses.MISSING
              and field.default_factory is dataclasses.MISSING):
            if _is_union(kind) and type(None) in typing.get_args(kind):
                kwargs[field.name] = None
            else:
                raise DecodeError(path, f"missing field `{field.name}`")
    return cls(**kwargs)
