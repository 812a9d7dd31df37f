"""The commands as a user runs them: ``snapcloud record --scrape`` against a loopback
exporter, then ``snapcloud serve`` over the store it wrote, both as real processes."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.serve.process import wait_ready

pytest.importorskip("prometheus_client")

DATA = Path(__file__).resolve().parents[1] / "collectors" / "data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snapcloud", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_record_scrape_then_serve(tmp_path):
    page = (DATA / "dcgm_exporter_8gpu.prom").read_text().encode()

    class Exporter(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    exporter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    store = f"file://{tmp_path / 'store'}"
    targets = tmp_path / "targets.txt"
    targets.write_text(
        f"# the GPU exporter\ndcgm=http://127.0.0.1:{exporter.server_address[1]}/metrics\n"
    )
    try:
        rec = _run(
            "record",
            "--scrape-config",
            str(targets),
            "--no-gpu",
            "--duration",
            "2",
            "--interval",
            "0.2",
            "--window",
            "1",
            "--fingerprint",
            "train",
            "--host",
            "gpu-node-7",
            "--spool-dir",
            str(tmp_path / "spool"),
            "--store",
            store,
            env=env,
        )
    finally:
        exporter.shutdown()
    assert rec.returncode == 0, rec.stderr
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snapcloud",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--store",
            store,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        doc = requests.post(
            f"{url}/api/v1/query",
            data={
                "query": 'snapcloud_gpu_temp_c{host="gpu-node-7", gpu="1"}',
                "time": str(time.time()),
            },
        ).json()
        (series,) = doc["data"]["result"]
        assert series["value"][1] == "56"
        assert series["metric"]["gpu_pod"] == "llm-train-0"
        names = requests.get(f"{url}/api/v1/label/__name__/values").json()["data"]
        assert "snapcloud_gpu_power_w" in names and "snapcloud_scrape_dcgm_up" in names
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_serve_bad_listen_is_one_line(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    bad = _run("serve", "--listen", "nowhere", "--store", f"file://{tmp_path}", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "snapcloud: error: --listen: 'nowhere' is not HOST:PORT"
    ]


def test_serve_receive_bad_spool_size_is_one_line(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    args = ["serve", "--receive", "--receive-spool-max", "lots", "--store", f"file://{tmp_path}"]
    bad = _run(*args, env=env)
    assert bad.returncode == 2
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith("snapcloud: error: --receive-spool-max") and "lots" in line


def test_a_second_receiver_on_one_spool_is_refused(tmp_path):
    pytest.importorskip("cramjam")
    env = {**os.environ, "HOME": str(tmp_path), "NO_COLOR": "1"}
    store = f"file://{tmp_path / 'store'}"
    spool = str(tmp_path / "spool")
    port = _free_port()
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snapcloud",
            "--store",
            store,
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--receive",
            "--receive-spool",
            spool,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", first)
        second = _run(
            "serve",
            "--listen",
            f"127.0.0.1:{_free_port()}",
            "--receive",
            "--receive-spool",
            spool,
            "--store",
            store,
            env=env,
        )
        assert second.returncode != 0
        (line,) = second.stderr.strip().splitlines()
        assert "in use by another receiver" in line and "--receive-spool" in line
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)
