#!/usr/bin/env python3
"""Deploy ``static/`` to the CDN bucket. See ``python deploy.py --help``.

This project's defaults: the demo site's bundles (``site/assets.py``) are built
first, unless ``--assets``/``CDN_ASSETS`` name another file or ``--no-assets``.
"""

import os
import sys
from pathlib import Path

from pipeline.cli import main

if __name__ == "__main__":
    defaults = {"CDN_ASSETS": str(Path(__file__).resolve().parent / "site" / "assets.py")}
    sys.exit(main(env={**defaults, **os.environ}))
