"""A fault-injecting HTTP proxy in front of an S3 endpoint (the moto server), on loopback.

::

    S3 client --HTTP--> FaultProxy (127.0.0.1:port) --HTTP--> upstream (moto)
                           |  at ``rate``: 500 InternalError, 503 SlowDown,
                           |  reset before or after forwarding, truncate, delay
                           +- counters: requests, faults by kind, per method

The client is pointed at ``proxy.endpoint_url``. Requests are forwarded byte for
byte (method, path and query, headers, body) with the client's own ``Host``
header, so what the client signed is what the upstream receives; moto does not
check SigV4 signatures, real S3 is never behind this proxy. Only hop-by-hop
framing changes: a chunked request or response body is passed on with a
``Content-Length``.

Fault kinds (``FAULT_KINDS``):

- ``"500"``: answered here with an S3 ``InternalError`` XML body, never forwarded;
- ``"503"``: answered here with an S3 ``SlowDown`` XML body, never forwarded;
- ``"reset"``: the connection is reset (TCP RST) before anything is forwarded;
- ``"reset_after"``: forwarded (the upstream applies it), then reset with no
  reply: the client loses the reply of a request that took effect;
- ``"truncate"``: forwarded, then the reply's headers and half its body are
  sent and the connection is reset (mid-response); a reply without a body is
  cut after its status line;
- ``"delay"``: forwarded after a pause drawn from ``delay_s`` (not a failure).

Which requests fail is decided per request from ``seed``, the method, the path
with its query and how many times that same request was seen before, so thread
interleaving does not change the decisions and a run repeats. ``max_consecutive``
caps how many failures in a row one request (same method, path and query) gets,
so a client that retries more often than that always gets through: transient
faults, never an outage. ``decide`` replaces the random choice with a script
(tests: "reset after the first PUT of each key").
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FAULT_KINDS", "FaultProxy", "FaultStats", "ProxiedRequest", "RequestEvent"]

FAULT_KINDS = ("500", "503", "reset", "reset_after", "truncate", "delay")
#: The default mix: failures of every kind, plus some delays.
DEFAULT_MIX: Mapping[str, float] = {
    "500": 2,
    "503": 2,
    "reset": 2,
    "reset_after": 2,
    "truncate": 1,
    "delay": 1,
}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
_ERRORS = {
    "500": (500, "Internal Server Error", "InternalError", "We encountered an internal error."),
    "503": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
}
_MAX_BODY = 1 << 30


@dataclass(frozen=True)
class ProxiedRequest:
    """What a fault decision sees: method, path with query, and how often it was seen before."""

    method: str
    path: str
    n: int

    @property
    def key(self) -> str:
        """The object key part of a path-style S3 path (after the bucket), without query."""
        path = self.path.split("?", 1)[0].lstrip("/")
        return path.split("/", 1)[1] if "/" in path else ""


@dataclass(frozen=True)
class RequestEvent:
    """One request as the proxy handled it: when (monotonic s), what, which fault."""

    t: float
    method: str
    path: str
    fault: str | None


@dataclass
class FaultStats:
    """Counters of a proxy: requests seen, forwarded, and faults by kind and by method."""

    requests: int = 0
    forwarded: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    faults_by_method: dict[str, int] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        """Faults that fail a request (every kind but ``delay``)."""
        return sum(n for kind, n in self.faults.items() if kind != "delay")

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "forwarded": self.forwarded,
            "failures": self.failures,
            "by_method": dict(sorted(self.by_method.items())),
            "faults": dict(sorted(self.faults.items())),
            "faults_by_method": dict(sorted(self.faults_by_method.items())),
        }


class _Reset(Exception):
    """Raised inside the handler to drop the client connection with a TCP reset."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # silent: the proxy counts, it does not log every request

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Reset:
            self._reset()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._proxy()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    # ------------------------------------------------------------------ request

    def _proxy(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        fault = proxy._decide(self.command, self.path)
        if fault in _ERRORS:
            self._answer_error(fault)
            return
        if fault == "reset":
            raise _Reset
        if fault == "delay":
            proxy._stopping.wait(proxy._delay())
        status, reason, headers, data = self._forward(body)
        proxy._count_forwarded()
        if fault == "reset_after":
            raise _Reset
        self._respond(status, reason, headers, data, truncate=fault == "truncate")

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        n = int(length)
        if not 0 <= n <= _MAX_BODY:
            raise _Reset
        return self.rfile.read(n)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537).strip():  # trailers, up to the blank line
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)  # the CRLF after each chunk

    def _forward(self, body: bytes | None) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send the request upstream (one kept-alive connection per client connection)."""
        for attempt in (0, 1):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        conn.putheader(name, value)
                if body is not None:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt or not reused:
                    raise
                continue  # the upstream closed an idle kept-alive connection: reconnect once
            if resp.will_close:
                conn.close()
            return resp.status, resp.reason, resp.getheaders(), data
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            host, port = self.server.proxy.upstream
            self._upstream = http.client.HTTPConnection(host, port, timeout=120)
        return self._upstream

    # ------------------------------------------------------------------ response

    def _respond(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        data: bytes,
        *,
        truncate: bool,
    ) -> None:
        self.send_response_only(status, reason)
        if truncate and (not data or self.command == "HEAD"):
            self.flush_headers()  # no body to cut: cut the reply after its status line
            raise _Reset
        length = None
        for name, value in headers:
            low = name.lower()
            if low == "content-length":
                length = value
            if low not in _HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD" or status in (204, 304) or 100 <= status < 200:
            if length is not None:
                self.send_header("Content-Length", length)  # the object's size, no body
            data = b""
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if truncate:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            raise _Reset
        self.wfile.write(data)

    def _answer_error(self, fault: str) -> None:
        status, reason, code, message = _ERRORS[fault]
        request_id = f"FAULT{random.getrandbits(48):012X}"
        resource = self.path.split("?", 1)[0]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{_xml_escape(resource)}</Resource>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        self.send_response_only(status, reason)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", request_id)
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            body = b""
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        """Drop the client connection with a TCP RST (no FIN, no reply)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        if self._upstream is not None:
            self._upstream.close()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class FaultProxy:
    """A loopback proxy in front of ``upstream`` (``http://host:port``) that injects faults.

    ``rate`` is the share of requests that get a fault, ``mix`` the relative weight
    of each kind (``FAULT_KINDS``), ``match(method, path)`` which requests may get
    one (default: all), ``decide(request)`` a script that overrides all of those
    (returns a kind or ``None``). ``max_consecutive`` caps the failures in a row of
    one request (``None``: no cap). ``delay_s`` bounds a ``delay`` fault. ``events``
    keeps the last ``record`` requests. Use as a context manager, or ``start`` and
    ``stop``; ``endpoint_url`` is where clients connect. Settings may be changed
    while it runs (``configure``).
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.1,
        mix: Mapping[str, float] | None = None,
        seed: int = 0,
        delay_s: tuple[float, float] = (0.05, 0.3),
        match: Callable[[str, str], bool] | None = None,
        decide: Callable[[ProxiedRequest], str | None] | None = None,
        max_consecutive: int | None = None,
        record: int = 100_000,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError("upstream must be http://host:port")
        self.upstream = (parts.hostname, parts.port)
        self.seed = seed
        self.delay_s = delay_s
        self.max_consecutive = max_consecutive
        self._streak: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], int] = {}
        self._stats = FaultStats()
        self.events: deque[RequestEvent] = deque(maxlen=record)
        self._stopping = threading.Event()
        self._rng = random.Random(seed)
        self.rate = 0.0
        self.mix: dict[str, float] = {}
        self.match: Callable[[str, str], bool] | None = None
        self.decide: Callable[[ProxiedRequest], str | None] | None = None
        self.configure(rate=rate, mix=mix or DEFAULT_MIX, match=match, decide=decide)
        self._server = _Server((host, port), _Handler)
        self._server.proxy = self
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"FaultProxy({self.endpoint_url} -> {self.upstream[0]}:{self.upstream[1]})"

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def configure(
        self,
        *,
        rate: float | None = None,
        mix: Mapping[str, float] | None = None,
        match: Callable[[str, str], bool] | None = None,
        decide: Callable[[ProxiedRequest], str | None] | None = None,
    ) -> None:
        """Change the fault settings (``match``/``decide``: pass a new one to replace).

        A ``rate`` of 0 turns faults off; ``decide`` still applies when set.
        """
        with self._lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("rate must be in [0, 1]")
                self.rate = rate
            if mix is not None:
                unknown = set(mix) - set(FAULT_KINDS)
                if unknown or not any(w > 0 for w in mix.values()):
                    raise ValueError(f"mix: unknown kinds {sorted(unknown)} or no weight")
                self.mix = dict(mix)
            if match is not None:
                self.match = match
            if decide is not None:
                self.decide = decide

    def clear_rules(self) -> None:
        """Drop ``match`` and ``decide``: every request may get a fault at ``rate`` again."""
        with self._lock:
            self.match = None
            self.decide = None

    # ------------------------------------------------------------------ decisions

    def _decide(self, method: str, path: str) -> str | None:
        with self._lock:
            n = self._seen.get((method, path), 0)
            self._seen[(method, path)] = n + 1
            streak = self._streak.get((method, path), 0)
            decide, match, rate, mix = self.decide, self.match, self.rate, self.mix
        if decide is not None:
            fault = decide(ProxiedRequest(method, path, n))
            if fault is not None and fault not in FAULT_KINDS:
                raise ValueError(f"decide returned unknown fault {fault!r}")
        elif (
            rate <= 0
            or (match is not None and not match(method, path))
            or (self.max_consecutive is not None and streak >= self.max_consecutive)
        ):
            fault = None
        else:
            # One generator per request identity: the same requests get the same
            # faults whatever order threads send them in.
            rng = random.Random(f"{self.seed}|{method}|{path}|{n}")
            fault = None
            if rng.random() < rate:
                kinds = list(mix)
                fault = rng.choices(kinds, weights=[mix[k] for k in kinds])[0]
        with self._lock:
            failed = fault is not None and fault != "delay"
            self._streak[(method, path)] = streak + 1 if failed else 0
            st = self._stats
            st.requests += 1
            st.by_method[method] = st.by_method.get(method, 0) + 1
            if fault is not None:
                st.faults[fault] = st.faults.get(fault, 0) + 1
                st.faults_by_method[method] = st.faults_by_method.get(method, 0) + 1
            self.events.append(RequestEvent(time.monotonic(), method, path, fault))
        return fault

    def _delay(self) -> float:
        with self._lock:
            return self._rng.uniform(*self.delay_s)

    def _count_forwarded(self) -> None:
        with self._lock:
            self._stats.forwarded += 1

    def stats(self) -> FaultStats:
        """A copy of the counters now."""
        with self._lock:
            st = self._stats
            return FaultStats(
                st.requests,
                st.forwarded,
                dict(st.by_method),
                dict(st.faults),
                dict(st.faults_by_method),
            )

    def reset_stats(self) -> None:
        """Zero the counters and forget the events and how often each request was seen."""
        with self._lock:
            self._stats = FaultStats()
            self._seen.clear()
            self._streak.clear()
            self.events.clear()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        """Serve on a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="snapcloud-faultproxy",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
