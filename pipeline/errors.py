"""One exception hierarchy for the whole package.

Every error a user can cause or meet carries the process exit code it maps to,
so the CLI translates exceptions to exit codes in exactly one place.

The base class is a :class:`click.ClickException` so that any click program shows
it as one ``Error: ...`` line with its exit code. That matters where our code runs
before any of our commands: ``flask --app app.py cdn ...`` creates the app (and so
``CDN(app)`` validates ``CDN_URL``) while Flask's CLI is still looking for the
``cdn`` command, outside any handler of ours.
"""

from __future__ import annotations

from typing import ClassVar

import click


class PipelineError(click.ClickException):
    """Base class: something the operator should read, never a traceback."""

    # A class variable, as click declares it: each class of error has one exit code.
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)


class ConfigError(PipelineError):
    """Bad usage or configuration: fix the command or the environment (exit 2)."""

    exit_code = 2


class UnsafePathError(ConfigError):
    """A path would leave the folder it must stay in (symlink, ``..``, absolute)."""


class ManifestError(ConfigError):
    """A manifest file is missing, unreadable or not in the expected format."""


class DeployError(PipelineError):
    """The deploy started but could not finish (after retries); nothing was published."""

    exit_code = 1


class FileChangedError(DeployError):
    """A local file changed while the deploy read it (its bytes, size or times, or which file
    is at its path): nothing was published, and a re-run reads it afresh (exit 1)."""


class SourceError(PipelineError):
    """An app server could not read its manifest from the bucket or the CDN (exit 1)."""

    exit_code = 1


class MissingAssetError(PipelineError, LookupError):
    """Strict mode: a static asset is not in the manifest."""

    def __init__(self, filename: str) -> None:
        super().__init__(
            f"static asset {filename!r} is not in the CDN manifest: "
            "run the deploy again or fix the reference"
        )
        self.filename = filename


class ConflictError(DeployError):
    """A conditional write lost a race: another deploy, rollback or prune changed the object."""


class Interrupted(PipelineError):
    """Ctrl-C at a moment where the usual "nothing was published" would not be true."""

    exit_code = 130
    #: How the message says what stopped the command.
    said: ClassVar[str] = "interrupted"


class Terminated(Interrupted):
    """SIGTERM, what CI runners send a job they cancel or time out: handled like Ctrl-C, with
    the code a shell reports for it (128 + 15)."""

    exit_code = 143
    said = "terminated"


class ImageSourceError(ConfigError):
    """A source image cannot be turned into variants: unreadable, or too many pixels (a
    decompression bomb). Found before anything is decoded or uploaded (exit 2)."""


class UnreadableImageError(ImageSourceError):
    """No image loader reads the file: a fact about its bytes (unlike the pixel limit, a
    setting), so a deploy remembers it by content hash instead of probing again."""
