"""``snapcloud import`` on the files operators have: nvidia-smi's CSV, --key columns,
and a file imported again after it grew (only its new samples are stored)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from snapcloud.cli import main
from snapcloud.store import Repository

DATA = Path(__file__).resolve().parents[1] / "importers" / "data"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_nvidia_smi_csv_twice(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    path = tmp_path / "smi.csv"
    shutil.copy(DATA / "nvidia_smi_query_2gpu.csv", path)
    args = ["import", "--store", store, "--host", "node-1", "--json", str(path)]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert json.loads(out)["samples"] == 17  # 6 rows x 3 fields, one [N/A]
    stream = Repository.open(store).stream("node-1")
    snap = stream.get(0)
    assert {m.name for m in snap.metrics} >= {"gpu.0.power_mw", "gpu.1.power_mw"}
    assert snap.labels["gpu.1.uuid"] == "GPU-9e8d7c6b-5a49-4382-b1a0-f9e8d7c6b5a4"
    code, out, err = run(capsys, *args)
    doc = json.loads(out)
    assert code == 0 and doc["snapshots"] == 0 and doc["samples_already_stored"] == 17


def test_import_with_key_columns(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    path = tmp_path / "racks.csv"
    path.write_text("ts,rack,temp\n1700000000.5,a,40\n1700000000.5,b,41\n")
    code, _, err = run(
        capsys, "import", "--store", store, "--host", "dc", "--key", "rack", str(path)
    )
    assert code == 0, err
    names = {m.name for m in Repository.open(store).stream("dc").get(0).metrics}
    assert names == {"rack.a.temp", "rack.b.temp"}
    code, _, err = run(
        capsys, "import", "--store", store, "--host", "dc", "--key", "row", str(path)
    )
    assert code == 2 and "--key 'row': no such column" in err and len(err.splitlines()) == 1
