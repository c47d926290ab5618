"""``python -m pipeline``: the same command line as ``cdn-deploy`` and ``deploy.py``."""

from pipeline.cli.main import run

if __name__ == "__main__":
    run()
