"""scripts/gpu_hw_check.py without a GPU: a clean refusal, and every phase over the fake library."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from snapcloud.collectors import GpuCollector
from tests.collectors.nvml_fake import MIB, FakeNvml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_hw_check.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_hw_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_nvml_it_says_why_and_exits_2(tmp_path: Path) -> None:
    probe = GpuCollector.open()
    available = probe.available
    probe.close()
    if available:  # pragma: no cover - a GPU host runs the real check instead
        pytest.skip("this host has a GPU")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_hw_check.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "OUT": str(tmp_path)},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip().endswith("no GPU check: NVML library not found: no GPU collector")
    assert list(tmp_path.iterdir()) == [], "nothing written"


def fake_smi(tmp_path: Path, nvml: FakeNvml) -> Path:
    """An nvidia-smi answering from the fake's values; GPU temperature 10 C off on purpose."""
    rows = {}
    for i in range(nvml.gpus):
        rows[i] = {
            "index": str(i),
            "uuid": f"GPU-{i}",
            "name": "NVIDIA H100 80GB HBM3",
            "utilization.gpu": str(int(nvml.knob(i, "util_gpu"))),
            "memory.total": str(int(nvml.knob(i, "fb_total") // MIB)),
            "memory.reserved": str(int(nvml.knob(i, "fb_reserved") // MIB)),
            "temperature.gpu": str(int(nvml.knob(i, "temp_gpu")) + 10),
            "power.draw.average": f"{nvml.expected_field(i, 185) / 1000:.2f}",
            "clocks.sm": str(int(nvml.knob(i, "clk_sm"))),
            "pstate": f"P{int(nvml.knob(i, 'pstate'))}",
            "ecc.errors.corrected.volatile.total": str(int(nvml.expected_field(i, 3))),
            "remapped_rows.pending": "Yes" if i % 2 else "No",
            "fan.speed": "[N/A]",
        }
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"ROWS = {rows!r}\n"
        "FIELDS = list(ROWS[0])\n"
        "if '--help-query-gpu' in sys.argv:\n"
        "    print('\\n'.join(f'\"{f}\"' for f in FIELDS)); sys.exit(0)\n"
        "if '--version' in sys.argv:\n"
        "    print('NVIDIA-SMI 550.90.07 (tests/collectors fake)'); sys.exit(0)\n"
        "q = next(a for a in sys.argv if a.startswith('--query-gpu=')).split('=', 1)[1]\n"
        "for i in sorted(ROWS):\n"
        "    print(', '.join(ROWS[i][f] for f in q.split(',')))\n"
    )
    script.chmod(0o755)
    return script.parent


def test_every_phase_over_the_fake_library(
    nvml: FakeNvml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{fake_smi(tmp_path, nvml)}:/usr/bin:/bin")
    out = tmp_path / "check.md"
    check = load_script()
    argv = ["--samples", "3", "--compare", "2", "--interval", "0.15", "--record-s", "3"]
    assert check.main([*argv, "--out", str(out)]) == 0
    text = out.read_text()
    assert "- GPUs: 8 x NVIDIA H100 80GB HBM3 (8); architectures ['hopper']" in text
    assert "NVIDIA-SMI 550.90.07 (tests/collectors fake)" in text
    assert "| default | 10.12 |" in text  # C calls counted through the proxy
    assert "| + pcie | 12.12 |" in text
    for field, smi in (("util_pct", "utilization.gpu"), ("sm_clock_mhz", "clocks.sm"),
                       ("power_avg_mw", "power.draw.average"), ("pstate", "pstate"),
                       ("fb_reserved_bytes", "memory.reserved"),
                       ("ecc_corrected", "ecc.errors.corrected.volatile.total"),
                       ("remapped_rows_pending", "remapped_rows.pending")):  # fmt: skip
        row = next(line for line in text.splitlines() if line.startswith(f"| `{field}` | `{smi}`"))
        assert row.endswith("| ok |"), row
    temp = next(line for line in text.splitlines() if line.startswith("| `temp_c` |"))
    assert temp.endswith("| 10 | **DIFF** |"), temp
    assert "| `fan_pct` | `fan.speed` |  |  |  | nvidia-smi N/A |" in text
    assert "| `power_avg_mw` |" in text.split("latencyUsec")[1]
    assert "- `gpu.0` not supported: retired_pages_dbe" in text
    # `snapcloud record` ran (a subprocess: the real pynvml there, no GPU, CPU only) and
    # its snapshots were read back from the file store.
    record = next(line for line in text.splitlines() if "snapcloud record" in line)
    assert ": exit 0," in record, text.split("snapcloud record")[1][:800]
    stored = re.search(r"- (\d+) snapshots stored", text)  # 1 or 2: windows sit on a 5 s grid
    assert stored is not None and int(stored.group(1)) >= 1, text
