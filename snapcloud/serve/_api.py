"""The Prometheus HTTP API subset Grafana uses, independent of any web framework.

Each handler takes the request's form values (URL query and form body merged,
``match[]`` repeated) and returns ``(HTTP status, JSON document)`` in Prometheus's
shapes: ``{"status": "success", "data": ...}`` or ``{"status": "error",
"errorType": "bad_data" | "execution" | "timeout" | "unavailable" | "internal",
"error": "..."}`` with 400, 422, 503, 503 and 500. Values are strings as Go's
``strconv.FormatFloat`` writes them (``"NaN"``, ``"+Inf"``), times are Unix seconds
with millisecond precision.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import promql_parser

from snapcloud import __version__
from snapcloud.errors import (
    BackendError,
    CorruptError,
    MemoryExceeded,
    QueryExecutionError,
    QueryTimeout,
    SnapcloudError,
    ValidationError,
)
from snapcloud.promql import (
    DEFAULT_LOOKBACK_NS,
    Evaluator,
    LabelMatch,
    Limits,
    MetricMeta,
    QueryValue,
    SeriesInfo,
    StoreSource,
    VectorSelector,
    parse,
)
from snapcloud.query import QueryStats
from snapcloud.store import Repository

__all__ = ["ApiError", "Form", "PrometheusAPI", "ServeConfig"]

log = logging.getLogger("snapcloud.serve")

Form = Mapping[str, Sequence[str]]
Reply = tuple[int, dict[str, Any]]
_NS = 10**9
_MIN_NS = -(2**62)
_MAX_NS = 2**62
_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "unavailable": 503, "internal": 500}
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
METADATA_WINDOW_NS = 24 * 3600 * _NS


@dataclass(frozen=True)
class ServeConfig:
    """Per-request limits and the lookback delta."""

    max_samples: int = 50_000_000
    timeout_s: float = 120.0
    lookback_ns: int = DEFAULT_LOOKBACK_NS
    workers: int = 16


class ApiError(Exception):
    """An error reply: Prometheus's error type and message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def format_value(v: float) -> str:
    """A sample value as Prometheus writes it (Go's ``FormatFloat(f, 'f' or 'e', -1, 64)``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v != 0 and (abs(v) < 1e-6 or abs(v) >= 1e21):
        return repr(v)  # shortest round-trip, exponent form as Go's 'e'
    return str(np.format_float_positional(v, unique=True, trim="-"))


def format_time(ns: int) -> float | int:
    """A time as Unix seconds, milliseconds kept (Prometheus's ``MarshalTimestamp``)."""
    ms = ns // 1_000_000
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def parse_time(text: str, what: str) -> int:
    """Unix seconds (float, rounded to the millisecond) or RFC 3339, as ns."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None and math.isfinite(seconds):
        whole = math.trunc(seconds)
        frac = round((seconds - whole) * 1000)
        return whole * _NS + frac * 1_000_000
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            "bad_data", f'invalid parameter "{what}": cannot parse "{text}" to a valid timestamp'
        ) from None
    if when.tzinfo is None:
        raise ApiError("bad_data", f'invalid parameter "{what}": {text!r} has no time zone')
    delta = when - datetime(1970, 1, 1, tzinfo=when.tzinfo)
    return ((delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds) * 1000


def parse_duration(text: str, what: str) -> int:
    """Seconds (float) or a Prometheus duration (``1m30s``), as ns."""
    try:
        seconds = float(text)
        if not math.isfinite(seconds):
            raise ValueError(text)
        return round(seconds * _NS)
    except ValueError:
        pass
    try:
        d = promql_parser.parse_duration(text)
    except (ValueError, TypeError):
        raise ApiError(
            "bad_data", f'invalid parameter "{what}": cannot parse "{text}" to a valid duration'
        ) from None
    return round(d.total_seconds() * _NS)


def _one(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _limit(form: Form) -> int:
    text = _one(form, "limit")
    if not text:
        return 0
    try:
        n = int(text)
    except ValueError:
        raise ApiError("bad_data", 'invalid parameter "limit": limit must be a number') from None
    return max(n, 0)


def _error_reply(err: ApiError) -> Reply:
    return _STATUS.get(err.error_type, 500), {
        "status": "error",
        "errorType": err.error_type,
        "error": err.message,
    }


def _success(data: Any, warnings: Sequence[str] = ()) -> Reply:
    doc: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        doc["warnings"] = list(warnings)
    return 200, doc


class PrometheusAPI:
    """Answers the Prometheus HTTP API over one ``Repository`` (read-only).

    ``clock`` gives the time an instant query without ``time`` is evaluated at.
    What it learns of metric kinds and units is kept across requests.
    """

    def __init__(
        self,
        repo: Repository,
        config: ServeConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        on_query: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.repo = repo
        self.config = config or ServeConfig()
        self.clock = clock
        self.on_query = on_query
        self.meta: dict[tuple[str, str], MetricMeta] = {}
        self._lock = threading.Lock()

    def _source(self) -> StoreSource:
        return StoreSource(self.repo, workers=self.config.workers, meta=self.meta)

    def _limits(self, form: Form, deadline_s: float | None) -> Limits:
        lookback = self.config.lookback_ns
        text = _one(form, "lookback_delta")
        if text:
            lookback = parse_duration(text, "lookback_delta")
        timeout = self.config.timeout_s if deadline_s is None else deadline_s
        return Limits(self.config.max_samples, timeout, lookback)

    def timeout_of(self, form: Form) -> float:
        """The request's time limit: its ``timeout`` parameter, at most the configured one."""
        text = _one(form, "timeout")
        if not text:
            return self.config.timeout_s
        return min(parse_duration(text, "timeout") / _NS, self.config.timeout_s)

    # ------------------------------------------------------------------ handlers

    def handle(self, endpoint: str, form: Form, **path: str) -> Reply:
        """Run ``endpoint`` (``query``, ``query_range``, ``series``, ``labels``,
        ``label_values``, ``metadata``, ``buildinfo``) and map errors to Prometheus's."""
        try:
            handler = getattr(self, "_" + endpoint)
            return handler(form, **path)  # type: ignore[no-any-return]
        except ApiError as err:
            return _error_reply(err)
        except SnapcloudError as err:
            return _error_reply(_classify(err))

    def _query(self, form: Form) -> Reply:
        text = _one(form, "query") or ""
        when = _one(form, "time")
        t = parse_time(when, "time") if when else int(self.clock() * 1000) * 1_000_000
        timeout = self.timeout_of(form)
        source = self._source()
        ev = Evaluator(source, self._limits(form, timeout))
        expr = _parse(text)
        started = time.perf_counter()
        value = ev.instant(expr, t)
        self._log("query", text, value, source.stats, started, steps=1)
        return _success(_instant_data(value))

    def _query_range(self, form: Form) -> Reply:
        text = _one(form, "query") or ""
        start = parse_time(_one(form, "start") or "", "start")
        end = parse_time(_one(form, "end") or "", "end")
        step = parse_duration(_one(form, "step") or "", "step")
        timeout = self.timeout_of(form)
        source = self._source()
        ev = Evaluator(source, self._limits(form, timeout))
        expr = _parse(text)
        started = time.perf_counter()
        try:
            value = ev.range(expr, start, end, step)
        except ValidationError as err:
            field = getattr(err, "field", None) or "query"
            raise ApiError("bad_data", f'invalid parameter "{field}": {err}') from None
        self._log("query_range", text, value, source.stats, started, steps=value.times_ns.size)
        return _success(_range_data(value))

    def _selected(self, form: Form) -> list[SeriesInfo]:
        start, end = _range_params(form)
        matches = form.get("match[]") or []
        sets: list[VectorSelector | None] = [_match_param(m) for m in matches] or [None]
        found: dict[tuple[tuple[str, str], ...], SeriesInfo] = {}
        source = self._source()
        for sel in sets:
            matchers = sel.matchers if sel is not None else ()
            for info in source.series(matchers, start, end):
                found.setdefault(tuple(sorted(info.labels.items())), info)
        return [found[k] for k in sorted(found)]

    def _series(self, form: Form) -> Reply:
        if not form.get("match[]"):
            raise ApiError("bad_data", "no match[] parameter provided")
        infos = self._selected(form)
        limit = _limit(form)
        data = [i.labels for i in infos]
        return _truncated(data, limit)

    def _labels(self, form: Form) -> Reply:
        names = sorted({k for i in self._selected(form) for k in i.labels})
        return _truncated(names, _limit(form))

    def _label_values(self, form: Form, name: str) -> Reply:
        if not _LABEL_NAME.fullmatch(name):
            raise ApiError("bad_data", f'invalid label name: "{name}"')
        values = sorted({v for i in self._selected(form) if (v := i.labels.get(name))})
        return _truncated(values, _limit(form))

    def _metadata(self, form: Form) -> Reply:
        end = int(self.clock() * _NS)
        source = self._source()
        metric = _one(form, "metric")
        sel = VectorSelector((LabelMatch("__name__", "=~", ".+", _any_regex()),))
        out: dict[str, list[dict[str, str]]] = {}
        for info in source.series(sel.matchers, end - METADATA_WINDOW_NS, end):
            name = info.labels["__name__"]
            if metric and name != metric:
                continue
            meta = info.meta
            entry = {
                "type": meta.kind if meta else "unknown",
                "help": f"snapcloud metric {_help(info)}",
                "unit": meta.unit if meta else "",
            }
            if entry not in out.setdefault(name, []):
                out[name].append(entry)
        limit = _limit(form)
        names = sorted(out)
        if limit:
            names = names[:limit]
        per = _one(form, "limit_per_metric")
        per_n = int(per) if per and per.isdigit() else 0
        return _success({n: out[n][:per_n] if per_n else out[n] for n in names})

    def _buildinfo(self, form: Form) -> Reply:
        return _success(
            {
                "version": "3.0.0",
                "revision": f"snapcloud-{__version__}",
                "branch": "snapcloud",
                "buildUser": "snapcloud",
                "buildDate": "",
                "goVersion": "none (snapcloud serve, Python)",
            }
        )

    # ------------------------------------------------------------------ figures

    def _log(
        self,
        kind: str,
        text: str,
        value: QueryValue,
        stats: list[QueryStats],
        started: float,
        *,
        steps: int,
    ) -> None:
        requests: dict[str, int] = {}
        for st in stats:
            for op, n in st.requests.items():
                requests[op] = requests.get(op, 0) + n
        figures = {
            "endpoint": kind,
            "query": text,
            "steps": steps,
            "series": len(value.series) or len(value.raw) or (1 if value.scalar is not None else 0),
            "samples": value.samples,
            "hosts": sum(st.hosts for st in stats),
            "objects": sum(st.objects for st in stats),
            "bytes_read": sum(st.bytes_read for st in stats),
            "requests": requests,
            "seconds": round(time.perf_counter() - started, 6),
        }
        log.info(
            "%s %r: %d step(s), %d series, %d samples, %d objects, %d requests, %.3f s",
            kind,
            text,
            steps,
            figures["series"],
            value.samples,
            figures["objects"],
            sum(requests.values()),
            figures["seconds"],
        )
        if self.on_query is not None:
            self.on_query(figures)


_INDEX = re.compile(r"(?<=\.)\d+(?=\.)")


def _help(info: SeriesInfo) -> str:
    pattern = _INDEX.sub("*", info.metric)  # gpu.3.power_avg_mw -> gpu.*.power_avg_mw
    return f"{pattern} ({info.meta.unit})" if info.meta and info.meta.unit else pattern


def _any_regex() -> Any:
    import re2

    return re2.compile("^(?s:.+)$")


def _parse(text: str) -> Any:
    try:
        return parse(text)
    except ValidationError as err:
        raise ApiError("bad_data", f'invalid parameter "query": {err}') from None


def _match_param(text: str) -> VectorSelector:
    try:
        expr = parse(text)
    except ValidationError as err:
        raise ApiError("bad_data", f'invalid parameter "match[]": {err}') from None
    if not isinstance(expr, VectorSelector):
        raise ApiError("bad_data", f'invalid parameter "match[]": {text!r} is not a selector')
    return expr


def _range_params(form: Form) -> tuple[int | None, int | None]:
    start = _one(form, "start")
    end = _one(form, "end")
    s = parse_time(start, "start") if start else None
    e = parse_time(end, "end") if end else None
    if s is not None and e is not None and e < s:
        raise ApiError("bad_data", "end timestamp must not be before start time")
    return s, (e + 1 if e is not None else None)  # Prometheus's end is inclusive


def _truncated(data: list[Any], limit: int) -> Reply:
    if limit and len(data) > limit:
        return _success(data[:limit], ["results truncated due to limit"])
    return _success(data)


def _classify(err: SnapcloudError) -> ApiError:
    if isinstance(err, QueryTimeout):
        return ApiError("timeout", str(err))
    if isinstance(err, QueryExecutionError | MemoryExceeded):
        return ApiError("execution", str(err))
    if isinstance(err, ValidationError):
        return ApiError("bad_data", str(err))
    if isinstance(err, BackendError):
        return ApiError("unavailable", str(err))
    if isinstance(err, CorruptError):
        return ApiError("internal", str(err))
    return ApiError("internal", str(err))


def _instant_data(value: QueryValue) -> dict[str, Any]:
    t = format_time(int(value.times_ns[0]))
    if value.kind == "scalar":
        assert value.scalar is not None
        return {"resultType": "scalar", "result": [t, format_value(float(value.scalar[0]))]}
    if value.kind == "matrix":
        return {
            "resultType": "matrix",
            "result": [
                {
                    "metric": dict(sorted(r.labels.items())),
                    "values": [
                        [format_time(int(ts)), format_value(float(v))]
                        for ts, v in zip(r.timestamps.tolist(), r.values.tolist(), strict=True)
                    ],
                }
                for r in value.raw
            ],
        }
    return {
        "resultType": "vector",
        "result": [
            {"metric": dict(s.labels), "value": [t, format_value(float(s.values[0]))]}
            for s in value.series
            if s.present[0]
        ],
    }


def _range_data(value: QueryValue) -> dict[str, Any]:
    times = [format_time(int(t)) for t in value.times_ns.tolist()]
    if value.kind == "scalar":
        assert value.scalar is not None
        series = [{"metric": {}, "values": _points(times, value.scalar, None)}]
        return {"resultType": "matrix", "result": series}
    return {
        "resultType": "matrix",
        "result": [
            {"metric": dict(s.labels), "values": _points(times, s.values, s.present)}
            for s in value.series
        ],
    }


def _points(times: list[float | int], values: Any, present: Any) -> list[list[Any]]:
    vals = values.tolist()
    keep = [True] * len(vals) if present is None else present.tolist()
    return [[t, format_value(v)] for t, v, k in zip(times, vals, keep, strict=True) if k]
