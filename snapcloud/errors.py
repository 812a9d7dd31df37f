"""The snapcloud exception tree.

Every error the library raises on purpose derives from :class:`SnapcloudError`,
so a caller can catch at the depth that matches how it recovers::

    SnapcloudError
    ├── ValidationError (ValueError)        bad input: names, lengths, config, CSV rows
    │   ├── ConfigError                     bad store URL, bad settings
    │   ├── UnsupportedQuery                PromQL that snapcloud serve does not evaluate
    │   └── EmptySelection                  a selection that holds no samples (``unmatched``)
    ├── NotFoundError (LookupError)
    │   ├── ObjectNotFound (FileNotFoundError)   no such key in the object store
    │   ├── SnapshotNotFound                no such seq in a host stream
    │   └── HostNotFound                    no such host stream
    ├── CorruptError                        stored bytes are not what was written
    │   ├── UnknownFormat                   bad magic, unknown version, unknown flags
    │   ├── TruncatedObject                 fewer bytes than the header declares
    │   ├── OversizedObject                 declared decoded size over the limit
    │   ├── ChecksumMismatch                frame or content checksum does not match
    │   └── WrongBase                       delta decoded against another base
    ├── ConflictError                       someone else got there first
    │   ├── PreconditionFailed              conditional put lost (if-absent / if-match)
    │   └── LeaseHeld                       another writer holds the stream's lease
    ├── BackendError                        the storage service failed
    │   ├── RetryableBackendError           throttling, 5xx, timeouts: retry later
    │   └── QueryIncomplete                 a query could not read objects it planned
    ├── MemoryExceeded                      a query would hold more than its memory limit
    └── QueryExecutionError                 a PromQL query failed while evaluating
        ├── TooManySamples                  it would load more samples than its limit
        └── QueryTimeout                    it ran past its time limit

Context travels as keyword attributes (``key``, ``host``, ``seq``), never as
secrets: messages carry keys and hosts, not credentials or URLs with userinfo.
"""

from __future__ import annotations

from typing import Any


class SnapcloudError(Exception):
    """Root of every error snapcloud raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        for name, value in context.items():
            setattr(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context))


def _rebuild(cls: type[SnapcloudError], message: str, context: dict[str, Any]) -> SnapcloudError:
    return cls(message, **context)


class ValidationError(SnapcloudError, ValueError):
    """Input that does not satisfy the data model (names, lengths, values, config)."""


class ConfigError(ValidationError):
    """A store URL or setting that cannot be used."""


class EmptySelection(ValidationError):
    """A selection with nothing in it; ``unmatched`` names the patterns that matched nothing."""


class NotFoundError(SnapcloudError, LookupError):
    """Something asked for by name does not exist."""


class ObjectNotFound(NotFoundError, FileNotFoundError):
    """No object under this key."""


class SnapshotNotFound(NotFoundError):
    """No snapshot with this sequence number in the host stream."""


class HostNotFound(NotFoundError):
    """No host stream with this id in the store."""


class CorruptError(SnapcloudError):
    """Stored bytes fail a format or integrity check."""


class UnknownFormat(CorruptError):
    """Bad magic, unknown format version, or unknown flags."""


class TruncatedObject(CorruptError):
    """The object is shorter (or longer) than its header declares."""


class OversizedObject(CorruptError):
    """The declared decoded size is over the decoder's limit (decompression bomb guard)."""


class ChecksumMismatch(CorruptError):
    """A frame or content checksum does not match the bytes."""


class WrongBase(CorruptError):
    """A delta was given a base other than the one it was encoded against."""


class ConflictError(SnapcloudError):
    """A concurrent writer changed the state this operation depended on."""


class PreconditionFailed(ConflictError):
    """A conditional put (if-absent or if-match) did not hold."""


class LeaseHeld(ConflictError):
    """Another writer holds the lease of this host stream."""


class BackendError(SnapcloudError):
    """The storage service failed in a way that retrying will not fix."""


class RetryableBackendError(BackendError):
    """The storage service failed transiently (throttling, 5xx, timeout)."""


class QueryIncomplete(BackendError):
    """A query could not read some of the objects it planned; ``keys`` names them.

    Raised after the backend's own bounded retries gave up, so the caller knows the
    answer would be partial and which objects to look at, instead of getting one.
    """


class MemoryExceeded(SnapcloudError):
    """A query would hold more decoded bytes than its memory limit allows."""


class UnsupportedQuery(ValidationError):
    """A PromQL construct (function, operator, modifier) that snapcloud does not evaluate."""


class QueryExecutionError(SnapcloudError):
    """A PromQL query failed while evaluating (duplicate series in a match, ...)."""


class TooManySamples(QueryExecutionError):
    """A PromQL query would load more samples than its per-request limit."""


class QueryTimeout(QueryExecutionError):
    """A PromQL query ran past its per-request time limit."""
