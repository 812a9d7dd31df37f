"""Scrape cost: a dcgm-exporter page for 8 GPUs (~500 series) read at 1 Hz.

An exporter subprocess serves, over loopback HTTP, the documented dcgm-exporter
format (tests/collectors/data/dcgm_exporter_8gpu.prom's 25 fields, plus 37 more
profiling and device fields: 62 fields x 8 GPUs = 496 series), with new values on every
request, as a live exporter has. This process runs ``ScrapeCollector.collect()``:

- at 1 Hz for ``--seconds`` seconds: CPU time of this process over wall time (the
  issue's target: under 1% of a core);
- back to back ``--scrapes`` times: CPU ms per scrape (a steadier figure);
- the baseline in the same run: ``prometheus_client``'s parser alone on the same page.

    .venv/bin/python benchmarks/bench_scrape.py --seconds 60
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from snapcloud.collectors.scrape import ScrapeCollector

FIXTURE = Path(__file__).resolve().parents[1] / "tests/collectors/data/dcgm_exporter_8gpu.prom"
EXTRA = [f"DCGM_FI_PROF_EXTRA_{i}" for i in range(37)]

EXPORTER = textwrap.dedent(
    """
    import http.server, random, sys
    base = open(sys.argv[1]).read().splitlines()
    extra = sys.argv[3].split(",")
    temps = [ln for ln in base if ln.startswith("DCGM_FI_DEV_GPU_TEMP")]
    labels = [ln[ln.index("{"):ln.index("}") + 1] for ln in temps]
    for name in extra:
        base += ["# HELP %s a profiling field." % name, "# TYPE %s gauge" % name]
        base += ["%s%s 0" % (name, lab) for lab in labels]
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            out = []
            for ln in base:
                if ln.startswith("#"):
                    out.append(ln)
                else:
                    head = ln.rpartition(" ")[0]
                    out.append("%s %.3f" % (head, random.random() * 1000))
            body = ("\\n".join(out) + "\\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
    """
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--scrapes", type=int, default=200)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-c", EXPORTER, str(FIXTURE), str(port), ",".join(EXTRA)]
    )
    try:
        url = f"dcgm=http://127.0.0.1:{port}/metrics"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        measure(url, args)
    finally:
        server.terminate()
        server.wait()


def measure(url: str, args: argparse.Namespace) -> None:
    collector = ScrapeCollector([url])
    first = collector.collect()
    series = sum(1 for s in first if s.name.startswith("gpu."))
    page = collector._fetch(url.partition("=")[2], 2.0)[0]

    # back to back: CPU per scrape
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(args.scrapes):
        collector.collect()
    cpu_each = (time.process_time() - c0) / args.scrapes
    wall_each = (time.perf_counter() - w0) / args.scrapes

    # the library alone on the same page (the baseline: parsing every scrape in full)
    c0 = time.process_time()
    n = 20
    for _ in range(n):
        list(text_string_to_metric_families(page))
    parse_each = (time.process_time() - c0) / n

    # at 1 Hz, as the recorder ticks
    ticks = int(args.seconds)
    c0, w0 = time.process_time(), time.perf_counter()
    for k in range(ticks):
        collector.collect()
        delay = w0 + (k + 1) - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    cpu = time.process_time() - c0
    wall = time.perf_counter() - w0
    collector.close()
    print(
        f"page: {len(page.splitlines())} lines, {len(page)} bytes, {series} GPU series; "
        f"full parses: {collector.full_parses} of {1 + args.scrapes + ticks} scrapes"
    )
    print("\n| scrape of a dcgm-exporter page, 8 GPUs | CPU ms per scrape | % of a core at 1 Hz |")
    print("|---|---:|---:|")
    print(
        f"| ScrapeCollector, back to back ({args.scrapes} scrapes; wall {wall_each * 1e3:.2f} ms)"
        f" | {cpu_each * 1e3:.2f} | {cpu_each * 100:.2f} |"
    )
    print(
        f"| ScrapeCollector at 1 Hz for {wall:.0f} s (process CPU / wall) | "
        f"{cpu / ticks * 1e3:.2f} | {cpu / wall * 100:.2f} |"
    )
    print(
        f"| baseline: prometheus_client parser on every scrape ({n} parses) | "
        f"{parse_each * 1e3:.2f} | {parse_each * 100:.2f} |"
    )


if __name__ == "__main__":
    main()
