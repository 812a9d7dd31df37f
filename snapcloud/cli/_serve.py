"""``snapcloud serve``: the store as a Prometheus data source (needs the ``serve`` extra)."""

from __future__ import annotations

import logging

import click

from snapcloud.backends import secret_redacting_filter
from snapcloud.cli._app import CONTEXT, cli, err, global_options, settings
from snapcloud.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:9090"


@cli.command(context_settings=CONTEXT)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    metavar="HOST:PORT",
    help="Where to listen (Prometheus's default port).",
)
@click.option(
    "--max-samples",
    type=click.IntRange(min=1),
    default=50_000_000,
    metavar="N",
    help="Samples one query may load (else 422 execution).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    default=120.0,
    metavar="SECONDS",
    help="Seconds one query may take (else 503 timeout).",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=4,
    metavar="N",
    help="Queries run at once.",
)
@click.option(
    "--cache-mib",
    type=click.IntRange(min=0),
    default=256,
    metavar="MIB",
    help="MiB of immutable data objects kept between requests.",
)
@click.option(
    "--catalog-ttl",
    type=click.FloatRange(min=0),
    default=60.0,
    metavar="SECONDS",
    help="Seconds a catalog entry (host labels) is reused.",
)
@global_options
def serve(
    listen: str,
    max_samples: int,
    timeout: float,
    max_concurrency: int,
    cache_mib: int,
    catalog_ttl: float,
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
    conf = settings()
    logging.basicConfig(
        level=logging.DEBUG if conf.debug else logging.INFO, format="%(levelname)s %(message)s"
    )
    for handler in logging.getLogger().handlers:  # botocore's debug logs carry credentials
        handler.addFilter(secret_redacting_filter())
    api = open_api(
        conf.store,
        endpoint_url=conf.endpoint_url,
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
