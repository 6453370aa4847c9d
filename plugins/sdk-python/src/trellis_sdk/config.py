"""The plugin's settings, as the operator set them under
``[plugins.<name>.config]``. Needs the ``config`` capability (and ``import
trellis:plugin/config@0.1.7`` in the world)::

    greeting = config.get("greeting", default="Hello")
    max_items = config.get("max_items", int, default=100)
"""

from __future__ import annotations

from typing import Any

from . import _host
from ._convert import parse_text
from .errors import InternalError

__all__ = ["get", "all"]


def get(key: str, kind: Any = str, default: Any = None) -> Any:
    """Setting ``key`` parsed as ``kind`` (``str``, ``int``, ``float``,
    ``bool``), or ``default`` when unset; a value that does not parse is a
    500 naming the key."""
    value = _host.load("config").get(key)
    if value is None:
        return default
    try:
        return parse_text(value, kind)
    except ValueError:
        raise InternalError(f"plugin setting `{key}` has an invalid value `{value}`") from None


def all() -> dict[str, str]:  # noqa: A001 - mirrors the WIT's get-all
    """Every setting of this plugin."""
    return dict(_host.load("config").get_all())
