"""The variants of one stored image, as a job to run off the request path.

An upload's variants take seconds of CPU, so a web app stores the original, answers, and
hands a :class:`VariantJob` to a background worker (:mod:`pipeline.images.encode_queue`) or a
job queue in another process (RQ, Celery): the job holds plain values only (paths and the
frozen settings), so it pickles, and :func:`run_variant_job` is a module-level function a
queue can import by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageSourceError
from .fingerprint import hash_file
from .variants import VariantSettings, plan_variants


@dataclass(frozen=True)
class VariantJob:
    """Encode the variants of ``source`` into ``out_dir/<key>`` with ``settings``."""

    source: Path
    out_dir: Path
    settings: VariantSettings


def run_variant_job(job: VariantJob) -> int:
    """Encode the job's missing variants with the deploy's encoder; how many were written (0
    for an image libvips cannot read, a GIF, one with nothing to plan, or one whose variants
    are all there: keys come from the content, so the same image uploaded again costs a
    hash, not an encode).

    Each variant is renamed into place, so a page never offers a torn file."""
    from .variant_codec import encode_source, probe  # pyvips only when a job runs

    try:
        specs = plan_variants(hash_file(job.source), probe(job.source, job.settings),
                              job.settings)
    except ImageSourceError:
        return 0
    missing = [spec for spec in specs if not (job.out_dir / spec.key).is_file()]
    if not missing:
        return 0
    return len(encode_source(job.source, missing, job.settings, out_dir=job.out_dir).written)
