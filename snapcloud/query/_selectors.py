"""What a fleet query selects: hosts (globs, label matchers), a time range, metrics, fingerprint.

Label matchers follow Prometheus: ``=`` equal, ``!=`` not equal, ``=~`` regex
full match, ``!~`` regex does not full-match; a label a host lacks has the value
``""``. Regexes are RE2 (Prometheus' syntax), matched in time linear in the label
whatever the pattern. Host, metric and fingerprint patterns are shell globs (``*``,
``?``, ``[...]``), matched case-sensitively against the whole name by ``fnmatch``,
whose translation is linear too (atomic groups since Python 3.9).
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator, model_validator
from pydantic import ValidationError as PydanticError

from snapcloud._regex import RegexError, compile_linear
from snapcloud.errors import SnapcloudError, ValidationError
from snapcloud.models import NAME_MAX_LEN, validate_metric_name
from snapcloud.timeparse import parse_duration, parse_instant

__all__ = [
    "GROUP_BUILTINS",
    "LabelMatcher",
    "Narrowing",
    "Selector",
    "gpu_index",
    "is_glob",
    "metric_field",
    "time_range",
]

MatchOp = Literal["=", "!=", "=~", "!~"]
_MATCHER = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.:%-]*)\s*(=~|!~|!=|=)(.*)", re.DOTALL)
_GLOB_CHARS = frozenset("*?[")
_PATTERN_MAX_LEN = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GPU_METRIC = re.compile(r"gpu\.(\d+)\.(.+)")

#: Group-by keys that are not labels: the host id, the GPU index, the snapshot's fingerprint.
GROUP_BUILTINS = ("host", "gpu", "fingerprint")


class _Model(BaseModel):
    """A frozen pydantic model whose construction errors are snapcloud ``ValidationError``s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticError as exc:
            raise _translate(exc, type(self).__name__) from None


def _translate(exc: PydanticError, model: str) -> SnapcloudError:
    first = exc.errors()[0]
    inner = (first.get("ctx") or {}).get("error")
    if isinstance(inner, SnapcloudError):
        return inner
    where = ".".join(str(p) for p in first["loc"]) or model
    return ValidationError(f"{where}: {first['msg']}", field=where)


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` holds a glob character (``*``, ``?`` or ``[``)."""
    return not _GLOB_CHARS.isdisjoint(pattern)


def _check_pattern(pattern: object, field: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValidationError(f"{field}: expected a non-empty name or glob", field=field)
    if len(pattern) > _PATTERN_MAX_LEN or _CONTROL.search(pattern):
        raise ValidationError(
            f"{field}: {pattern[:40]!r} is too long or holds a control character", field=field
        )
    return pattern


def gpu_index(metric: str) -> int | None:
    """The ``<index>`` of a ``gpu.<index>.<field>`` metric, else ``None``."""
    m = _GPU_METRIC.fullmatch(metric)
    return int(m.group(1)) if m else None


def metric_field(metric: str) -> str:
    """The metric name with its GPU index folded:
    ``gpu.3.power_avg_mw`` -> ``gpu.*.power_avg_mw``."""
    m = _GPU_METRIC.fullmatch(metric)
    return f"gpu.*.{m.group(2)}" if m else metric


class LabelMatcher(_Model):
    """One label condition: ``label op value`` with op ``=``, ``!=``, ``=~`` or ``!~``."""

    label: str
    op: MatchOp
    value: str
    _regex: Any = PrivateAttr(default=None)  # RE2: linear time whatever the pattern

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        return validate_metric_name(v, "label")

    @model_validator(mode="after")
    def _compile(self) -> LabelMatcher:
        if self.op in ("=~", "!~"):
            try:
                self._regex = compile_linear(self.value)
            except RegexError as exc:
                why = exc.args[0].decode(errors="replace") if exc.args else "invalid"
                raise ValidationError(
                    f"--where {self}: bad regular expression (RE2 syntax, as Prometheus): {why}",
                    field="where",
                ) from None
        return self

    @classmethod
    def parse(cls, text: str) -> LabelMatcher:
        """Parse ``LABEL=VALUE``, ``LABEL!=VALUE``, ``LABEL=~REGEX`` or ``LABEL!~REGEX``."""
        m = _MATCHER.fullmatch(text.strip())
        if m is None:
            raise ValidationError(
                f"--where: cannot parse {text!r}; use LABEL=VALUE, LABEL!=VALUE, "
                "LABEL=~REGEX or LABEL!~REGEX",
                field="where",
            )
        return cls(label=m.group(1), op=m.group(2), value=m.group(3))

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this condition (a missing label is ``""``)."""
        have = labels.get(self.label, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(have) is not None
        return found if self.op == "=~" else not found


class Selector(_Model):
    """Which samples a fleet query reads: hosts, labels, ``[start_ns, end_ns)``, metrics.

    ``hosts``, ``metrics`` and ``fingerprint`` are names or globs (several hosts or
    metrics: any may match; empty ``hosts``: every host). ``where`` matchers must
    all hold; they see the catalog's labels plus ``host``. Raises ``ValidationError``.
    """

    hosts: tuple[str, ...] = ()
    where: tuple[LabelMatcher, ...] = ()
    start_ns: int | None = None
    end_ns: int | None = None
    metrics: tuple[str, ...] = ("*",)
    fingerprint: str | None = None

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_pattern(p, "hosts") for p in v)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValidationError("metrics: name at least one metric or glob", field="metrics")
        for p in v:
            _check_pattern(p, "metrics")
            if not is_glob(p):
                validate_metric_name(p, "metrics")
            elif len(p) > NAME_MAX_LEN * 4:
                raise ValidationError(f"metrics: glob {p[:40]!r} is too long", field="metrics")
        return v

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, v: str | None) -> str | None:
        return None if v is None else _check_pattern(v, "fingerprint")

    @model_validator(mode="after")
    def _range(self) -> Selector:
        if self.start_ns is not None and self.end_ns is not None and self.end_ns <= self.start_ns:
            raise ValidationError(
                f"time range: end {self.end_ns} is not after start {self.start_ns}", field="end"
            )
        return self

    @property
    def needs_labels(self) -> bool:
        """Whether host selection needs the catalog's labels."""
        return bool(self.where)

    def host_matches(self, host: str) -> bool:
        """Whether ``host`` passes the host globs."""
        return not self.hosts or any(fnmatch.fnmatchcase(host, p) for p in self.hosts)

    def labels_match(self, host: str, labels: Mapping[str, str]) -> bool:
        """Whether every ``where`` matcher holds for ``labels`` (plus ``host``)."""
        full = {**labels, "host": host}
        return all(m.matches(full) for m in self.where)

    def metric_names(self, names: Iterable[str]) -> list[str]:
        """The names among ``names`` that a metric pattern selects, sorted."""
        exact = {p for p in self.metrics if not is_glob(p)}
        globs = [p for p in self.metrics if is_glob(p)]
        return sorted(
            n for n in set(names) if n in exact or any(fnmatch.fnmatchcase(n, g) for g in globs)
        )

    def patterns_matching(self, names: Iterable[str]) -> set[str]:
        """The metric patterns that select at least one of ``names``."""
        present = set(names)
        return {
            p
            for p in self.metrics
            if (p in present if not is_glob(p) else any(fnmatch.fnmatchcase(n, p) for n in present))
        }

    def unmatched_hosts(self, hosts: Iterable[str]) -> list[str]:
        """A sentence for each host pattern that matches none of ``hosts``."""
        every = list(hosts)
        return [
            f"--host {p!r} matched no host (of {len(every)})"
            for p in self.hosts
            if not any(fnmatch.fnmatchcase(h, p) for h in every)
        ]

    def where_unmatched(self, considered: int) -> str:
        """The sentence for label matchers that left none of ``considered`` hosts."""
        matchers = " ".join(f"--where {str(m)!r}" for m in self.where)
        return f"{matchers} matched none of the {considered} host(s) considered"

    def fingerprint_matches(self, fingerprint: str) -> bool:
        """Whether a snapshot's fingerprint passes the fingerprint pattern."""
        if self.fingerprint is None:
            return True
        if not is_glob(self.fingerprint):
            return fingerprint == self.fingerprint
        return fnmatch.fnmatchcase(fingerprint, self.fingerprint)


@dataclass(frozen=True)
class Narrowing:
    """Predicates a caller adds to a ``Selector``, applied while planning, before any
    index segment (``host``) or data object (``metric``) of what they refuse is read.

    ``host(host, labels)`` sees the catalog labels of the host (``{}`` without an
    entry; asking for it makes the planner read the catalog); ``metric(host, labels,
    name)`` sees each metric name the selector's patterns resolved. Both must hold.
    """

    host: Callable[[str, Mapping[str, str]], bool] | None = None
    metric: Callable[[str, Mapping[str, str], str], bool] | None = None


def time_range(
    *,
    since: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now_ns: int | None = None,
) -> tuple[int | None, int | None]:
    """``(start_ns, end_ns)`` from ``--since DURATION`` or ``--start T``/``--end T``.

    ``since`` means ``[now - since, now)``; ``T`` is ISO-8601 with ``Z`` or an offset,
    or epoch ns. Raises ``ValidationError`` when both forms are given, a value is bad,
    or the end is not after the start.
    """
    if since is not None and (start is not None or end is not None):
        raise ValidationError("give --since or --start/--end, not both", field="since")
    if since is not None:
        now = time.time_ns() if now_ns is None else now_ns
        return now - parse_duration(since, field="--since"), now
    start_ns = parse_instant(start, field="--start") if start is not None else None
    end_ns = parse_instant(end, field="--end") if end is not None else None
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise ValidationError(
            f"--end: {end!r} is not after --start {start!r} (the range is [start, end))",
            field="--end",
        )
    return start_ns, end_ns
