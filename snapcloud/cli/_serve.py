"""``snapcloud serve``: the store as a Prometheus data source (needs the ``serve`` extra)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from snapcloud.backends import secret_redacting_filter
from snapcloud.cli._app import CONTEXT, cli, err, global_options, settings
from snapcloud.errors import ConfigError

if TYPE_CHECKING:
    from snapcloud.serve import Receiver

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
@click.option(
    "--receive",
    is_flag=True,
    help="Also take Prometheus remote write at /api/v1/write (acknowledged once spooled).",
)
@click.option(
    "--receive-spool",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Where remote write is spooled until stored (default: user cache dir/receive).",
)
@click.option(
    "--receive-window",
    type=click.FloatRange(min=1.0),
    default=60.0,
    metavar="SECONDS",
    help="Window of the snapshots remote write stores.",
)
@click.option(
    "--receive-flush",
    type=click.FloatRange(min=0.1),
    default=30.0,
    metavar="SECONDS",
    help="Seconds between uploads of the remote-write spool.",
)
@click.option(
    "--receive-spool-max",
    default="1GiB",
    metavar="SIZE",
    help="Spool size past which remote write gets 503 (Prometheus retries).",
)
@global_options
def serve(
    listen: str,
    max_samples: int,
    timeout: float,
    max_concurrency: int,
    cache_mib: int,
    catalog_ttl: float,
    receive: bool,
    receive_spool: Path | None,
    receive_window: float,
    receive_flush: float,
    receive_spool_max: str,
) -> int:
    """Serve the Prometheus HTTP API (queries, series, labels, metadata) over the store,
    read-only, for Grafana's Prometheus data source; with --receive, take Prometheus
    remote write into the store too. See docs/SERVE.md."""
    try:
        from snapcloud.serve import ServeConfig, open_api, parse_listen, run
    except ImportError as exc:
        raise ConfigError(
            f"snapcloud serve needs the serve extra ({exc.name} is missing): "
            "pip install 'snapcloud[serve]'"
        ) from None
    parse_listen(listen)
    conf = settings()
    receiver = None
    if receive:
        receiver = _receiver(receive_spool, receive_window, receive_flush, receive_spool_max)
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
    if receiver is not None:
        err.print(
            f"snapcloud serve: remote write at http://{listen}/api/v1/write, spooled in "
            f"{receiver.config.spool_dir}",
            markup=False,
        )
    run(api, listen, max_concurrency=max_concurrency, receiver=receiver)
    return 0


def _receiver(spool: Path | None, window: float, flush: float, spool_max: str) -> Receiver:
    """The remote-write receiver: a writer on the store (created if absent, its policy
    applied, as import does) and its spool."""
    import platformdirs

    from snapcloud.cli._app import open_with_policy
    from snapcloud.settings import parse_size

    try:
        from snapcloud.serve import ReceiveConfig, Receiver
    except ImportError as exc:
        raise ConfigError(
            f"snapcloud serve --receive needs the serve extra ({exc.name} is missing): "
            "pip install 'snapcloud[serve]'"
        ) from None
    limit = parse_size(spool_max, field="--receive-spool-max")
    repo, _ = open_with_policy(create=True)
    directory = spool or Path(platformdirs.user_cache_dir("snapcloud")) / "receive"
    config = ReceiveConfig(
        spool_dir=directory, window_s=window, flush_s=flush, max_spool_bytes=limit
    )
    return Receiver(repo, config)
