"""open_store: URL forms, environment fallbacks, and errors that never echo secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapcloud.backends import (
    FileStore,
    MemoryStore,
    S3Store,
    default_store_path,
    open_store,
)
from snapcloud.errors import ConfigError


def test_file_urls(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/new/store")
    assert isinstance(store, FileStore) and store.root == tmp_path / "new" / "store"
    assert store.root.is_dir()  # created
    assert open_store(f"file://localhost{tmp_path}/s").root == tmp_path / "s"  # type: ignore[attr-defined]
    spaced = open_store(f"file://{tmp_path}/with%20space")
    assert isinstance(spaced, FileStore) and spaced.root == tmp_path / "with space"


def test_s3_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store("s3://bucket/a/prefix", endpoint_url="http://127.0.0.1:9", sse="AES256")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.sse) == ("bucket", "a/prefix/", "AES256")
    assert store.endpoint_url == "http://127.0.0.1:9"
    bare = open_store("s3://bucket")
    assert isinstance(bare, S3Store) and (bare.prefix, bare.endpoint_url) == ("", None)


def test_s3_endpoint_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:2")
    assert open_store("s3://b").endpoint_url == "http://127.0.0.1:2"  # type: ignore[attr-defined]
    monkeypatch.setenv("SNAPCLOUD_ENDPOINT_URL", "http://127.0.0.1:1")
    assert open_store("s3://b").endpoint_url == "http://127.0.0.1:1"  # type: ignore[attr-defined]
    explicit = open_store("s3://b", endpoint_url="http://127.0.0.1:3")
    assert explicit.endpoint_url == "http://127.0.0.1:3"  # type: ignore[attr-defined]


def test_memory_urls() -> None:
    assert open_store("memory://url-test") is MemoryStore.named("url-test")
    assert open_store("memory://") is MemoryStore.named("")
    assert open_store("memory://url-test") is not open_store("memory://url-test-2")


def test_no_url_means_env_then_the_embedded_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAPCLOUD_STORE", f"file://{tmp_path}/from-env")
    env = open_store()
    assert isinstance(env, FileStore) and env.root == tmp_path / "from-env"
    monkeypatch.delenv("SNAPCLOUD_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "xdg" / "snapcloud" / "store"
    default = open_store()
    assert isinstance(default, FileStore) and default.root == default_store_path()


SECRET = "wJalrXUtnFAKESECRETxyz"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "nonsense",
        "/abs/path/without/scheme",
        "file://relative/path",
        "file:relative",
        "s3://",
        "s3:///only/a/prefix",
        "s3://bad bucket/p",
        f"s3://AKIAFAKESECRETKEY123:{SECRET}@bucket/p",
        f"s3://bucket/p?secret={SECRET}",
        f"file://user:{SECRET}@localhost/tmp/x",
        f"https://user:{SECRET}@example.com/store",
        f"AKIAFAKESECRETKEY123{SECRET}:x",
        "s3://[::1/p",
    ],
)
def test_bad_urls_are_one_line_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(url)
    message = str(info.value)
    assert message and "\n" not in message
    assert SECRET not in message and "AKIAFAKESECRETKEY123" not in message


def test_s3_options_need_an_s3_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sse"):
        open_store(f"file://{tmp_path}", sse="AES256")
    with pytest.raises(ConfigError, match="colour"):
        open_store("s3://bucket", colour="blue")
    assert isinstance(open_store(f"file://{tmp_path}", endpoint_url="http://x:1"), FileStore)
