from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.settings import (
    DEFAULT_MANIFEST_PATH,
    DEFAULT_WORKERS,
    resolve_settings,
)
from pipeline.errors import ConfigError


def resolve(options: dict[str, Any] | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return resolve_settings(options or {}, env or {})


def test_defaults_use_the_embedded_target() -> None:
    settings = resolve()
    assert settings.embedded and settings.bucket is None
    assert settings.prefix == "static" and settings.static_dir == Path("static")
    assert settings.manifest_path == DEFAULT_MANIFEST_PATH and settings.workers == DEFAULT_WORKERS


def test_command_line_beats_environment_beats_default() -> None:
    env = {"CDN_BUCKET": "from-env", "CDN_PREFIX": "envp", "AWS_ENDPOINT_URL": "http://e:1",
           "CDN_MANIFEST": "env.json", "CDN_URL": "https://cdn.example"}
    settings = resolve({"bucket": "from-cli", "prefix": None}, env)
    assert settings.bucket == "from-cli" and settings.prefix == "envp"
    assert settings.endpoint_url == "http://e:1" and settings.manifest_path == Path("env.json")
    assert not settings.embedded


def test_prefix_is_normalised() -> None:
    assert resolve({"prefix": "/assets/v1/"}).prefix == "assets/v1"


@pytest.mark.parametrize("prefix", ["a/../b", "a//b", "./a", "a\\b", "/", "//", "..", " static",
                                    "static ", "a/ b", "st\natic", "st\x7fatic"])
def test_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        resolve({"prefix": prefix})


@pytest.mark.parametrize(("options", "env", "needle"), [
    ({"bucket": ""}, {}, "--bucket is empty"),
    ({"prefix": ""}, {}, "--prefix is empty"),
    ({}, {"CDN_BUCKET": ""}, "CDN_BUCKET is set but empty"),
    ({}, {"CDN_PREFIX": ""}, "CDN_PREFIX is set but empty"),
])
def test_an_empty_bucket_or_prefix_is_an_error_not_a_fallback(
    options: dict[str, Any], env: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        resolve(options, env)


def test_empty_optional_environment_variables_count_as_unset() -> None:
    settings = resolve(env={"CDN_URL": "", "AWS_REGION": ""})
    assert settings.cdn_url is None and settings.region is None


@pytest.mark.parametrize(("static", "target"), [("static", "static/out"), ("site/static", "site"),
                                                ("static", "static")])
def test_overlapping_static_folder_and_target_are_refused(
    static: str, target: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="inside"):
        resolve({"static_dir": str(tmp_path / static), "target_dir": str(tmp_path / target)})


def test_static_folder_containing_the_embedded_default_is_refused() -> None:
    with pytest.raises(ConfigError, match="inside the static folder"):
        resolve({"static_dir": "."})  # build/cdn is inside it
    assert resolve({"static_dir": ".", "bucket": "abc"}).static_dir == Path(".")  # no folder


def test_a_higher_source_chooses_the_destination() -> None:
    settings = resolve({"target_dir": "out"}, {"CDN_BUCKET": "from-env"})
    assert settings.bucket is None and settings.target_dir == Path("out")
    assert settings.sources["target_dir"] == "--target-dir"
    settings = resolve({"bucket": "abc"}, {"CDN_TARGET_DIR": "out"})
    assert settings.bucket == "abc" and settings.target_dir is None


@pytest.mark.parametrize("bucket", ["A", "ab", "Bad_Upper", "x" * 64, "a..b", "-ab"])
def test_bad_bucket_name_is_refused(bucket: str) -> None:
    with pytest.raises(ConfigError, match="bucket name"):
        resolve({"bucket": bucket})


@pytest.mark.parametrize("url", ["localhost:9000", "ftp://x", "http://"])
def test_bad_endpoint_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        resolve({"endpoint_url": url})


def test_endpoint_credentials_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        resolve({"cdn_url": "gopher://user:s3cr3t@host/x"})
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("workers", ["0", "65", "many"])
def test_workers_are_bounded(workers: str) -> None:
    with pytest.raises(ConfigError, match="workers"):
        resolve(env={"CDN_WORKERS": workers})


def test_bucket_and_folder_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="not both"):
        resolve({"bucket": "abc", "target_dir": "out"})
