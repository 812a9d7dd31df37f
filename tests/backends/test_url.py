from __future__ import annotations

from pathlib import Path

import pytest

from snapcloud.backends import FileStore, MemoryStore, S3Store, default_store_path, open_store
from snapcloud.errors import ConfigError


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = open_store(f"file://{tmp_path}/s")
    assert isinstance(fs, FileStore) and fs.root == tmp_path / "s"
    s3 = open_store("s3://bucket/a/prefix", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket", "a/prefix/")
    assert isinstance(open_store("memory://x"), MemoryStore)
    monkeypatch.setenv("SNAPCLOUD_STORE", f"file://{tmp_path}/env")
    env = open_store()
    assert isinstance(env, FileStore) and env.root == tmp_path / "env"
    monkeypatch.delenv("SNAPCLOUD_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path().is_relative_to(tmp_path / "xdg")


@pytest.mark.parametrize(
    "url",
    ["ftp://host/x", "file://relative/path", "s3://", "s3://user:pass@bucket/p", "nonsense"],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(url)
    assert "pass" not in str(info.value)
