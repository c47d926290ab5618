"""The deploy's values: what it is asked to do (:class:`DeployOptions`), where its local files
are (:class:`LocalPaths`) and what it did (:class:`DeployResult`), each one frozen value
instead of a dozen keywords and fields threaded through the phases of
:mod:`pipeline.release.publish`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..build.variants import VariantSettings
from ..localfs import Ignored
from ..manifest import Manifest
from ..pathfilter import PathFilter
from .plan import Plan


@dataclass(frozen=True)
class DeployOptions:
    """How to deploy: the switches of ``cdn-deploy`` (resolved settings, not the environment).

    The defaults are the command's: strict CSS and JS references, conditional writes
    required, no variants, no hash cache (the command passes ``build/...``).
    """

    #: Plan and report only: nothing is uploaded or written, locally or remotely.
    dry_run: bool = False
    #: A CSS/JS reference to a missing file is an error (else a warning).
    strict: bool = True
    #: List the bucket even when the files equal the current release's (re-uploads
    #: objects deleted behind the deploy's back).
    relist: bool = False
    #: Publish on a store that cannot refuse a lost race (a concurrent deploy may be undone).
    unsafe_no_conditional_writes: bool = False
    #: Which files of the folders to deploy (``None``: all but dotfiles and junk).
    filters: PathFilter | None = None
    #: The hash cache file (``None``: every file is read).
    hash_cache_path: Path | None = None
    #: Responsive variants of raster images (``None``: none), and where encodes are cached
    #: (``None``: ``variants/`` beside the local manifest).
    variants: VariantSettings | None = None
    variant_cache: Path | None = None
    #: Seconds of encoding after which no encode starts and running ones stop (``None``: no
    #: limit); images left without variants are published with their originals.
    variant_budget: float | None = None
    #: Store brotli/gzip siblings of compressible files (:mod:`pipeline.release.sibling_step`).
    precompress: bool = True
    #: Deploy files with hard links whose other names the walk did not meet.
    allow_hard_links: bool = False
    #: Vite's manifest (``None``: found in the folders if there is one; see
    #: :mod:`pipeline.build.vite`).
    vite_manifest: Path | None = None


def variant_cache_dir(configured: Path | None, manifest_path: Path) -> Path:
    """Where encoded variants are kept: ``--variant-cache``, else ``variants/`` beside the
    local manifest (``build/variants`` by default, the development route's folder too)."""
    return configured or manifest_path.parent / "variants"


@dataclass(frozen=True)
class LocalPaths:
    """The deploy's local files, derived once (:meth:`of`) so no phase derives them again
    from the manifest path and the options."""

    #: The local copy of the published manifest (what the Flask extension reads).
    manifest: Path
    #: The hash cache, and beside it the current release's record (:mod:`.recognise`) and
    #: the tree record (:mod:`.tree_record`); all three ``None`` without a hash cache.
    hash_cache: Path | None
    record: Path | None
    tree_record: Path | None
    #: Encoded variants, probes and placeholders (:func:`variant_cache_dir`).
    variant_cache: Path

    @classmethod
    def of(cls, manifest_path: Path, options: DeployOptions) -> LocalPaths:
        cache = options.hash_cache_path
        return cls(manifest_path, cache, _beside(cache, ".current"), _beside(cache, ".tree"),
                   variant_cache_dir(options.variant_cache, manifest_path))


def _beside(hash_cache: Path | None, suffix: str) -> Path | None:
    return None if hash_cache is None else hash_cache.with_name(hash_cache.name + suffix)


@dataclass(frozen=True)
class DeployResult:
    manifest: Manifest
    plan: Plan
    manifest_path: Path
    manifest_key: str
    target: str
    dry_run: bool
    #: The release now current (``None`` for a dry run).
    release_id: str | None = None
    #: The release this run replaced as current (``None`` when it published none).
    previous_release: str | None = None
    #: A new release is (dry run: would be) made current; False when the files equal
    #: the current release's, which stays current.
    new_release: bool = False
    #: Conditional writes lost to concurrent deploys before this one's went through.
    conflicts: int = 0
    #: The release current when the run started, and whether it is older than the
    #: newest release (a rollback, which a new release would undo).
    current_release: str | None = None
    current_is_rollback: bool = False
    #: Files and folders the walk left out (dotfiles, junk, ``--exclude``), with why.
    ignored: tuple[Ignored, ...] = ()
    #: Image variants encoded by this run (dry run: that it would encode), and variant
    #: objects uploaded (from this run's encodes or the local cache) and their bytes.
    encoded: int = 0
    variant_uploads: int = 0
    variant_bytes: int = 0
    #: Files compressed by this run, and the precompressed siblings uploaded and their bytes.
    compressed: int = 0
    sibling_uploads: int = 0
    sibling_bytes: int = 0
    #: Files whose SHA-256 came from the current release because git vouched that
    #: their bytes are unchanged (:mod:`pipeline.build.gitindex`); they were not read.
    hashes_from_git: int = 0
    #: Keys the release current at the start names that were missing from the bucket
    #: (deleted behind its back) and that this run uploaded again.
    restored: tuple[str, ...] = ()
    #: Images whose variants are not all stored yet (the variant budget ran out): the
    #: release names none of their variants; the next run continues. And how many of
    #: their variants are missing, and the seconds spent encoding.
    images_left: tuple[str, ...] = ()
    variants_left: int = 0
    encode_seconds: float = 0.0
    #: Answered from the record of the run that published this very tree
    #: (:mod:`pipeline.release.tree_record`): nothing was hashed, built or planned.
    from_tree_record: bool = False

    @property
    def uploaded(self) -> int:
        return (0 if self.dry_run
                else len(self.plan.uploads) + self.variant_uploads + self.sibling_uploads)

    @property
    def bytes_uploaded(self) -> int:
        return (0 if self.dry_run
                else self.plan.bytes_to_upload + self.variant_bytes + self.sibling_bytes)
