#!/usr/bin/env python3
"""Deploy a static folder to the CDN bucket. See ``python deploy.py --help``.

Settings come from flags, the environment, and the ``[tool.flask-cdn-pipeline]``
table of the nearest ``pyproject.toml`` (this repository's declares the demo's
bundles), in that order; ``python deploy.py --show-config`` shows which applies.
"""

from pipeline.cli.main import run

if __name__ == "__main__":
    run()
