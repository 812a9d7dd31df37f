"""``snapcloud serve``: the store as a Prometheus data source (needs the ``serve`` extra)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from snapcloud.cli._app import DebugOpt, EndpointOpt, StoreOpt, app, err
from snapcloud.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:9090"


@app.command()
def serve(
    listen: Annotated[
        str, typer.Option(help="HOST:PORT to listen on (Prometheus's default port).")
    ] = DEFAULT_LISTEN,
    max_samples: Annotated[
        int, typer.Option(help="Samples one query may load (else 422 execution).", min=1)
    ] = 50_000_000,
    timeout: Annotated[
        float, typer.Option(help="Seconds one query may take (else 503 timeout).", min=0.001)
    ] = 120.0,
    max_concurrency: Annotated[int, typer.Option(help="Queries run at once.", min=1)] = 4,
    cache_mib: Annotated[
        int, typer.Option(help="MiB of immutable data objects kept between requests.", min=0)
    ] = 256,
    catalog_ttl: Annotated[
        float, typer.Option(help="Seconds a catalog entry (host labels) is reused.", min=0)
    ] = 60.0,
    store: StoreOpt = None,
    endpoint_url: EndpointOpt = None,
    debug: DebugOpt = False,
) -> int:
    """Serve the Prometheus HTTP API (queries, series, labels, metadata) over the store,
    read-only, for Grafana's Prometheus data source. See docs/SERVE.md."""
    try:
        from snapcloud.serve import ServeConfig, open_api, parse_listen, run
    except ImportError as exc:
        raise ConfigError(
            f"snapcloud serve needs the serve extra ({exc.name} is missing): "
            "pip install 'snapcloud[serve]'"
        ) from None
    parse_listen(listen)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, format="%(levelname)s %(message)s"
    )
    api = open_api(
        store,
        endpoint_url=endpoint_url,
        config=ServeConfig(max_samples=max_samples, timeout_s=timeout),
        cache_bytes=cache_mib * 2**20,
        catalog_ttl_s=catalog_ttl,
    )
    err.print(
        f"snapcloud serve: {api.repo.description} at http://{listen}/ "
        "(add it in Grafana as a Prometheus data source)",
        markup=False,
    )
    run(api, listen, max_concurrency=max_concurrency)
    return 0
