"""Key rules every backend enforces, so no key can escape its root or prefix."""

from __future__ import annotations

import re

from snapcloud.errors import ValidationError

MAX_KEY_LEN = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_key(key: object) -> str:
    """Return ``key`` if it is a safe relative ``/``-separated key; else ``ValidationError``."""
    if not isinstance(key, str) or not key:
        raise ValidationError(f"object key {key!r} must be a non-empty string", field="key")
    if len(key) > MAX_KEY_LEN:
        raise ValidationError(f"object key of {len(key)} characters is too long", field="key")
    if _CONTROL.search(key) or "\\" in key:
        raise ValidationError(f"object key {key!r} has a control character or '\\'", field="key")
    if key.startswith("/"):
        raise ValidationError(f"object key {key!r} must be relative", field="key")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValidationError(f"object key {key!r} has an empty, '.' or '..' segment", field="key")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key prefix (may end with ``/``)."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix
