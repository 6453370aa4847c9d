"""Spans from plugin code in the request's trace: children of the host's
span of the call, exported with it. No grant is needed, but the world must
``import trellis:plugin/trace@0.1.7``::

    with trace.span("price.compute") as span:
        span.set("items", 3)
        with span.child("price.lookup") as lookup:
            lookup.event("cache miss", key="sku-1")

A block that raises marks its span failed with the exception.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from . import _host

__all__ = ["Span", "span", "traced"]

F = TypeVar("F", bound=Callable[..., Any])


class Span:
    """An open span; it ends with :meth:`end`, at the end of its ``with``
    block, or at the latest when the call returns."""

    def __init__(self, name: str, parent: "Span | None" = None):
        host = _host.load("trace")
        self.name = name
        self.raw = host.Span(name, None if parent is None else parent.raw)

    def child(self, name: str) -> "Span":
        """Opens a span under this one."""
        return Span(name, self)

    def set(self, key: str, value: Any) -> "Span":
        """Sets an attribute (the last value of a key wins)."""
        self.raw.set_attribute(key, str(value))
        return self

    def event(self, name: str, **attributes: Any) -> "Span":
        """Records an event with attributes."""
        self.raw.add_event(name, [(k, str(v)) for k, v in attributes.items()])
        return self

    def error(self, message: Any) -> "Span":
        """Marks the span failed."""
        self.raw.set_error(str(message))
        return self

    def end(self) -> None:
        """Ends the span now."""
        self.raw.end()

    def __enter__(self) -> "Span":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None:
            self.error(f"{exc_type.__name__}: {exc}")
        self.end()


def span(name: str) -> Span:
    """Opens a span under the call's span (use it in a ``with``)."""
    return Span(name)


def traced(name: str | None = None) -> Callable[[F], F]:
    """Runs the decorated function inside a span named ``name`` (default:
    the function's qualified name)."""
    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Span(name or fn.__qualname__):
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate
