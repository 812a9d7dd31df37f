"""Per-machine settings: command-line flags > ``SNAPCLOUD_*`` environment > TOML file > defaults.

The one place that decides what a setting's value is. The config file is TOML, at
``--config FILE``, else ``SNAPCLOUD_CONFIG``, else ``config.toml`` in the user's config
directory (``~/.config/snapcloud/config.toml`` on Linux; a missing default file is no
error)::

    store = "s3://fleet-profiles/prod"
    endpoint_url = "https://minio.internal:9000"

    [record]
    interval = 1.0          # seconds between samples
    window = 60.0           # seconds per snapshot
    spool_dir = "/var/spool/snapcloud"
    spool_max_bytes = "4GiB"
    labels = { cluster = "a", rack = "r12" }

    [query]
    workers = 32

    [compact]
    lease_ttl = 900.0

Each key also has an environment variable: ``SNAPCLOUD_STORE``,
``SNAPCLOUD_RECORD_INTERVAL``, ``SNAPCLOUD_QUERY_WORKERS`` (``SNAPCLOUD_`` + section +
key, upper case; ``labels`` as ``k=v,k2=v2``; an empty variable counts as unset). An
unknown key in the file, an unknown ``SNAPCLOUD_RECORD_*``/``_QUERY_*``/``_COMPACT_*``
variable, or a bad value raises ``ConfigError`` naming the file or variable and the key.

Store-wide settings (the retention policy, the keyframe interval) are not here: they live
in the store itself, so that every writer and compactor agrees (``snapcloud policy``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticError

from snapcloud.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "CompactSettings",
    "QuerySettings",
    "RecordSettings",
    "ResolvedSettings",
    "Settings",
    "default_config_path",
    "load_settings",
    "parse_size",
]

CONFIG_ENV = "SNAPCLOUD_CONFIG"
ENV_PREFIX = "SNAPCLOUD_"

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*", re.IGNORECASE)


def parse_size(text: str | int, *, field: str = "size") -> int:
    """Bytes from ``1073741824``, ``512MiB``, ``1G`` or ``1.5GB`` (all powers of 1024).

    Raises ``ConfigError`` naming ``field`` for anything else or a size below one byte.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        m = _SIZE.fullmatch(str(text))
        if m is None:
            raise ConfigError(f"{field}: {text!r} is not a size like 1GiB", field=field)
        scale = 1024 ** " KMGT".index((m.group(2) or " ").upper())
        size = int(float(m.group(1)) * scale)
    if size < 1:
        raise ConfigError(f"{field}: {text!r} is not positive", field=field)
    return size


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordSettings(_Section):
    """Defaults of ``snapcloud record`` on this machine."""

    interval: float = Field(1.0, ge=0.001, allow_inf_nan=False)
    window: float = Field(60.0, ge=0.001, allow_inf_nan=False)
    host: str | None = None
    fingerprint: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    spool_dir: Path | None = None
    spool_max_bytes: int = 2**30
    flush_timeout: float = Field(10.0, ge=0, allow_inf_nan=False)
    lease_ttl: float = Field(60.0, ge=1, allow_inf_nan=False)
    gpu_opt_in: str | None = None
    gpu: bool = True

    @field_validator("spool_max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        try:
            return parse_size(value, field="spool_max_bytes")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("spool_max_bytes: ")) from None

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: k=v,k2=v2
            pairs = [p for p in value.split(",") if p.strip()]
            if any("=" not in p for p in pairs):
                raise ValueError(f"{value!r} is not KEY=VALUE[,KEY=VALUE...]")
            return dict(p.split("=", 1) for p in pairs)
        return value


class QuerySettings(_Section):
    """Defaults of the fleet commands (``query``, ``plot``, ``export-parquet``)."""

    workers: int = Field(16, ge=1, le=256)


class CompactSettings(_Section):
    """Defaults of ``snapcloud compact``."""

    lease_ttl: float = Field(600.0, ge=1, allow_inf_nan=False)


class Settings(_Section):
    """Every per-machine setting, resolved."""

    store: str | None = None
    endpoint_url: str | None = None
    debug: bool = False
    record: RecordSettings = Field(default_factory=RecordSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    compact: CompactSettings = Field(default_factory=CompactSettings)


_SECTIONS: dict[str, type[_Section]] = {
    "record": RecordSettings,
    "query": QuerySettings,
    "compact": CompactSettings,
}
_TOP = [name for name in Settings.model_fields if name not in _SECTIONS]


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings, the config file they read (``None``: none), and each key's source."""

    settings: Settings
    path: Path | None
    sources: dict[str, str] = field(default_factory=dict)


def default_config_path() -> Path:
    """``config.toml`` in the user's config directory (not created here)."""
    return Path(platformdirs.user_config_dir("snapcloud")) / "config.toml"


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> ResolvedSettings:
    """Resolve the settings: ``flags`` (only those given), environment, file, defaults.

    ``flags`` is nested like the file (``{"store": ..., "record": {"interval": 2.0}}``);
    ``config`` is the ``--config`` path; ``env`` defaults to ``os.environ``. Raises
    ``ConfigError`` naming the file, variable or flag and the key of a bad value.
    """
    env = os.environ if env is None else env
    path = _config_path(config, env)
    layers = [
        (f"config file {path}", _read_file(path) if path is not None else {}),
        ("environment", _from_env(env)),
        ("flags", _nested(flags or {})),
    ]
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, layer in layers:
        checked = _validate(layer, name)
        for key, value in _flat(layer).items():
            section, _, leaf = key.rpartition(".")
            target = merged.setdefault(section, {}) if section else merged
            if key == "record.labels":  # labels add up across layers; a later value wins
                value = {**target.get(leaf, {}), **checked.record.labels}
            target[leaf] = value
            sources[key] = name
    return ResolvedSettings(_validate(merged, "settings"), path, sources)


def _config_path(config: Path | str | None, env: Mapping[str, str]) -> Path | None:
    named = config or env.get(CONFIG_ENV) or None
    if named is None:
        default = default_config_path()
        return default if default.is_file() else None
    path = Path(named).expanduser()
    if not path.is_file():
        who = "--config" if config else CONFIG_ENV
        raise ConfigError(f"{who}: config file {path} does not exist", field="config")
    return path


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not TOML: {exc}", field="config") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}", field="config") from None
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings ``SNAPCLOUD_*`` variables give; an unknown section variable is an error."""
    out: dict[str, Any] = {}
    for name in _TOP:
        value = env.get(ENV_PREFIX + name.upper(), "")
        if value != "":
            out[name] = value
    for section, model in _SECTIONS.items():
        prefix = f"{ENV_PREFIX}{section.upper()}_"
        for var, value in env.items():
            if not var.startswith(prefix) or value == "":
                continue
            key = var[len(prefix) :].lower()
            if key not in model.model_fields:
                known = ", ".join(prefix + k.upper() for k in model.model_fields)
                raise ConfigError(f"environment variable {var}: unknown; known: {known}")
            out.setdefault(section, {})[key] = value
    return out


def _nested(flags: Mapping[str, Any]) -> dict[str, Any]:
    """Drop flags not given (``None``)."""
    out: dict[str, Any] = {}
    for key, value in flags.items():
        if isinstance(value, Mapping):
            inner = _nested(value)
            if inner:
                out[key] = inner
        elif value is not None:
            out[key] = value
    return out


def _flat(layer: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in layer.items():
        if key in _SECTIONS and isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _validate(layer: Mapping[str, Any], source: str) -> Settings:
    try:
        return Settings.model_validate(layer)
    except PydanticError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        if source == "environment":
            source = f"environment variable {_env_name(key)}"
        elif source == "flags":  # the flag's name says which key
            flag = "--" + key.rpartition(".")[2].replace("_", "-")
            raise ConfigError(f"{flag}: {msg}", field=key) from None
        raise ConfigError(f"{source}: {key}: {msg}", field=key) from None


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()
