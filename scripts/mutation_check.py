"""Do the GPU tests kill the collector mutations issue 17 lists? Each applied to a copy, tested.

For each mutation: copy the working tree (without .venv and .git) to a temp
directory, apply the one-line change (it must match exactly once), run the GPU
tests there with this interpreter, and record the tests that failed. The
unmutated copy runs first and must pass; a mutation no test fails "survived".
The copy's own ``snapcloud`` is imported (pytest's ``pythonpath = ["."]``);
the script checks that too.

    python scripts/mutation_check.py            # all mutations, a table to stdout
    python scripts/mutation_check.py --only 3   # one of them
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NVML = "snapcloud/collectors/_nvml.py"
TESTS = ["tests/collectors/test_gpu.py", "tests/collectors/test_gpu_recorder.py"]


@dataclass(frozen=True)
class Mutation:
    """Text replacements in one file; ``swap`` exchanges the two strings instead."""

    name: str
    path: str
    edits: tuple[tuple[str, str], ...]
    swap: bool = False


MUTATIONS = (
    Mutation(
        "remapped-row order swapped (corrected <-> uncorrected)",
        NVML,
        (
            ('"remapped_rows_corr", 142', '"remapped_rows_corr", 143'),
            ('"remapped_rows_unc", 143', '"remapped_rows_unc", 142'),
        ),
    ),
    Mutation(
        "aggregate instead of volatile ECC",
        NVML,
        (
            ('"ecc_corrected", 3,', '"ecc_corrected", 5,'),
            ('"ecc_uncorrected", 4,', '"ecc_uncorrected", 6,'),
        ),
    ),
    Mutation(
        "always ullVal",
        NVML,
        (("float(getattr(v.value, _VALUE_MEMBER[kind]))", "float(v.value.ullVal)"),),
    ),
    Mutation(
        "SM clock <-> graphics clock",
        NVML,
        (('_clock("NVML_CLOCK_SM")', '_clock("NVML_CLOCK_GRAPHICS")'),),
        swap=True,
    ),
    Mutation(
        "encoder [1] instead of [0]",
        NVML,
        (("nv.nvmlDeviceGetEncoderUtilization(h)[0]", "nv.nvmlDeviceGetEncoderUtilization(h)[1]"),),
    ),
    Mutation(
        "PCIe TX <-> RX (nvmlDeviceGetPcieThroughput)",
        NVML,
        (("nv.NVML_PCIE_UTIL_TX_BYTES", "nv.NVML_PCIE_UTIL_RX_BYTES"),),
        swap=True,
    ),
    Mutation(
        "PCIe TX <-> RX (GPM metrics 20/21)",
        NVML,
        (
            ('"gpm.pcie_tx_mibps", 20', '"gpm.pcie_tx_mibps", 21'),
            ('"gpm.pcie_rx_mibps", 21', '"gpm.pcie_rx_mibps", 20'),
        ),
    ),
    Mutation(
        "invalid temperature sensor",
        NVML,
        (
            (
                "nv.nvmlDeviceGetTemperatureV(h, nv.NVML_TEMPERATURE_GPU)",
                "nv.nvmlDeviceGetTemperatureV(h, nv.NVML_TEMPERATURE_GPU + 1)",
            ),
        ),
    ),
    Mutation(
        "GPM fed the same sample twice",
        NVML,
        (
            (
                "self.mg.sample1, self.mg.sample2 = prev, cur",
                "self.mg.sample1, self.mg.sample2 = cur, cur",
            ),
        ),
    ),
)


def _apply(tree: Path, m: Mutation) -> None:
    path = tree / m.path
    text = path.read_text(encoding="utf-8")
    for old, new in m.edits:
        for needle in (old, new) if m.swap else (old,):
            if text.count(needle) != 1:
                raise SystemExit(
                    f"{m.name}: {needle!r} occurs {text.count(needle)} times in {m.path}"
                )
        if m.swap:
            text = text.replace(old, "\0").replace(new, old).replace("\0", new)
        else:
            text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


def _copy(dest: Path) -> None:
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".mypy_cache")
    shutil.copytree(ROOT, dest, ignore=ignore)


def _run(tree: Path) -> tuple[bool, list[str], float]:
    t0 = time.monotonic()
    check = (
        f"import snapcloud, sys; sys.exit(0 if snapcloud.__file__.startswith({str(tree)!r}) else 3)"
    )
    probe = subprocess.run([sys.executable, "-c", check], cwd=tree, capture_output=True)
    if probe.returncode != 0:
        raise SystemExit(f"{tree}: the copy's snapcloud is not the one imported")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "--tb=no", "-p", "no:randomly", *TESTS],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    failed = sorted(set(re.findall(r"^FAILED \S+::(\S+)", proc.stdout, re.M)))
    return proc.returncode == 0, failed, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    """Run the baseline and every mutation; print a markdown table; 1 if one survived."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", type=int, help="run mutation N (1-based) only")
    args = parser.parse_args(argv)
    chosen = [MUTATIONS[args.only - 1]] if args.only else list(MUTATIONS)
    survived = 0
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        base = Path(tmp) / "base"
        _copy(base)
        ok, failed, secs = _run(base)
        if not ok:
            print(f"unmutated copy fails: {failed}")
            return 2
        print(f"unmutated copy: all GPU tests pass ({secs:.0f} s)\n")
        print("| # | mutation | killed by (failing tests) |")
        print("|---|---|---|")
        for i, m in enumerate(chosen, 1):
            tree = Path(tmp) / f"m{i}"
            _copy(tree)
            _apply(tree, m)
            ok, failed, secs = _run(tree)
            if ok:
                survived += 1
            verdict = (
                f"{len(failed)}: " + ", ".join(f"`{t}`" for t in failed) if failed else "SURVIVED"
            )
            print(f"| {i} | {m.name} | {verdict} |", flush=True)
            shutil.rmtree(tree)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
