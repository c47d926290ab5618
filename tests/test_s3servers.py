"""The test servers' own promises: a clear failure when a server cannot start, and the
backend names a developer may type."""

from __future__ import annotations

import glob
import tempfile
from pathlib import Path

import pytest

from tests.s3servers import parse_backends, seaweedfs_server


def test_a_server_that_dies_at_start_fails_with_the_tail_of_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'line one'\necho 'cannot bind: address in use' >&2\nexit 3\n")
    fake.chmod(0o755)
    before = set(glob.glob(f"{tempfile.gettempdir()}/seaweedfs-tests-*"))
    with pytest.raises(RuntimeError) as failure, seaweedfs_server(binary=str(fake)):
        pass
    message = str(failure.value)
    assert "exited with code 3" in message
    assert "line one" in message and "cannot bind: address in use" in message
    assert set(glob.glob(f"{tempfile.gettempdir()}/seaweedfs-tests-*")) == before  # removed


def test_backend_names() -> None:
    assert parse_backends("moto") == ("moto",)
    assert parse_backends(" seaweedfs , moto,seaweedfs") == ("seaweedfs", "moto")
    with pytest.raises(ValueError, match=r"minio.*choose from moto, seaweedfs"):
        parse_backends("moto,minio")
    with pytest.raises(ValueError):
        parse_backends(" , ")
