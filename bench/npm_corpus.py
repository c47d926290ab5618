"""A fixed corpus of popular real CSS and JavaScript, fetched from the npm registry.

    python bench/npm_corpus.py        # fetch (or verify) and print the files

Each package is pinned to a version and to the registry's sha512 ``integrity`` of its
tarball, so every machine measures the same bytes. ``npm pack`` fetches the tarball into
``bench/.cache/npm/`` (ignored by git: their code is never committed), the integrity is
checked, and only the listed files are read out of it: the minified builds a site ships.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache" / "npm"


@dataclass(frozen=True)
class Package:
    """One pinned npm package and the files of it that the corpus uses."""

    name: str
    version: str
    integrity: str
    files: tuple[str, ...]

    @property
    def tarball(self) -> Path:
        """Where ``npm pack`` writes it (``@scope/name`` becomes ``scope-name``)."""
        return CACHE / f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


#: name version, the registry's sha512 of the tarball, the files used (the minified builds).
PACKAGES = tuple(Package(*spec.split(), integrity, files) for spec, integrity, files in (
    ("bootstrap 5.3.3",
     "sha512-8HLCdWgyoMguSO9o+aH+iuZ+aht+mzW0u3HIMzVu7Srrpv7EBBxTnrFlSCskwdY1+EOFQSm7uMJhNQHkdPcmjg==",
     ("dist/css/bootstrap.min.css", "dist/js/bootstrap.bundle.min.js")),
    ("htmx.org 2.0.4",
     "sha512-HLxMCdfXDOJirs3vBZl/ZLoY+c7PfM4Ahr2Ad4YXh6d22T5ltbTXFFkpx9Tgb2vvmWFMbIc3LqN2ToNkZJvyYQ==",
     ("dist/htmx.min.js",)),
    ("alpinejs 3.14.8",
     "sha512-wT2fuP2DXpGk/jKaglwy7S/IJpm1FD+b7U6zUrhwErjoq5h27S4dxkJEXVvhbdwyPv9U+3OkUuNLkZT4h2Kfrg==",
     ("dist/cdn.min.js",)),
    ("chart.js 4.4.7",
     "sha512-pwkcKfdzTMAU/+jNosKhNL2bHtJc/sSmYgVbuGTEDhzkrhmyihmP7vUc/5ZK9WopidMDHNe3Wm7jOd/WhuHWuw==",
     ("dist/chart.umd.js",)),
    ("jquery 3.7.1",
     "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
     ("dist/jquery.min.js",)),
    ("vue 3.5.13",
     "sha512-wmeiSMxkZCSc+PM2w2VRsOYAZC8GdipNFRTsLSfodVqI9mbejKeXEGr8SckuLnrQPGe3oJN5c3K0vpoU9q/wCQ==",
     ("dist/vue.global.prod.js",)),
    ("react-dom 18.3.1",
     "sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
     ("umd/react-dom.production.min.js",)),
    ("bulma 1.0.2",
     "sha512-D7GnDuF6seb6HkcnRMM9E739QpEY9chDzzeFrHMyEns/EXyDJuQ0XA0KxbBl/B2NTsKSoDomW61jFGFaAxhK5A==",
     ("css/bulma.min.css",)),
    ("lodash 4.17.21",
     "sha512-v2kDEe57lecTulaDIuNTPy3Ry4gLGJ6Z1O3vE1krgXZNrsQ+LFTGHVxVjcXPs17LhbZVGedAJv8XZ1tvj5FvSg==",
     ("lodash.min.js",)),
    ("@fortawesome/fontawesome-free 6.7.2",
     "sha512-JUOtgFW6k9u4Y+xeIaEiLr3+cjoUPiAuLXoyKOJSia6Duzb7pq+A76P9ZdPDoAoxHdHzq6gE9/jKBGXlZT8FbA==",
     ("css/all.min.css", "sprites/solid.svg")),
    ("d3 7.9.0",
     "sha512-e1U46jVP+w7Iut8Jt8ri1YsPOvFpg46k+K8TpCb0P+zjCkjkPnV7WzfDJzMHy1LnA+wj5pLT1wjO901gLXeEhA==",
     ("dist/d3.min.js",)),
))


def integrity_of(path: Path) -> str:
    """The npm registry's ``dist.integrity`` form: sha512, base64."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def fetch(package: Package) -> Path:
    """The package's tarball in the cache, fetched with ``npm pack`` if missing, checked."""
    if not package.tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", f"{package.name}@{package.version}", "--silent",
                        "--pack-destination", str(CACHE)], check=True, stdout=subprocess.DEVNULL)
    found = integrity_of(package.tarball)
    if found != package.integrity:
        raise SystemExit(f"error: {package.tarball.name}: integrity {found} is not the pinned "
                         f"{package.integrity}; delete it and fetch again")
    return package.tarball


def read_files(package: Package) -> dict[str, bytes]:
    """``name@version/path`` -> bytes for the package's listed files (and nothing else)."""
    found: dict[str, bytes] = {}
    with tarfile.open(fetch(package)) as archive:
        for path in package.files:
            member = archive.extractfile(f"package/{path}")
            if member is None:
                raise SystemExit(f"error: {package.name}@{package.version} has no file {path}")
            found[f"{package.name}@{package.version}/{path}"] = member.read()
    return found


def corpus() -> dict[str, bytes]:
    """Every package's files, in a fixed order."""
    files: dict[str, bytes] = {}
    for package in PACKAGES:
        files.update(read_files(package))
    return files


def main() -> int:
    for name, data in corpus().items():
        print(f"{len(data):>9,} B  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
