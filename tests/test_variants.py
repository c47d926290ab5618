"""Responsive image variants: the plan (widths, formats, keys) and real encoded outputs, decoded
with Pillow rather than trusted from the plan. Sources are built here, small, with Pillow."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageOps

from pipeline.build import variant_codec
from pipeline.build.variant_codec import EncodeResult, encode_source, probe
from pipeline.build.variant_pool import EncodeJob, encode_many
from pipeline.build.variants import (
    SourceInfo,
    VariantSettings,
    VariantSpec,
    is_candidate,
    needs_encoding,
    parse_key,
    plan_variants,
    variant_key,
)
from pipeline.errors import ConfigError, ImageSourceError

#: A short ladder keeps the encodes tiny and fast; the code paths are the same as the default's.
SMALL = VariantSettings(widths=(16, 32, 64, 128))
HASH = "ab" * 32
PIL_FORMAT = {"avif": "AVIF", "webp": "WEBP", "jpeg": "JPEG", "png": "PNG"}


def photo_like(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Smooth gradients and a few shapes: compresses like a photo, not like noise."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image = Image.merge("RGB", (image.getchannel(0), image.getchannel(0).rotate(90).resize(size),
                                Image.new("L", size, 90)))
    image.paste((200, 40, 40), (width // 4, height // 4, width // 2, height // 2))
    return image.convert(mode)


def encode(tmp_path: Path, source: Path, settings: VariantSettings = SMALL) -> EncodeResult:
    info = probe(source, settings)
    specs = plan_variants(hashlib.sha256(source.read_bytes()).hexdigest(), info, settings)
    assert specs, "the test source should get variants"
    return encode_source(source, specs, settings, out_dir=tmp_path / "out")


def decoded(tmp_path: Path, spec: VariantSpec) -> Image.Image:
    image = Image.open(tmp_path / "out" / spec.key)
    image.load()
    return image


# --- the plan -------------------------------------------------------------------------------


def test_widths_never_upscale_and_the_source_width_tops_the_ladder() -> None:
    settings = VariantSettings()

    def widths(width: int) -> list[int]:
        info = SourceInfo(width=width, height=width // 2, format="jpeg", has_alpha=False)
        return sorted({spec.width for spec in plan_variants(HASH, info, settings)})

    assert widths(2000) == [320, 640, 960, 1280, 1920, 2000]
    assert widths(1920) == [320, 640, 960, 1280, 1920]
    assert widths(5120) == [320, 640, 960, 1280, 1920, 2560]
    assert widths(321) == [320, 321]
    assert widths(320) == [320]
    assert widths(200) == [200]  # narrower than every rung: its own width, in every format


def test_heights_keep_the_aspect_ratio() -> None:
    info = SourceInfo(width=3000, height=2000, format="jpeg", has_alpha=False)
    for spec in plan_variants(HASH, info, VariantSettings()):
        assert spec.height == round(spec.width * 2000 / 3000)


def test_formats_are_modern_plus_a_fallback_of_the_source_family() -> None:
    opaque = SourceInfo(width=100, height=50, format="png", has_alpha=False)
    alpha = SourceInfo(width=100, height=50, format="webp", has_alpha=True)
    at_64 = [(s.format, s.content_type) for s in plan_variants(HASH, opaque, SMALL)
             if s.width == 64]
    assert at_64 == [("avif", "image/avif"), ("webp", "image/webp"), ("jpeg", "image/jpeg")]
    assert [s.format for s in plan_variants(HASH, alpha, SMALL) if s.width == 64] == [
        "avif", "webp", "png"]


def test_svg_ico_gif_and_excluded_paths_are_not_candidates() -> None:
    settings = VariantSettings(include=("img/*",), exclude=("img/icons/*",))
    assert is_candidate("img/photo.JPG", settings)
    assert is_candidate("img/a/b.webp", settings)
    for path in ["img/logo.svg", "img/favicon.ico", "img/spinner.gif", "img/icons/big.png",
                 "css/bg.png", "img/notes.txt"]:
        assert not is_candidate(path, settings), path


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_sources_are_left_alone(tmp_path: Path, fmt: str) -> None:
    frames = [photo_like((80, 40)).rotate(angle) for angle in (0, 90, 180)]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    info = probe(path, SMALL)
    assert info.animated and info.width == 80
    assert plan_variants(HASH, info, SMALL) == []


def test_keys_are_deterministic_and_change_with_width_quality_and_version() -> None:
    info = SourceInfo(width=100, height=50, format="jpeg", has_alpha=False)
    keys = {(s.width, s.format): s.key for s in plan_variants(HASH, info, SMALL)}
    again = {(s.width, s.format): s.key for s in plan_variants(HASH, info, SMALL)}
    assert keys == again and len(set(keys.values())) == len(keys)
    assert all(key.startswith(f"_v/ab/{HASH[:16]}.") for key in keys.values())

    better_avif = VariantSettings(widths=SMALL.widths, avif_quality=70)
    changed = {(s.width, s.format): s.key for s in plan_variants(HASH, info, better_avif)}
    assert changed[(64, "avif")] != keys[(64, "avif")]
    assert changed[(64, "jpeg")] == keys[(64, "jpeg")]  # other formats keep their variants

    new_encoder = VariantSettings(widths=SMALL.widths, encoder_version="vips-2")
    renewed = {(s.width, s.format): s.key for s in plan_variants(HASH, info, new_encoder)}
    assert not set(renewed.values()) & set(keys.values())
    other_source = plan_variants("cd" * 32, info, SMALL)
    assert not {s.key for s in other_source} & set(keys.values())


def test_parse_key_accepts_only_configured_variants() -> None:
    key = variant_key(HASH, 32, "webp", SMALL)
    assert parse_key(key, SMALL) == (HASH[:16], 32, "webp")
    assert parse_key(variant_key(HASH, 32, "webp", VariantSettings(webp_quality=50)), SMALL) is None
    assert (
        parse_key(variant_key(HASH, 32, "avif", SMALL), VariantSettings(formats=("webp",))) is None
    )
    for bad in ["../../etc/passwd", key.replace("_v/ab/", "_v/cd/"), key + "x", "/" + key,
                key.replace(".webp", ".gif")]:
        assert parse_key(bad, SMALL) is None, bad


def test_needs_encoding_when_any_planned_key_is_missing() -> None:
    info = SourceInfo(width=100, height=50, format="jpeg", has_alpha=False)
    specs = plan_variants(HASH, info, SMALL)
    everything = {s.key for s in specs}
    assert not needs_encoding(specs, everything)
    # decided per key: any absent variant (a fallback or not) is encoded again
    assert needs_encoding(specs, everything - {specs[0].key})
    assert needs_encoding(specs, everything - {s.key for s in specs if s.format == "jpeg"})
    assert needs_encoding(specs, set())


@pytest.mark.parametrize("kwargs", [
    {"widths": ()}, {"widths": (640, 320)}, {"widths": (0, 10)}, {"widths": (320, 320)},
    {"formats": ("gif",)}, {"avif_quality": 0}, {"jpeg_quality": 101}, {"encoder_version": ""},
    {"include": ()}, {"max_source_pixels": 0},
])
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        VariantSettings(**kwargs)  # type: ignore[arg-type]


# --- real encodes ---------------------------------------------------------------------------


def test_outputs_decode_to_the_planned_sizes_and_formats(tmp_path: Path) -> None:
    source = tmp_path / "wide.jpg"
    photo_like((100, 60)).save(source, quality=95)
    result = encode(tmp_path, source)
    planned = plan_variants(hashlib.sha256(source.read_bytes()).hexdigest(),
                            probe(source, SMALL), SMALL)
    assert {s for s, _ in result.written} | set(result.dropped) == set(planned)
    assert sorted({s.width for s, _ in result.written if s.fallback}) == [16, 32, 64, 100]
    for spec, size in result.written:
        image = decoded(tmp_path, spec)
        assert image.format == PIL_FORMAT[spec.format]
        assert image.size == (spec.width, spec.height)
        assert (tmp_path / "out" / spec.key).stat().st_size == size
        assert image.width <= 100  # never upscaled


def test_exif_rotated_source_comes_out_upright(tmp_path: Path) -> None:
    stored = Image.new("RGB", (80, 40), (220, 20, 20))
    stored.paste((20, 20, 220), (40, 0, 80, 40))  # left red, right blue as stored
    exif = stored.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    source = tmp_path / "phone.jpg"
    stored.save(source, exif=exif, quality=95)
    upright = ImageOps.exif_transpose(Image.open(source))
    assert upright.size == (40, 80)
    top, bottom = upright.getpixel((20, 10)), upright.getpixel((20, 70))

    result = encode(tmp_path, source)
    for spec, _ in result.written:
        image = decoded(tmp_path, spec).convert("RGB")
        assert image.height > image.width
        w, h = image.size
        for got, want in [(image.getpixel((w // 2, h // 8)), top),
                          (image.getpixel((w // 2, 7 * h // 8)), bottom)]:
            assert max(abs(a - b) for a, b in zip(got, want, strict=False)) < 40, (
                spec.format,
                got,
                want,
            )


def test_alpha_is_kept(tmp_path: Path) -> None:
    image = Image.new("RGBA", (80, 40), (0, 0, 0, 0))
    image.paste((200, 30, 30, 255), (40, 0, 80, 40))
    source = tmp_path / "badge.png"
    image.save(source)
    result = encode(tmp_path, source)
    assert {s.format for s, _ in result.written if s.fallback} == {"png"}
    for spec, _ in result.written:
        out = decoded(tmp_path, spec).convert("RGBA")
        w, h = out.size
        assert out.getpixel((w // 8, h // 2))[3] < 10, spec.format
        red = out.getpixel((7 * w // 8, h // 2))
        assert red[3] > 245 and red[0] > 170 and red[1] < 70, (spec.format, red)


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (80, 40), 0)
    image.putpalette([0, 0, 0, 30, 160, 30] + [0] * 762)
    image.paste(1, (40, 0, 80, 40))
    source = tmp_path / "palette.png"
    image.save(source, transparency=0)
    result = encode(tmp_path, source)
    for spec, _ in result.written:
        out = decoded(tmp_path, spec).convert("RGBA")
        w, h = out.size
        assert out.getpixel((w // 8, h // 2))[3] < 10
        green = out.getpixel((7 * w // 8, h // 2))
        assert green[3] > 245 and abs(green[1] - 160) < 25, (spec.format, green)


def test_gps_and_all_metadata_are_stripped(tmp_path: Path) -> None:
    image = photo_like((100, 60))
    exif = image.getexif()
    exif[0x010F] = "SecretCam"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)  # GPSLatitudeRef, GPSLatitude
    source = tmp_path / "holiday.jpg"
    image.save(source, exif=exif, icc_profile=ImageCms.ImageCmsProfile(
        ImageCms.createProfile("sRGB")).tobytes())
    with Image.open(source) as check:
        assert check.getexif().get_ifd(0x8825)  # the source really has GPS
    result = encode(tmp_path, source)
    for spec, _ in result.written:
        data = (tmp_path / "out" / spec.key).read_bytes()
        out = decoded(tmp_path, spec)
        assert not out.getexif(), spec.format
        assert b"Exif" not in data and b"SecretCam" not in data, spec.format
        assert "icc_profile" not in out.info and "xmp" not in out.info, spec.format


def test_cmyk_jpeg_becomes_srgb(tmp_path: Path) -> None:
    source = tmp_path / "print.jpg"
    Image.new("CMYK", (80, 40), (0, 255, 255, 0)).save(source, quality=95)  # pure red ink
    result = encode(tmp_path, source)
    for spec, _ in result.written:
        out = decoded(tmp_path, spec)
        assert out.mode in ("RGB", "RGBA"), spec.format
        r, g, b = out.convert("RGB").getpixel((out.width // 2, out.height // 2))
        assert r > 180 and g < 90 and b < 90, (spec.format, (r, g, b))


def _adobe_rgb_profile() -> bytes:
    """A minimal ICC v2 matrix/TRC profile with Adobe RGB (1998) primaries (D50-adapted)."""
    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)

    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 563) + b"\0\0"  # gamma 563/256
    desc_text = b"Adobe RGB test\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(desc_text)) + desc_text + b"\0" * 79
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)), (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)),
            (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)), (b"rTRC", curve), (b"gTRC", curve),
            (b"bTRC", curve), (b"cprt", b"text" + b"\0" * 4 + b"none\0\0\0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"none" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + b"\0" * 4
              + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + body


def test_adobe_rgb_profile_is_converted_to_srgb(tmp_path: Path) -> None:
    profile = _adobe_rgb_profile()
    raw = (40, 190, 70)
    source = tmp_path / "adobe.png"
    Image.new("RGB", (80, 40), raw).save(source, icc_profile=profile)
    expected = ImageCms.profileToProfile(
        Image.new("RGB", (1, 1), raw), ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        ImageCms.createProfile("sRGB")).getpixel((0, 0))
    assert (
        max(abs(a - b) for a, b in zip(expected, raw, strict=False)) > 25
    )  # the profile matters here
    result = encode(tmp_path, source)
    for spec, _ in result.written:
        got = decoded(tmp_path, spec).convert("RGB").getpixel((8, 4))
        assert max(abs(a - b) for a, b in zip(got, expected, strict=False)) <= 8, (
            spec.format,
            got,
            expected,
        )


def test_16_bit_sources_become_8_bit(tmp_path: Path) -> None:
    import pyvips

    # pyvips arithmetic (a constant per band), not list concatenation.
    rgb16 = (pyvips.Image.black(80, 40, bands=3) + [50000, 20000, 5000]).cast("ushort")  # noqa: RUF005
    source = tmp_path / "deep.png"
    rgb16.copy(interpretation="rgb16").pngsave(str(source))
    with Image.open(source) as check:
        assert check.mode.startswith(("RGB", "I"))  # Pillow reads the deep PNG
    grey = tmp_path / "grey16.png"
    Image.new("I;16", (80, 40), 40000).save(grey)
    for path, want in [(source, (194, 78, 19)), (grey, (155, 155, 155))]:
        result = encode(tmp_path, path)
        for spec, _ in result.written:
            got = decoded(tmp_path, spec).convert("RGB").getpixel((8, 4))
            assert max(abs(a - b) for a, b in zip(got, want, strict=False)) <= 6, (
                path.name,
                spec.format,
                got,
            )


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(100_000, 100_000))  # 30 GB of pixels if decoded
    with pytest.raises(ImageSourceError) as raised:
        probe(bomb, VariantSettings())
    message = str(raised.value)
    assert "bomb.png" in message and "10,000,000,000 pixels" in message
    spec = VariantSpec(width=320, height=320, format="jpeg", key="_v/x.jpg", fallback=True)
    with pytest.raises(ImageSourceError, match=r"bomb.png"):
        encode_source(bomb, [spec], VariantSettings(), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_max_source_pixels_is_configurable(tmp_path: Path) -> None:
    source = tmp_path / "big.jpg"
    photo_like((100, 60)).save(source)
    with pytest.raises(ImageSourceError, match=r"big.jpg.*over the limit of 5,000"):
        probe(source, VariantSettings(widths=(16,), max_source_pixels=5000))


def test_not_an_image_names_the_file(tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"<html>not a photo</html>")
    with pytest.raises(ImageSourceError, match=r"fake.jpg"):
        probe(fake, SMALL)


def test_modern_variant_not_smaller_than_the_fallback_is_dropped(tmp_path: Path) -> None:
    source = tmp_path / "flat.jpg"
    photo_like((100, 60)).save(source, quality=95)
    greedy = VariantSettings(widths=SMALL.widths, webp_quality=100, jpeg_quality=5)
    result = encode(tmp_path, source, greedy)
    dropped = {(s.width, s.format) for s in result.dropped}
    assert {(64, "webp"), (100, "webp")} <= dropped  # headers still win at 16 and 32 px
    # still written, so one listing decides per key; pages skip them by size (usable())
    for spec in result.dropped:
        assert (tmp_path / "out" / spec.key).exists()
    fallbacks = {s.width: size for s, size in result.written if s.fallback}
    for spec, size in result.written:
        assert size < fallbacks[spec.width] or spec.fallback or spec in result.dropped


def test_big_jpeg_is_decoded_with_shrink_on_load(tmp_path: Path) -> None:
    source = tmp_path / "camera.jpg"
    photo_like((1024, 512)).save(source)
    info = probe(source, SMALL)
    decoded_image = variant_codec._decode(source, info, top_width=200)
    assert decoded_image.width == 256  # 1/4 scale is still at least 200 wide; 1/8 is not


# --- the pool -------------------------------------------------------------------------------


def test_pool_encodes_every_source_and_reports_progress(tmp_path: Path) -> None:
    jobs = []
    for index in range(3):
        path = tmp_path / f"p{index}.png"
        photo_like((40 + index * 10, 30)).save(path)
        info = probe(path, SMALL)
        jobs.append(EncodeJob(path, tuple(plan_variants(
            hashlib.sha256(path.read_bytes()).hexdigest(), info, SMALL))))
    seen: list[str] = []
    results = encode_many(jobs, settings=SMALL, out_dir=tmp_path / "out", workers=2,
                          max_in_flight=1, progress=lambda r: seen.append(Path(r.source).name))
    assert sorted(seen) == ["p0.png", "p1.png", "p2.png"]
    assert len(results) == 3
    for result in results:
        for spec, size in result.written:
            assert (tmp_path / "out" / spec.key).stat().st_size == size


def test_pool_failure_names_the_file(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    photo_like((40, 30)).save(good)
    bad.write_bytes(_png_header_only(100_000, 100_000))
    spec = VariantSpec(width=20, height=15, format="png", key="_v/x.png", fallback=True)
    with pytest.raises(ImageSourceError, match=r"bad.png"):
        encode_many([EncodeJob(good, (spec,)), EncodeJob(bad, (spec,))], settings=SMALL,
                    out_dir=tmp_path / "out", workers=1)


def test_an_unreadable_image_that_only_wanted_its_size_is_probed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.build.assemble import build_manifest
    from pipeline.build.fingerprint import HashCache
    from pipeline.localfs import collect_files
    from pipeline.release.variant_step import plan_sources

    static = tmp_path / "static"
    (static / "img").mkdir(parents=True)
    (static / "img" / "broken.png").write_bytes(b"not an image at all")
    Image.new("RGB", (40, 30), (1, 2, 3)).save(static / "img" / "ok.png")
    files = collect_files(static)
    manifest = build_manifest(files, prefix="static", cache=HashCache(None))
    sources = {f.logical_path: f.fspath for f in files}
    cache = tmp_path / "variants"
    probed: list[str] = []
    real_probe = variant_codec.probe

    def counting(path: Path, settings: VariantSettings) -> SourceInfo:
        probed.append(Path(path).name)
        return real_probe(path, settings)

    monkeypatch.setattr(variant_codec, "probe", counting)
    sizes_only = VariantSettings(widths=SMALL.widths, include=("photos/*",))  # no candidates
    first = plan_sources(manifest, sources, sizes_only, "static", cache)
    assert probed == ["broken.png", "ok.png"]
    assert [(s.logical_path, s.width, s.height) for s in first.sources] == [("img/ok.png", 40, 30)]
    probed.clear()
    assert plan_sources(manifest, sources, sizes_only, "static", cache) == first
    assert probed == []  # remembered by content hash: libvips is not asked again
    # A candidate with those bytes still stops the deploy (exit 2), on every run.
    with pytest.raises(ImageSourceError, match=r"broken\.png: not a readable image"):
        plan_sources(manifest, sources, SMALL, "static", cache)
    # New bytes under the same name are probed afresh.
    Image.new("RGB", (20, 10), (4, 5, 6)).save(static / "img" / "broken.png")
    files = collect_files(static)
    manifest = build_manifest(files, prefix="static", cache=HashCache(None))
    probed.clear()
    fixed = plan_sources(manifest, {f.logical_path: f.fspath for f in files}, sizes_only,
                         "static", cache)
    assert probed == ["broken.png"]
    assert [(s.logical_path, s.width) for s in fixed.sources] == [("img/broken.png", 20),
                                                                   ("img/ok.png", 40)]
