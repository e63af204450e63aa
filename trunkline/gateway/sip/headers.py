"""SIP header names and the ordered header multi-map of a message (RFC 3261 §7.3).

Header names are case-insensitive and compact forms (``i``, ``f``, ``t``, ``v``,
``m``, ``l``, ``c``, ``k``, ``s``, ``e``, …) are expanded to one canonical
spelling. ``split_list`` splits the comma-separated value of a multi-value
header outside quotes and angle brackets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

COMPACT_NAMES = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
}
CANONICAL_NAMES = {
    name.lower(): name
    for name in (
        "Accept", "Allow", "Authorization", "Call-ID", "Contact", "Content-Length",
        "Content-Type", "CSeq", "Expires", "From", "Max-Forwards", "Proxy-Authenticate",
        "Proxy-Authorization", "Record-Route", "Require", "Retry-After", "Route", "Server",
        "Supported", "To", "User-Agent", "Via", "WWW-Authenticate", "Reason", "Unsupported",
        "Session-Expires", "Min-SE", "Event", "Subject", "Content-Encoding", "Allow-Events",
    )
}  # fmt: skip
# Headers whose value may be a comma-separated list (split on parse).
LIST_HEADERS = frozenset(
    {"via", "contact", "route", "record-route", "allow", "supported", "require", "accept",
     "unsupported"}
)  # fmt: skip


def canonical_name(name: str) -> str:
    lowered = name.strip().lower()
    if lowered in COMPACT_NAMES:
        return COMPACT_NAMES[lowered]
    return CANONICAL_NAMES.get(lowered, name.strip())


def split_list(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and <...>."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    index = 0
    while index < len(value):
        char = value[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            depth += 1
        elif char == ">":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(value[start:index].strip())
            start = index + 1
        index += 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


class Headers:
    """An ordered multi-map of header values keyed case-insensitively by canonical name."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = canonical_name(name).lower()
        for key, value in self._items:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = canonical_name(name).lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` by one (in the place of the first)."""
        wanted = canonical_name(name)
        kept: list[tuple[str, str]] = []
        placed = False
        for key, existing in self._items:
            if key.lower() == wanted.lower():
                if not placed:
                    kept.append((wanted, value))
                    placed = True
            else:
                kept.append((key, existing))
        if not placed:
            kept.append((wanted, value))
        self._items = kept

    def remove(self, name: str) -> None:
        wanted = canonical_name(name).lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != wanted]

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def copy(self) -> Headers:
        clone = Headers()
        clone._items = list(self._items)
        return clone
