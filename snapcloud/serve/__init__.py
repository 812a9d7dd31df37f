"""``snapcloud serve``: the store as a Prometheus data source (the HTTP API Grafana uses).

Needs the ``serve`` extra (Starlette, Uvicorn, promql-parser, google-re2). Read-only
over any store URL; queries are planned and read through ``snapcloud.query``.
See docs/SERVE.md.

    from snapcloud.serve import open_api, create_app
    app = create_app(open_api("s3://bucket/fleet"))
"""

from __future__ import annotations

from snapcloud.backends import open_store
from snapcloud.models import SnapshotConfig
from snapcloud.serve._api import ApiError, PrometheusAPI, ServeConfig, format_value
from snapcloud.serve._app import create_app
from snapcloud.serve._cache import ServeCache
from snapcloud.serve._receive import ReceiveConfig, Receiver
from snapcloud.store import Repository

__all__ = [
    "DEFAULT_LISTEN",
    "ApiError",
    "PrometheusAPI",
    "ReceiveConfig",
    "Receiver",
    "ServeCache",
    "ServeConfig",
    "create_app",
    "format_value",
    "open_api",
    "parse_listen",
    "run",
]

DEFAULT_LISTEN = "127.0.0.1:9090"


def open_api(
    url: str | None,
    *,
    endpoint_url: str | None = None,
    config: ServeConfig | None = None,
    cache_bytes: int = 256 * 2**20,
    catalog_ttl_s: float = 60.0,
    snapshot_config: SnapshotConfig | None = None,
) -> PrometheusAPI:
    """A ``PrometheusAPI`` over the store at ``url``, its reads through a ``ServeCache``.
    Raises ``ConfigError`` for a bad URL."""
    inner = open_store(url, endpoint_url=endpoint_url, create=False)  # a reader makes no store
    cache = ServeCache(inner, max_bytes=cache_bytes, catalog_ttl_s=catalog_ttl_s)
    return PrometheusAPI(Repository(cache, snapshot_config), config)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as ``(host, port)``. Raises ``ValidationError``."""
    from snapcloud.errors import ValidationError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValidationError(f"--listen: {text!r} is not HOST:PORT", field="listen")
    return host.strip("[]"), int(port)


def run(
    api: PrometheusAPI,
    listen: str = DEFAULT_LISTEN,
    *,
    max_concurrency: int = 4,
    receiver: Receiver | None = None,
) -> None:
    """Serve ``api`` on ``listen`` until interrupted (Uvicorn); with ``receiver``, remote
    write too (its uploader runs meanwhile; at shutdown, one last upload pass)."""
    import uvicorn

    host, port = parse_listen(listen)
    try:
        uvicorn.run(
            create_app(api, max_concurrency=max_concurrency, receiver=receiver),
            host=host,
            port=port,
            log_level="info",
            access_log=False,
        )
    finally:  # the app's lifespan closed it already, unless the server never started
        if receiver is not None:
            receiver.close()
