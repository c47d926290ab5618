"""Placeholders (issue 24): what they cost at deploy and what they add to a page.

    PYTHONPATH=. python bench/bench_placeholders.py [--rounds 3]

For each demo photo (``static/img/photos``, the repository's variant settings):

1. **Deploy CPU**: the placeholder (:func:`pipeline.build.variant_placeholder.placeholder_of`,
   its own shrink-on-load decode) against encoding the photo's variants
   (:func:`pipeline.build.variant_codec.encode_source`), both in this process, one libvips
   thread, CPU time (user+sys), median of ``--rounds``; and their ratio.
2. **Bytes**: the colour, the preview data URI, and the whole ``style`` attribute of
   ``placeholder="color"`` and ``"blur"``; the gallery's HTML (five photos) with each mode,
   raw and gzip-compressed, against no placeholder.

Prints one JSON object. Not a test; CI does not run it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = sorted(p for p in (ROOT / "static" / "img" / "photos").iterdir() if p.is_file())


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def median_cpu(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = cpu()
        work()
        times.append(cpu() - start)
    return statistics.median(times)


def deploy_cost(photo: Path, rounds: int) -> dict[str, Any]:
    from flask import Flask

    from pipeline.build.fingerprint import hash_file
    from pipeline.build.variant_codec import encode_source, probe
    from pipeline.build.variant_placeholder import placeholder_of
    from pipeline.build.variants import plan_variants
    from pipeline.flaskext.pictures import app_variant_settings

    settings, _ = app_variant_settings(Flask("bench", root_path=str(ROOT)))
    specs = plan_variants(hash_file(photo), probe(photo, settings), settings)
    with tempfile.TemporaryDirectory() as out:
        encode = median_cpu(lambda: encode_source(photo, specs, settings, out_dir=Path(out)),
                            rounds)
    made = placeholder_of(photo)
    ph = median_cpu(lambda: placeholder_of(photo), max(rounds, 5))
    return {"photo": photo.name, "variants": len(specs), "encode_cpu_s": round(encode, 3),
            "placeholder_cpu_ms": round(ph * 1000, 1), "ratio": round(ph / encode, 4),
            "placeholder": made}


def page_bytes(made: dict[str, Any]) -> dict[str, Any]:
    from pipeline.flaskext.pictures import ImageFacts, picture_markup
    from pipeline.flaskext.placeholders import placeholder_css

    per_image = {}
    pages: dict[str, bytes] = {}
    for mode in (None, "color", "blur"):
        html = "".join(str(picture_markup(ImageFacts(src=f"https://cdn.example.com/{name}.jpg",
                                                     width=2560, height=1600, placeholder=ph),
                                          name, placeholder=mode))
                       for name, ph in made.items())
        pages[str(mode)] = html.encode()
    for name, ph in made.items():
        per_image[name] = {
            "color": len(ph.color), "preview_uri": len(ph.preview),
            "style_color": len(placeholder_css(ph, "color", width=2560, height=1600)),
            "style_blur": len(placeholder_css(ph, "blur", width=2560, height=1600))}
    sizes = {mode: {"raw": len(html), "gzip": len(gzip.compress(html, 9, mtime=0))}
             for mode, html in pages.items()}
    return {"per_image": per_image, "markup_of_the_photos": sizes}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ["VIPS_CONCURRENCY"] = "1"
    from pipeline.build.variant_codec import limit_threads

    limit_threads()
    costs = [deploy_cost(photo, args.rounds) for photo in PHOTOS if photo.suffix == ".jpg"]
    made = {c["photo"]: c.pop("placeholder") for c in costs}
    encode = sum(c["encode_cpu_s"] for c in costs)
    placeholders = sum(c["placeholder_cpu_ms"] for c in costs) / 1000
    print(json.dumps({"load_average": os.getloadavg(), "rounds": args.rounds, "deploy": costs,
                      "total_ratio": round(placeholders / encode, 4), **page_bytes(made)},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
