"""A pre-fork server in miniature, run as a subprocess by tests/test_fleet.py.

    python tests/prefork_workers.py OUT_DIR WORKERS

Like gunicorn with ``preload_app``: the parent loads the app (the extension reads
the manifest from the bucket) and then forks the workers. Each worker serves
requests through Flask's full request cycle and writes what it serves to
``OUT_DIR/worker-<n>.json`` until ``OUT_DIR/stop`` exists. The app's config comes
from ``CDN_*`` environment variables, as a deployed app's would.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from flask import Flask, url_for

from pipeline import CDN
from pipeline.localfs import write_atomic

#: Every worker stops after this long even if the test never says so.
MAX_SECONDS = 120


def make_app() -> Flask:
    app = Flask(__name__)
    app.config.update({k: v for k, v in os.environ.items() if k.startswith("CDN_")})
    CDN(app)
    app.add_url_rule("/logo", "logo", lambda: url_for("static", filename="img/logo.png"))
    return app


def serve(app: Flask, out: Path, index: int) -> None:
    client = app.test_client()
    refresher = CDN.state(app).refresher
    assert refresher is not None
    deadline = time.monotonic() + MAX_SECONDS
    while time.monotonic() < deadline and not (out / "stop").exists():
        url = client.get("/logo").get_data(as_text=True)
        report = {"pid": os.getpid(), "url": url, "release": refresher.status.release,
                  "refresher_running": refresher.running}
        write_atomic(out / f"worker-{index}.json", json.dumps(report).encode())
        time.sleep(0.05)
    refresher.stop()


def main() -> int:
    out, workers = Path(sys.argv[1]), int(sys.argv[2])
    app = make_app()
    refresher = CDN.state(app).refresher
    # The point of the lazy start: nothing but the main thread exists at the fork.
    if threading.active_count() != 1 or refresher is None or refresher.running:
        print("a thread exists before the fork", file=sys.stderr)
        return 3
    (out / "parent.json").write_text(json.dumps({"pid": os.getpid()}))
    children = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                serve(app, out, index)
            except Exception:
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
