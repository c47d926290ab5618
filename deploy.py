#!/usr/bin/env python3
"""Deploy ``static/`` to the CDN bucket. See ``python deploy.py --help``."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
