"""Per-machine settings: flags > SNAPCLOUD_* environment > TOML file > defaults, errors named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapcloud.errors import ConfigError
from snapcloud.recorder import DEFAULT_SPOOL_MAX_BYTES
from snapcloud.settings import (
    RecordSettings,
    default_config_path,
    load_settings,
    parse_size,
)

FILE = """
store = "s3://from-file/prefix"
[record]
interval = 5
window = 30
spool_max_bytes = "2GiB"
labels = { cluster = "a", rack = "r1" }
[query]
workers = 4
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(FILE)
    return path


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    res = load_settings(env={"HOME": str(tmp_path)}, config=None)
    assert res.settings.record == RecordSettings()
    assert res.settings.record.spool_max_bytes == DEFAULT_SPOOL_MAX_BYTES
    assert res.settings.store is None and res.settings.query.workers == 16
    assert res.sources == {}


def test_each_layer_overrides_the_one_below(config: Path) -> None:
    env = {"SNAPCLOUD_RECORD_INTERVAL": "3", "SNAPCLOUD_STORE": "memory://env"}
    flags = {"record": {"interval": 2.0, "window": None}, "store": None}
    res = load_settings(flags, config=config, env=env)
    rec = res.settings.record
    assert (rec.interval, rec.window, rec.spool_max_bytes) == (2.0, 30.0, 2 * 2**30)
    assert res.settings.store == "memory://env"  # the flag was not given
    assert res.settings.query.workers == 4
    assert res.sources["record.interval"] == "flags"
    assert res.sources["store"] == "environment"
    assert res.sources["record.window"] == f"config file {config}"
    without_flag = load_settings(config=config, env=env).settings.record.interval
    without_env = load_settings(config=config, env={}).settings.record.interval
    assert (without_flag, without_env) == (3.0, 5.0)


def test_labels_add_up_across_layers(config: Path) -> None:
    env = {"SNAPCLOUD_RECORD_LABELS": "rack=r2,job=train"}
    res = load_settings({"record": {"labels": {"gpu": "h100"}}}, config=config, env=env)
    assert res.settings.record.labels == {
        "cluster": "a",
        "rack": "r2",
        "job": "train",
        "gpu": "h100",
    }


def test_config_file_from_the_environment_and_the_default_place(
    config: Path, tmp_path: Path
) -> None:
    res = load_settings(env={"SNAPCLOUD_CONFIG": str(config)})
    assert res.path == config and res.settings.store == "s3://from-file/prefix"
    # the default file lives in the user's config directory; a missing one is no error
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_CONFIG_HOME", None)
    code = (
        "from snapcloud.settings import default_config_path, load_settings;"
        "print(default_config_path()); print(load_settings().settings.store)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(home / ".config" / "snapcloud" / "config.toml"), "None"]
    (home / ".config" / "snapcloud").mkdir(parents=True)
    (home / ".config" / "snapcloud" / "config.toml").write_text('store = "memory://home"\n')
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[1] == "memory://home"
    assert default_config_path().name == "config.toml"


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("stor = 'x'\n", {}, "{file}: stor: unknown key"),
        ("[record]\nintervall = 1\n", {}, "{file}: record.intervall: unknown key"),
        ("[recorder]\ninterval = 1\n", {}, "{file}: recorder: unknown key"),
        ("[record]\ninterval = 'fast'\n", {}, "{file}: record.interval: "),
        ("[record]\ninterval = 0\n", {}, "{file}: record.interval: "),
        ("[record]\nspool_max_bytes = '1 lot'\n", {}, "record.spool_max_bytes: '1 lot' is not"),
        ("[query]\nworkers = 1000\n", {}, "{file}: query.workers: "),
        ("store = [\n", {}, "{file}: not TOML"),
        ("", {"SNAPCLOUD_RECORD_WINDOW": "-1"}, "SNAPCLOUD_RECORD_WINDOW: record.window"),
        ("", {"SNAPCLOUD_RECORD_WINDOWS": "1"}, "SNAPCLOUD_RECORD_WINDOWS: unknown"),
        ("", {"SNAPCLOUD_QUERY_WORKERS": "many"}, "SNAPCLOUD_QUERY_WORKERS: query.workers"),
        ("", {"SNAPCLOUD_RECORD_LABELS": "novalue"}, "SNAPCLOUD_RECORD_LABELS"),
    ],
)
def test_bad_settings_name_the_file_or_variable_and_key(
    tmp_path: Path, text: str, env: dict[str, str], needle: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(config=path, env=env)
    assert needle.format(file=f"config file {path}") in str(exc.value)


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--config: config file .*nope\.toml does not exist"):
        load_settings(config=tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="SNAPCLOUD_CONFIG: config file"):
        load_settings(env={"SNAPCLOUD_CONFIG": str(tmp_path / "nope.toml")})


def test_empty_variables_count_as_unset(config: Path) -> None:
    res = load_settings(config=config, env={"SNAPCLOUD_STORE": "", "SNAPCLOUD_RECORD_WINDOW": ""})
    assert res.settings.store == "s3://from-file/prefix" and res.settings.record.window == 30


def test_unrelated_snapcloud_variables_are_left_to_their_owners() -> None:
    env = {"SNAPCLOUD_SSE": "AES256", "SNAPCLOUD_COMPACT_LEASE_TTL": "60"}
    res = load_settings(env=env)
    assert res.settings.compact.lease_ttl == 60.0
    # the compactor reads no variable of its own (no test hook in the product)
    with pytest.raises(ConfigError, match="SNAPCLOUD_COMPACT_PAUSE_AT: unknown"):
        load_settings(env={**env, "SNAPCLOUD_COMPACT_PAUSE_AT": "2"})


@pytest.mark.parametrize(
    ("text", "size"),
    [("1073741824", 2**30), ("1GiB", 2**30), ("512MiB", 2**29), ("2g", 2 * 2**30), (4096, 4096)],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


# ---------------------------------------------------------------------------- through the CLI


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SNAPCLOUD_")}
    return subprocess.run(
        [sys.executable, "-m", "snapcloud", *args],
        env={**full, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_cli_precedence_flag_environment_file(tmp_path: Path) -> None:
    stores = {name: tmp_path / name for name in ("file", "env", "flag")}
    for path in stores.values():
        path.mkdir()  # stats only reads: it never creates a store
    config = tmp_path / "c.toml"
    config.write_text(f'store = "file://{stores["file"]}"\n')
    env = {"SNAPCLOUD_CONFIG": str(config), "HOME": str(tmp_path)}

    def store_of(*args: str, **extra: str) -> str:
        res = _cli(*args, "stats", "--json", env={**env, **extra})
        assert res.returncode == 0, res.stderr
        return str(json.loads(res.stdout)["store"])

    assert store_of() == f"file://{stores['file']}"
    assert store_of(SNAPCLOUD_STORE=f"file://{stores['env']}") == f"file://{stores['env']}"
    flag = f"file://{stores['flag']}"
    assert store_of("--store", flag, SNAPCLOUD_STORE=f"file://{stores['env']}") == flag


def test_cli_record_takes_its_spool_and_labels_from_the_config_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    config = tmp_path / "c.toml"
    config.write_text(
        f'store = "file://{tmp_path / "store"}"\n[record]\nspool_dir = "{spool}"\n'
        'window = 1\ninterval = 0.25\nhost = "cfg-host"\nlabels = { cluster = "a" }\n'
    )
    res = _cli(
        "record",
        "--duration",
        "1.2",
        "--no-gpu",
        "--label",
        "job=t",
        "--json",
        env={"SNAPCLOUD_CONFIG": str(config), "HOME": str(tmp_path)},
    )
    assert res.returncode == 0, res.stderr
    windows = [json.loads(line) for line in res.stdout.splitlines()]
    assert windows and all(w["host"] == "cfg-host" for w in windows)
    assert spool.is_dir()
    res = _cli("show", "--host", "cfg-host", "--json", "0", env={"SNAPCLOUD_CONFIG": str(config)})
    assert res.returncode == 0, res.stderr
    labels = json.loads(res.stdout)["labels"]
    assert (labels["cluster"], labels["job"]) == ("a", "t")


def test_cli_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[record]\nwindow = -1\n")
    res = _cli("stats", env={"SNAPCLOUD_CONFIG": str(config)})
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"config file {config}: record.window" in res.stderr
