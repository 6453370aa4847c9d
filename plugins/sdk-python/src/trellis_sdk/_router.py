"""Route patterns, and a router that matches paths exactly as the host's
(matchit 0.9) does, for :mod:`trellis_sdk.testing`.

A pattern is a path of ``/``-separated segments, each static text, a
``{name}`` (one non-empty segment) or, last, a ``{*name}`` (the non-empty
rest of the path, slashes included). ``{{`` and ``}}`` are literal braces.
A static segment wins over ``{name}``, which wins over ``{*name}``, whatever
the declaration order, with backtracking: ``/users/me`` goes to
``/users/me`` beside ``/users/{id}``, and ``/a/b/c`` to ``/a/{x}/c`` when
``/a/b/d`` is the only static route.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class PatternError(ValueError):
    """A route pattern the host would refuse to load."""


@dataclass(frozen=True)
class Segment:
    """One segment of a pattern: ``kind`` is ``static``, ``param`` or
    ``rest``; ``text`` the literal text or the parameter's name."""

    kind: str
    text: str


def parse_pattern(pattern: str) -> list[Segment]:
    """The segments of ``pattern``; a :class:`PatternError` names what the
    host would refuse."""
    if not pattern.startswith("/"):
        raise PatternError(f"route pattern `{pattern}` does not start with `/`")
    segments = []
    parts = pattern[1:].split("/")
    for i, part in enumerate(parts):
        literal = part.replace("{{", "").replace("}}", "")
        if "{" not in literal and "}" not in literal:
            segments.append(Segment("static", part.replace("{{", "{").replace("}}", "}")))
            continue
        if not (part.startswith("{") and part.endswith("}")) or part.count("{") != 1 \
                or part.count("}") != 1:
            raise PatternError(
                f"route pattern `{pattern}`: `{{name}}` and `{{*name}}` stand for whole "
                "segments, with no other text in theirs")
        name = part[1:-1]
        if name.startswith("*"):
            if i != len(parts) - 1:
                raise PatternError(f"route pattern `{pattern}`: `{{*{name[1:]}}}` must be "
                                   "the last segment")
            name, kind = name[1:], "rest"
        else:
            kind = "param"
        if not name:
            raise PatternError(f"route pattern `{pattern}` has a parameter without a name")
        segments.append(Segment(kind, name))
    names = [s.text for s in segments if s.kind != "static"]
    if len(set(names)) != len(names):
        raise PatternError(f"route pattern `{pattern}` repeats a parameter name")
    if sum(s.kind == "param" for s in segments) > 25:
        raise PatternError(f"route pattern `{pattern}` has more than 25 parameters")
    return segments


def param_names(pattern: str) -> list[str]:
    """The names of ``pattern``'s parameters, in order."""
    return [s.text for s in parse_pattern(pattern) if s.kind != "static"]


@dataclass
class _Node:
    static: dict[str, "_Node"] = field(default_factory=dict)
    param: "_Node | None" = None
    rest: "int | None" = None
    entry: "int | None" = None


@dataclass
class Found:
    """A match: the route's index and its parameters (raw, in pattern
    order)."""

    route: int
    params: list[tuple[str, str]]


@dataclass
class NotAllowed:
    """The path exists, the method does not: ``allow`` for the header."""

    allow: str


class NotFound:
    """No pattern matches the path."""


class Router:
    """Routes (method, pattern) pairs, by index, as the host does."""

    def __init__(self, routes: list[tuple[str, str]]):
        self._root = _Node()
        #: Per pattern entry: (pattern, names, {method: route index}).
        self._entries: list[tuple[str, list[str], dict[str, int]]] = []
        by_pattern: dict[str, int] = {}
        for index, (method, pattern) in enumerate(routes):
            if pattern not in by_pattern:
                by_pattern[pattern] = len(self._entries)
                self._insert(pattern, len(self._entries))
                self._entries.append((pattern, param_names(pattern), {}))
            methods = self._entries[by_pattern[pattern]][2]
            if method in methods:
                raise PatternError(f"route conflict: {method} {pattern} is declared twice")
            methods[method] = index

    def _insert(self, pattern: str, entry: int) -> None:
        node = self._root
        for segment in parse_pattern(pattern):
            if segment.kind == "static":
                node = node.static.setdefault(segment.text, _Node())
            elif segment.kind == "param":
                if node.rest is not None:
                    raise PatternError(f"route conflict: {pattern} and a `{{*rest}}` route "
                                       "overlap ambiguously")
                node.param = node.param or _Node()
                node = node.param
            else:
                if node.param is not None or node.rest is not None:
                    raise PatternError(f"route conflict: {pattern} and another parameter "
                                       "route overlap ambiguously")
                node.rest = entry
                return
        if node.entry is not None:
            raise PatternError(f"route conflict: {pattern} and `{self._entries[node.entry][0]}` "
                               "match the same paths")
        node.entry = entry

    def lookup(self, method: str, path: str) -> "Found | NotAllowed | NotFound":
        """Where ``method`` ``path`` goes. ``HEAD`` falls back to ``GET``."""
        matched = _match(self._root, path[1:].split("/"), 0, []) \
            if path.startswith("/") else None
        if matched is None:
            return NotFound()
        entry, values = matched
        _, names, methods = self._entries[entry]
        index = methods.get(method)
        if index is None and method == "HEAD":
            index = methods.get("GET")
        if index is None:
            allow = sorted(methods)
            if "GET" in methods and "HEAD" not in methods:
                allow.append("HEAD")
            return NotAllowed(", ".join(allow))
        return Found(index, list(zip(names, values)))


def _match(node: _Node, segments: list[str], i: int,
           values: list[str]) -> "tuple[int, list[str]] | None":
    if i == len(segments):
        return (node.entry, values) if node.entry is not None else None
    segment = segments[i]
    child = node.static.get(segment)
    if child is not None:
        found = _match(child, segments, i + 1, values)
        if found:
            return found
    if node.param is not None and segment:
        found = _match(node.param, segments, i + 1, [*values, segment])
        if found:
            return found
    if node.rest is not None:
        rest = "/".join(segments[i:])
        if rest:
            return node.rest, [*values, rest]
    return None
