"""Deploy settings, resolved once (command line > environment > pyproject > default).

Library functions take the resulting frozen :class:`DeploySettings`, never the
environment, so what a deploy does is visible in one value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..build.mounts import Mounts
from ..build.variants import VARIANT_TABLE_KEYS, VariantSettings
from ..errors import ConfigError
from ..limits import ATTEMPTS_RANGE, DEFAULT_MAX_ATTEMPTS, DEFAULT_WORKERS, WORKERS_RANGE
from ..pathfilter import PathFilter
from ..pyproject import ProjectConfig
from ..validate import (
    DEFAULT_MANIFEST_PATH,
    DEFAULT_STATIC_URL_PATH,
    parse_budget,
    validate_bucket,
    validate_int,
    validate_prefix,
    validate_static_url_path,
    validate_url,
)

DEFAULT_STATIC_DIR = Path("static")
DEFAULT_PREFIX = "static"
DEFAULT_HASH_CACHE_PATH = Path("build/.cdn-hash-cache.json")
DEFAULT_VARIANT_CACHE = Path("build/variants")
#: The embedded default target: a folder laid out like the bucket.
DEFAULT_EMBEDDED_DIR = Path("build/cdn")

#: Environment variables whose empty value is an error, not "unset": each decides where
#: the files go, and an empty one is usually a missing CI secret.
NONEMPTY_ENV = frozenset({"CDN_BUCKET", "CDN_PREFIX", "CDN_STATIC_DIR", "CDN_TARGET_DIR",
                          "CDN_STATIC_URL_PATH"})


@dataclass(frozen=True)
class Option:
    """One setting: its flag, environment variables, kind and built-in default."""

    name: str
    flag: str
    env: tuple[str, ...] = ()
    #: ``str``, ``path``, ``int``, ``bool``, ``patterns`` (a tuple of globs), ``ints`` or
    #: ``words`` (a tuple; a flag or variable gives them comma-separated).
    kind: str = "str"
    default: Any = None

    @property
    def key(self) -> str:
        """Its key in the ``pyproject.toml`` table: the flag without dashes or ``no-``."""
        return self.flag.removeprefix("--").removeprefix("no-")


def _option_name(table_key: str) -> str:
    """``variant-widths`` -> ``variant_widths``: an option's name from its table key."""
    return table_key.replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("static_dir", "--static-dir", ("CDN_STATIC_DIR",), "path", DEFAULT_STATIC_DIR),
    Option("static_url_path", "--static-url-path", ("CDN_STATIC_URL_PATH",),
           default=DEFAULT_STATIC_URL_PATH),
    #: A Flask app (``module:factory``): deploy its static folder and every blueprint's.
    Option("app", "--app"),
    Option("bucket", "--bucket", ("CDN_BUCKET",)),
    Option("target_dir", "--target-dir", ("CDN_TARGET_DIR",), "path"),
    Option("prefix", "--prefix", ("CDN_PREFIX",), default=DEFAULT_PREFIX),
    Option("endpoint_url", "--endpoint-url", ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")),
    Option("region", "--region", ("AWS_REGION", "AWS_DEFAULT_REGION")),
    Option("cdn_url", "--cdn-url", ("CDN_URL",)),
    Option("manifest", "--manifest", ("CDN_MANIFEST",), "path", DEFAULT_MANIFEST_PATH),
    Option("hash_cache", "--hash-cache", (), "path", DEFAULT_HASH_CACHE_PATH),
    Option("assets", "--assets", ("CDN_ASSETS",), "path"),
    Option("workers", "--workers", ("CDN_WORKERS",), "int", DEFAULT_WORKERS),
    Option("max_attempts", "--max-attempts", ("CDN_MAX_ATTEMPTS",), "int", DEFAULT_MAX_ATTEMPTS),
    Option("strict", "--no-strict", (), "bool", True),
    #: Brotli/gzip siblings of compressible files (pipeline.release.sibling_step).
    Option("precompress", "--no-precompress", (), "bool", True),
    Option("allow_hard_links", "--allow-hard-links", (), "bool", False),
    #: Vite's manifest when it is not found in the folders (pipeline.build.vite).
    Option("vite_manifest", "--vite-manifest", ("CDN_VITE_MANIFEST",), "path"),
    Option("include", "--include", (), "patterns", ()),
    Option("exclude", "--exclude", (), "patterns", ()),
    # Responsive image variants (off unless asked for; see pipeline.build.variants).
    Option("variants", "--variants", (), "bool", False),
    *(Option(_option_name(key), f"--{key}", (), kind, () if kind == "patterns" else None)
      for key, (_, kind) in VARIANT_TABLE_KEYS.items()),
    #: Encoded variants by key; the Flask extension's dev route caches into the same folder.
    Option("variant_cache", "--variant-cache", ("CDN_VARIANT_CACHE",), "path",
           DEFAULT_VARIANT_CACHE),
    #: Encoding time after which the deploy publishes what it has (``15m``; ``None``: no limit).
    Option("variant_budget", "--variant-budget", ("CDN_VARIANT_BUDGET",)),
    # The deploy's and rollback's switches: settings like the rest, so --show-config and the
    # pyproject table see them (a table may keep --relist on for a bucket with a lifecycle rule).
    Option("relist", "--relist", (), "bool", False),
    Option("unsafe_no_conditional_writes", "--unsafe-no-conditional-writes", (), "bool", False),
    #: The CloudFront distribution whose manifest path is invalidated after publishing.
    Option("distribution_id", "--invalidate"),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}

#: ``[tool.flask-cdn-pipeline]`` key -> (option name, kind). ``importmap`` (module name ->
#: static file) is the Flask extension's (:mod:`pipeline.flaskext.importmap`): the deploy
#: checks its type and has no option for it.
TABLE_KEYS: dict[str, tuple[str, str]] = {
    **{o.key: (o.name, o.kind) for o in OPTIONS}, "importmap": ("importmap", "mapping")}

#: Option name -> environment variables that supply it when the option is absent.
ENV_VARS: dict[str, tuple[str, ...]] = {o.name: o.env for o in OPTIONS if o.env}

@dataclass(frozen=True)
class Layer:
    """One source of settings: a label for ``--show-config`` and values by option name."""

    label: str
    values: Mapping[str, Any]
    #: Option name -> a more exact label (the flag or variable that set it).
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploySettings:
    static_dir: Path
    prefix: str
    manifest_path: Path
    hash_cache_path: Path | None
    bucket: str | None
    endpoint_url: str | None
    region: str | None
    target_dir: Path | None
    cdn_url: str | None
    workers: int
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    dry_run: bool = False
    #: A CSS reference to a missing file is an error (``--no-strict``: a warning).
    strict: bool = True
    #: Store brotli/gzip siblings of compressible files (``--no-precompress``: none).
    precompress: bool = True
    #: A Python file with a ``BUNDLES`` dict of webassets bundles to build first.
    assets: Path | None = None
    #: Glob patterns (:mod:`pipeline.pathfilter`) of files to deploy / leave out.
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: Where the app serves ``static_dir`` (Flask's ``static_url_path``): a CSS
    #: ``url(/static/...)`` names a file in it.
    static_url_path: str = DEFAULT_STATIC_URL_PATH
    #: Deploy files with hard links whose other names the walk did not meet (see
    #: :func:`pipeline.localfs.check_hard_links`): off, a hard link can publish any file.
    allow_hard_links: bool = False
    #: Vite's manifest (``None``: found in the folders; see :mod:`pipeline.build.vite`).
    vite_manifest: Path | None = None
    #: Option name -> where its value came from (``--bucket``, ``env CDN_BUCKET``, ...).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: The ``pyproject.toml`` whose table was read, if any.
    config_file: Path | None = None
    #: Make responsive variants of raster images (``None``: off), validated up front.
    variant_settings: VariantSettings | None = None
    variant_cache: Path | None = None
    #: Encoding stops after this long; the rest is left to the next run (``None``: no limit).
    variant_budget: timedelta | None = None
    #: The Flask app whose folders are deployed (``module:factory``), if any.
    app: str | None = None
    #: The app's static folder plus each blueprint's, when an app is deployed and has
    #: blueprint folders (:mod:`pipeline.build.mounts`); ``None``: ``static_dir`` alone.
    mounts: Mounts | None = None
    #: The embedded default target (``build/cdn``, beside the ``pyproject.toml`` in use).
    embedded_dir: Path = DEFAULT_EMBEDDED_DIR
    #: List the bucket even when the files equal the current release (``--relist``).
    relist: bool = False
    #: Publish on a store that ignores If-Match/If-None-Match.
    unsafe_no_conditional_writes: bool = False
    #: The CloudFront distribution to invalidate after publishing (``--invalidate``).
    distribution_id: str | None = None
    #: Warnings about the configuration files (an ignored ``pyproject.toml``, a table name
    #: close to ours), for the command to print.
    config_notes: tuple[str, ...] = ()

    @property
    def variants(self) -> bool:
        return self.variant_settings is not None

    @property
    def embedded(self) -> bool:
        """No bucket and no folder configured: publish to the embedded default folder."""
        return self.bucket is None and self.target_dir is None

    @property
    def filters(self) -> PathFilter:
        return PathFilter.from_globs(self.include, self.exclude)


def resolve_settings(
    options: Mapping[str, Any], env: Mapping[str, str], *,
    project: ProjectConfig | None = None,
    above_env: Layer | None = None, below_project: Layer | None = None,
    anchor: Path | None = None, notes: tuple[str, ...] = (),
) -> DeploySettings:
    """Merge the sources, highest first, and validate the result once.

    Precedence: command line (``options``, ``None`` = not given) > ``above_env`` (the
    Flask app's own config, for ``flask cdn deploy``) > environment > the project's
    ``pyproject.toml`` table > ``below_project`` (the app's static folder) > default.
    ``anchor``: the folder the default paths (``static``, ``build/...``) are relative to
    (the ``pyproject.toml``'s, like the table's paths; ``None``: the working directory).
    """
    layers = [_flag_layer(options)]
    if above_env is not None:
        layers.append(above_env)
    layers.append(_env_layer(env))
    if project is not None:
        layers.append(Layer(project.label, project.values))
    if below_project is not None:
        layers.append(below_project)
    layers.append(Layer("default", {o.name: _anchored(o.default, anchor) for o in OPTIONS}))
    picked = _pick(layers, options)
    settings = _validated(picked, options, project, _anchored(DEFAULT_EMBEDDED_DIR, anchor))
    return replace(settings, config_notes=(*notes, *(project.notes if project else ())))


def _anchored(default: Any, anchor: Path | None) -> Any:
    """A default path relative to ``anchor``, so a run from a subfolder deploys the same
    ``static`` folder and writes the manifest, caches and embedded target where a run from
    the project root does."""
    if anchor is None or not isinstance(default, Path) or default.is_absolute():
        return default
    return anchor / default


def _flag_layer(options: Mapping[str, Any]) -> Layer:
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = options.get(option.name)
        if value is None or value == () or (option.kind == "bool" and value is False):
            continue
        if value == "":
            raise ConfigError(f"{option.flag} is empty: give a value, or leave the option out")
        values[option.name] = _convert(option, value, option.flag)
    if options.get("no_strict"):
        values["strict"] = False
    if options.get("no_precompress"):
        values["precompress"] = False
    return Layer("command line", values, {name: OPTIONS_BY_NAME[name].flag for name in values})


def _env_layer(env: Mapping[str, str]) -> Layer:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        for var in option.env:
            if var not in env:
                continue
            if env[var] == "":
                if var in NONEMPTY_ENV:
                    raise ConfigError(f"{var} is set but empty (a missing CI secret?): set it "
                                      "to a value, or unset it")
                continue
            values[option.name] = _convert(option, env[var], var)
            sources[option.name] = f"env {var}"
            break
    return Layer("env", values, sources)


def _convert(option: Option, value: Any, where: str) -> Any:
    if option.kind == "path":
        return Path(value)
    if option.kind == "int" and not isinstance(value, int):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{option.name.replace('_', ' ')} ({where}) must be a whole "
                              f"number, not {value!r}") from None
    if option.kind == "patterns":
        return tuple(value)
    if option.kind in ("ints", "words"):
        items = value.split(",") if isinstance(value, str) else list(value)
        items = [item.strip() if isinstance(item, str) else item for item in items]
        if option.kind == "words":
            return tuple(items)
        try:
            return tuple(int(item) for item in items)
        except ValueError:
            raise ConfigError(f"{option.flag.removeprefix('--')} ({where}) must be whole "
                              f"numbers separated by commas, not {value!r}") from None
    return value


def _pick(layers: list[Layer], options: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """Option name -> (value, source): the first layer that has it, highest first."""
    picked: dict[str, tuple[Any, str]] = {}
    for option in OPTIONS:
        for layer in layers:
            if option.name in layer.values and layer.values[option.name] is not None:
                source = layer.sources.get(option.name, layer.label)
                picked[option.name] = (layer.values[option.name], source)
                break
        else:
            picked[option.name] = (None, "default")
    # A bucket and a folder are one choice, the destination: the higher source wins.
    for layer in layers:
        has_bucket = layer.values.get("bucket") is not None
        has_dir = layer.values.get("target_dir") is not None
        if has_bucket and has_dir:
            raise ConfigError("give either a bucket (--bucket/CDN_BUCKET) or a folder "
                              f"(--target-dir/CDN_TARGET_DIR), not both (in {layer.label})")
        if has_bucket or has_dir:
            loser = "target_dir" if has_bucket else "bucket"
            picked[loser] = (None, "default")
            break
    if options.get("no_assets"):
        picked["assets"] = (None, "--no-assets")
    if options.get("no_hash_cache"):
        picked["hash_cache"] = (None, "--no-hash-cache")
    if options.get("variants") is False:
        picked["variants"] = (False, "--no-variants")
    return picked


def _validated(picked: dict[str, tuple[Any, str]], options: Mapping[str, Any],
               project: ProjectConfig | None, embedded_dir: Path) -> DeploySettings:
    def value(name: str, check: Any = None, *args: Any) -> Any:
        raw, source = picked[name]
        if check is None or raw is None:
            return raw
        try:
            return check(raw, *args)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from {source}){_way_out(name, source)}") from None

    settings = DeploySettings(
        static_dir=value("static_dir"),
        prefix=value("prefix", validate_prefix),
        manifest_path=value("manifest"),
        hash_cache_path=value("hash_cache"),
        bucket=value("bucket", validate_bucket),
        endpoint_url=value("endpoint_url", validate_url, "endpoint URL"),
        region=value("region"),
        target_dir=value("target_dir"),
        cdn_url=value("cdn_url", validate_url, "CDN URL"),
        workers=value("workers", validate_int, "workers", *WORKERS_RANGE),
        max_attempts=value("max_attempts", validate_int, "max attempts", *ATTEMPTS_RANGE),
        dry_run=bool(options.get("dry_run")),
        strict=value("strict"),
        precompress=bool(value("precompress")),
        assets=value("assets"),
        include=value("include", _check_patterns),
        exclude=value("exclude", _check_patterns),
        static_url_path=value("static_url_path", validate_static_url_path),
        allow_hard_links=bool(value("allow_hard_links")),
        vite_manifest=value("vite_manifest"),
        sources={name: source for name, (_, source) in picked.items()},
        config_file=project.path if project is not None else None,
        variant_settings=_variant_settings(picked),
        variant_cache=value("variant_cache"),
        variant_budget=value("variant_budget", parse_budget, "variant budget"),
        app=value("app"),
        embedded_dir=embedded_dir,
        relist=bool(value("relist")),
        unsafe_no_conditional_writes=bool(value("unsafe_no_conditional_writes")),
        distribution_id=value("distribution_id"),
    )
    if settings.bucket is None:  # a folder target, given or the embedded default
        check_no_overlap(settings.static_dir, settings.target_dir or embedded_dir)
    return settings


def _way_out(name: str, source: str) -> str:
    """How to replace a bad value that did not come from a flag: fix it where it was set, or
    give the flag, which wins over every other source."""
    if source.startswith("--"):
        return ""
    flag = OPTIONS_BY_NAME[name].flag
    where = f"fix {source.removeprefix('env ')}" if source.startswith("env ") else "fix it there"
    return f": {where}, or give {flag}, which wins"


def describe_source(settings: DeploySettings, name: str) -> str:
    """Which setting gave a value and where it came from, for an error message: ``static-dir
    from /p/pyproject.toml [tool.flask-cdn-pipeline]``, ``--assets``, ``env CDN_ASSETS``..."""
    key = OPTIONS_BY_NAME[name].key
    source = settings.sources.get(name, "default")
    if source == "default":
        folder = (f"the folder of {settings.config_file}" if settings.config_file is not None
                  else "the working directory")
        return f"{key}: the default, relative to {folder}"
    if source.startswith(("--", "env ")):
        return f"given by {source}"
    return f"{key} from {source}"


def _variant_settings(picked: dict[str, tuple[Any, str]]) -> VariantSettings | None:
    """The variant settings when variants are on; a bad value names its source."""
    if not picked["variants"][0]:
        return None
    fields: dict[str, Any] = {}
    for key, (field_name, _) in VARIANT_TABLE_KEYS.items():
        value, source = picked[_option_name(key)]
        if value:
            fields[field_name] = (value, source)
    try:
        return VariantSettings(**{k: v for k, (v, _) in fields.items()})
    except ConfigError as exc:
        where = ", ".join(sorted({source for _, source in fields.values()})) or "default"
        raise ConfigError(f"{exc} (from {where})") from None


def _check_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    PathFilter.from_globs(exclude=patterns)  # raises ConfigError naming a bad pattern
    return tuple(patterns)


def check_no_overlap(static_dir: Path, target: Path) -> None:
    """The target must not be inside the static folder, nor the static folder inside it.

    Either way the next deploy would publish the target's own objects and release
    documents as static files.
    """
    source, dest = static_dir.resolve(), target.resolve()
    if dest == source or dest.is_relative_to(source):
        raise ConfigError(f"the target folder {str(target)!r} is inside the static folder "
                          f"{str(static_dir)!r}: the next deploy would publish its own output; "
                          "choose a target outside it (--target-dir)")
    if source.is_relative_to(dest):
        raise ConfigError(f"the static folder {str(static_dir)!r} is inside the target folder "
                          f"{str(target)!r}: choose a target outside it (--target-dir)")
