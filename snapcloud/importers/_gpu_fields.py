"""How NVIDIA's tools name GPU fields, mapped to the recorder's own names and units.

The recorder (``snapcloud.collectors.gpu``, docs/GPU.md) names a GPU's series
``gpu.<index>.<field>`` in NVML's units (mW, bytes, MHz, %). An imported file from
``nvidia-smi --query-gpu``, ``nvidia-smi dmon``/``pmon`` or ``dcgmi dmon`` gets the same
name and unit wherever the tool reports the same quantity, so a query over
``gpu.*.power_avg_mw`` sees recorded and imported hosts alike. A field whose meaning is not
the recorder's, or that the recorder does not sample, keeps the tool's own name and unit
under ``gpu.<index>.``. The mapping is documented in README.md (import) and docs/GPU.md.

Unit changes are exact: a value is scaled as the decimal the tool printed
(``float(Decimal(repr(v)) * factor)``, and a plain product where that is exact), so
``53.78 W`` becomes ``53780.0`` mW, not ``53779.99999999999``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DCGM_FIELDS",
    "DMON_FIELDS",
    "NVSMI_FIELDS",
    "NVSMI_KEYS",
    "NVSMI_LABELS",
    "PMON_FIELDS",
    "GpuField",
    "parse_hex",
    "parse_pstate",
    "scale_exactly",
]

F64 = npt.NDArray[np.float64]
MIB = 1 << 20
_EXACT = 2.0**53


@dataclass(frozen=True)
class GpuField:
    """One tool field as the recorder names it: ``name`` in ``unit`` (``kind``), from
    values the tool prints in ``source_unit`` times ``scale``; ``parse`` says how a cell
    reads (``number``, or ``pstate`` for ``P0``.. and ``hex`` for bit masks)."""

    name: str
    unit: str
    source_unit: str
    scale: int = 1
    kind: str = "gauge"
    parse: str = "number"


def _f(name: str, unit: str, source: str | None = None, **kw: object) -> GpuField:
    return GpuField(name, unit, unit if source is None else source, **kw)  # type: ignore[arg-type]


#: nvidia-smi's ``power.draw``, dmon's ``pwr`` and DCGM's ``POWER`` are NVML's power usage:
#: a 1 s average on Ampere (except GA100) and newer, instantaneous before; the file does
#: not say which, so it is ``power_mw``, not the recorder's ``power_avg_mw`` or
#: ``power_instant_mw``. nvidia-smi's ``power.draw.average`` and ``.instant`` say it.
_POWER = _f("power_mw", "mW", "W", scale=1000)
_UTIL, _MEM_UTIL = _f("util_pct", "%"), _f("mem_util_pct", "%")
_ENC, _DEC = _f("enc_util_pct", "%"), _f("dec_util_pct", "%")
_TEMP, _MEM_TEMP = _f("temp_c", "C"), _f("mem_temp_c", "C")
_SM_CLOCK, _MEM_CLOCK = _f("sm_clock_mhz", "MHz"), _f("mem_clock_mhz", "MHz")
_GFX_CLOCK = _f("gfx_clock_mhz", "MHz")
_CLOCK_EVENTS = _f("clock_event_reasons", "bitmask", "", parse="hex")

# nvidia-smi --query-gpu, by the name its CSV header prints (it prints the long name of a
# short alias: clocks.sm -> clocks.current.sm), with the aliases too.
NVSMI_FIELDS: dict[str, GpuField] = {
    "power.draw": _POWER,
    "power.draw.average": _f("power_avg_mw", "mW", "W", scale=1000),
    "power.draw.instant": _f("power_instant_mw", "mW", "W", scale=1000),
    "enforced.power.limit": _f("power_limit_mw", "mW", "W", scale=1000),
    "temperature.gpu": _TEMP,
    "temperature.memory": _MEM_TEMP,
    "utilization.gpu": _UTIL,
    "utilization.memory": _MEM_UTIL,
    "utilization.encoder": _ENC,
    "utilization.decoder": _DEC,
    "memory.used": _f("fb_used_bytes", "bytes", "MiB", scale=MIB),
    "memory.free": _f("fb_free_bytes", "bytes", "MiB", scale=MIB),
    "memory.total": _f("fb_total_bytes", "bytes", "MiB", scale=MIB),
    "clocks.current.sm": _SM_CLOCK,
    "clocks.sm": _SM_CLOCK,
    "clocks.current.memory": _MEM_CLOCK,
    "clocks.mem": _MEM_CLOCK,
    "clocks.current.graphics": _GFX_CLOCK,
    "clocks.gr": _GFX_CLOCK,
    "fan.speed": _f("fan_pct", "%"),
    "pstate": _f("pstate", "pstate", "", parse="pstate"),
    "clocks_event_reasons.active": _CLOCK_EVENTS,
    "clocks_throttle_reasons.active": _CLOCK_EVENTS,
    "ecc.errors.corrected.volatile.total": _f("ecc_corrected", "errors", "", kind="counter"),
    "ecc.errors.uncorrected.volatile.total": _f("ecc_uncorrected", "errors", "", kind="counter"),
}
# Columns that say which GPU a row is (first found wins) and per-GPU facts kept as labels
# named like the recorder's (gpu.<index>.uuid, ...).
NVSMI_KEYS = ("index", "uuid", "pci.bus_id")
NVSMI_LABELS = {"uuid": "uuid", "pci.bus_id": "pci_bus_id", "name": "name"}

# nvidia-smi dmon columns (dmon's "sm" is the GPU utilization NVML reports, "pclk" the
# graphics clock, "fb" the frame buffer in use, in MiB).
DMON_FIELDS: dict[str, GpuField] = {
    "pwr": _POWER,
    "gtemp": _TEMP,
    "mtemp": _MEM_TEMP,
    "sm": _UTIL,
    "mem": _MEM_UTIL,
    "enc": _ENC,
    "dec": _DEC,
    "mclk": _MEM_CLOCK,
    "pclk": _GFX_CLOCK,
    "fb": _f("fb_used_bytes", "bytes", "MB", scale=MIB),
}

# nvidia-smi pmon columns, per process: gpu.<index>.proc.<pid>.<field>; "fb" is the
# process's GPU memory, what the recorder's proc.<pid>.mem_bytes holds.
PMON_FIELDS: dict[str, GpuField] = {
    "sm": _f("sm_util_pct", "%"),
    "mem": _MEM_UTIL,
    "enc": _ENC,
    "dec": _DEC,
    "jpg": _f("jpg_util_pct", "%"),
    "ofa": _f("ofa_util_pct", "%"),
    "fb": _f("mem_bytes", "bytes", "MB", scale=MIB),
}

# dcgmi dmon short names (dcgmi dmon -l), in lower case, of the DCGM fields the recorder
# also samples.
DCGM_FIELDS: dict[str, GpuField] = {
    "power": _POWER,
    "totec": _f("energy_mj", "mJ", kind="counter"),
    "tmptr": _TEMP,
    "mmtmp": _MEM_TEMP,
    "gputl": _UTIL,
    "mcutl": _MEM_UTIL,
    "encut": _ENC,
    "decut": _DEC,
    "smclk": _f("sm_clock_mhz", "MHz", "MHZ"),
    "mmclk": _f("mem_clock_mhz", "MHz", "MHZ"),
    "fbusd": _f("fb_used_bytes", "bytes", "MB", scale=MIB),
    "fbfre": _f("fb_free_bytes", "bytes", "MB", scale=MIB),
    "fbttl": _f("fb_total_bytes", "bytes", "MB", scale=MIB),
}


def scale_exactly(values: F64, factor: int) -> F64:
    """``values`` times ``factor`` as the decimals they were printed as: an integral value
    whose product stays under 2**53 is multiplied (exact), any other goes through
    ``Decimal(repr(v))`` (the shortest decimal that reads back as ``v``, which is the
    tool's own text for the few digits these tools print)."""
    if factor == 1 or not values.size:
        return values
    out = values * float(factor)
    exact = (np.floor(values) == values) & (np.abs(out) < _EXACT)
    rest = np.flatnonzero(~exact & np.isfinite(values))
    if rest.size:
        d = Decimal(factor)
        out[rest] = [float(Decimal(repr(v)) * d) for v in values[rest].tolist()]
    return out


def parse_pstate(cell: str) -> float:
    """``'P0'`` .. ``'P15'`` as the recorder stores a performance state (0 .. 15).

    Raises ``ValueError`` for anything else.
    """
    if len(cell) in (2, 3) and cell[0] in "Pp" and cell[1:].isascii() and cell[1:].isdigit():
        return float(int(cell[1:]))
    raise ValueError(f"{cell!r} is not a performance state P0..P15")


def parse_hex(cell: str) -> float:
    """``'0x0000000000000004'`` as the bit mask's value (the recorder stores it as a float).

    Raises ``ValueError`` for anything else.
    """
    if cell[:2].lower() == "0x" and cell.isascii() and len(cell) <= 18:
        return float(int(cell[2:], 16))
    raise ValueError(f"{cell!r} is not a hexadecimal bit mask")
