"""Argument rules every backend enforces: keys that cannot escape a root or prefix, ranges.

Every backend calls these on every key before touching its medium, so the
rules (and the ``ValidationError`` for breaking them) are the same everywhere.
"""

from __future__ import annotations

import re

from snapcloud.errors import ValidationError

MAX_KEY_LEN = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN = 80  # characters of a bad key quoted in a message


def _bad(key: str, why: str) -> ValidationError:
    shown = key if len(key) <= _SHOWN else key[:_SHOWN] + "..."
    return ValidationError(f"bad object key {shown!r}: {why}", key=key)


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative ``/``-separated key; raises ``ValidationError``.

    A key is non-empty, at most 1024 characters, relative, free of control
    characters and backslashes, and has no empty, ``.`` or ``..`` segment.
    """
    if not isinstance(key, str):
        raise ValidationError(f"object key must be a string, not {type(key).__name__}", key=key)
    if not key:
        raise _bad(key, "empty")
    if len(key) > MAX_KEY_LEN:
        raise _bad(key, f"{len(key)} characters, over {MAX_KEY_LEN}")
    if _CONTROL.search(key) or "\\" in key:
        raise _bad(key, "control character or backslash")
    if key.startswith("/"):
        raise _bad(key, "absolute (leading '/')")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise _bad(key, "empty, '.' or '..' segment")
    return key


def check_prefix(prefix: str) -> str:
    """Return a listing prefix (``""`` or a key, maybe ending ``/``); raises ``ValidationError``."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def check_range(byte_range: tuple[int, int] | None) -> tuple[int, int] | None:
    """Return ``(start, end)`` if ``0 <= start <= end``; raises ``ValidationError``."""
    if byte_range is None:
        return None
    start, end = byte_range
    if not (isinstance(start, int) and isinstance(end, int)) or not 0 <= start <= end:
        raise ValidationError(f"bad byte range {byte_range!r}: need 0 <= start <= end")
    return start, end


def check_conditions(if_absent: bool, if_match: str | None) -> None:
    """Refuse ``if_absent`` with ``if_match``, or an empty ETag; raises ``ValidationError``."""
    if if_absent and if_match is not None:
        raise ValidationError("put takes if_absent or if_match, not both")
    if if_match is not None and not if_match.strip('"'):
        raise ValidationError("if_match needs a non-empty ETag")
