"""The HTTP side of ``snapcloud serve``: a thin Starlette app over ``PrometheusAPI``.

Every API route answers GET and POST (a form body, as Grafana sends by default);
the work runs in a worker thread, at most ``max_concurrency`` at once, and a
request past its time limit gets Prometheus's 503 ``timeout`` reply. With a
``Receiver`` (``serve --receive``), ``POST /api/v1/write`` takes Prometheus remote
write: 204 once spooled durably, 400 with a one-line reason for a request that can
never succeed, 5xx for one that may later (``snapcloud.serve._receive``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from snapcloud.serve._api import ApiError, PrometheusAPI, _error_reply

if TYPE_CHECKING:
    from snapcloud.serve._receive import Receiver

__all__ = ["create_app"]

_JSON = "application/json"


def _json(status: int, doc: dict[str, Any]) -> Response:
    body = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    return Response(body, status_code=status, media_type=_JSON)


async def _form(request: Request) -> dict[str, list[str]]:
    form = parse_qs(request.url.query, keep_blank_values=True)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip() == "application/x-www-form-urlencoded":
            body = (await request.body()).decode("utf-8", errors="replace")
            for key, values in parse_qs(body, keep_blank_values=True).items():
                form[key] = values + form.get(key, [])  # the body wins, as Go's FormValue
    return form


def create_app(
    api: PrometheusAPI, *, max_concurrency: int = 4, receiver: Receiver | None = None
) -> Starlette:
    """The Starlette app serving ``api`` (and remote write into ``receiver``; module doc)."""
    limiter = anyio.CapacityLimiter(max_concurrency)
    writers = anyio.CapacityLimiter(max_concurrency)

    def endpoint(name: str) -> Any:
        async def handle(request: Request) -> Response:
            form = await _form(request)
            try:
                timeout = api.timeout_of(form) if name in ("query", "query_range") else None
            except ApiError as err:
                return _json(*_error_reply(err))
            call = functools.partial(api.handle, name, form, **request.path_params)
            work = anyio.to_thread.run_sync(call, limiter=limiter)
            try:
                if timeout is None:
                    status, doc = await work
                else:
                    status, doc = await asyncio.wait_for(work, timeout + 1.0)
            except TimeoutError:
                late = ApiError("timeout", f"query timed out after {timeout} s")
                return _json(*_error_reply(late))
            return _json(status, doc)

        return handle

    async def root(request: Request) -> Response:
        return PlainTextResponse("snapcloud serve: the Prometheus HTTP API at /api/v1/\n")

    async def write(request: Request) -> Response:
        from snapcloud.serve._receive import Rejected, Unavailable

        assert receiver is not None
        limit = receiver.config.max_body_bytes
        chunks = []
        size = 0
        async for chunk in request.stream():  # bounded: never more than the limit in memory
            size += len(chunk)
            if size > limit:
                return PlainTextResponse(f"body over {limit} bytes\n", status_code=413)
            chunks.append(chunk)
        headers = {k.lower(): v for k, v in request.headers.items()}
        call = functools.partial(receiver.write, b"".join(chunks), headers)
        try:
            count = await anyio.to_thread.run_sync(call, limiter=writers)
        except Rejected as exc:
            return PlainTextResponse(f"{exc}\n", status_code=exc.status)
        except Unavailable as exc:
            return PlainTextResponse(f"{exc}\n", status_code=exc.status)
        # remote write 2.0's reply header; 1.0 senders ignore it
        return Response(
            status_code=204, headers={"X-Prometheus-Remote-Write-Samples-Written": str(count)}
        )

    methods = ["GET", "POST"]
    routes = [
        Route("/api/v1/query", endpoint("query"), methods=methods),
        Route("/api/v1/query_range", endpoint("query_range"), methods=methods),
        Route("/api/v1/series", endpoint("series"), methods=methods),
        Route("/api/v1/labels", endpoint("labels"), methods=methods),
        Route("/api/v1/label/{name}/values", endpoint("label_values"), methods=["GET"]),
        Route("/api/v1/metadata", endpoint("metadata"), methods=["GET"]),
        Route("/api/v1/status/buildinfo", endpoint("buildinfo"), methods=["GET"]),
        Route("/", root, methods=["GET"]),
        Route("/-/healthy", root, methods=["GET"]),
        Route("/-/ready", root, methods=["GET"]),
    ]
    if receiver is None:
        return Starlette(routes=routes)
    routes.append(Route("/api/v1/write", write, methods=["POST"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the last upload
        # pass runs here, before that, not after the server returns.
        receiver.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(receiver.close)

    return Starlette(routes=routes, lifespan=lifespan)
