"""A loopback HTTP proxy in front of moto that counts requests and injects faults.

Faults are drawn from a seeded RNG, so a failing run can be replayed. Kinds:
``500`` (InternalError), ``503`` (SlowDown), ``403`` (AccessDenied, not retryable),
``reset`` (connection dropped before forwarding), ``lost`` (forwarded, then the response
is dropped: the server has the object but the client does not know it), ``slow`` (a
short delay) and ``stall`` (no answer at all until the proxy stops, then the connection
is dropped without forwarding: a hung link).

Besides faults it can play a server that ignores conditional writes
(``ignore_conditions``: ``If-Match``/``If-None-Match`` are dropped before forwarding,
as rclone's ``serve s3`` does; moto does not check signatures), answer some GETs with
canned bytes (``replies``), and it records every request's headers (``headers``) so
tests can see what was sent.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}

CONDITIONS = {"if-match", "if-none-match"}

ERROR_CODES = {"500": "InternalError", "503": "SlowDown", "403": "AccessDenied"}

ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>injected fault</Message></Error>"
)


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        fail_rate: float = 0.0,
        seed: int = 0,
        methods: tuple[str, ...] = ("PUT",),
        kinds: tuple[str, ...] = ("500", "503", "reset", "lost"),
        path_filter: str = "",
        slow_seconds: float = 0.05,
        origin_path: str = "",
        ignore_conditions: bool = False,
        replies: dict[str, bytes] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.fail_rate = fail_rate
        self.methods = methods
        self.kinds = kinds
        self.path_filter = path_filter
        self.slow_seconds = slow_seconds
        #: Prepended to every forwarded path, like a CDN's origin path (``/bucket``): the
        #: proxy then serves a path-style bucket at its root, as a CDN host would.
        self.origin_path = origin_path
        #: ``"METHOD /path STATUS"`` -> count of the responses sent back.
        self.responses: Counter[str] = Counter()
        self.ignore_conditions = ignore_conditions
        #: GET requests whose path contains a key are answered 200 with its bytes instead
        #: (a server returning something odd, e.g. for ``?policy``).
        self.replies = replies or {}
        #: (method, path, headers with lower-case names) of every request, in order.
        self.headers: list[tuple[str, str, dict[str, str]]] = []
        self.requests: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        #: Set when the proxy stops: stalled requests are then dropped, never forwarded.
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def count(self, method: str, query_contains: str = "") -> int:
        return sum(n for key, n in self.requests.items()
                   if key.startswith(method + " ") and query_contains in key)

    def _draw_fault(self, method: str, path: str) -> str | None:
        if method not in self.methods or self.path_filter not in path:
            return None
        with self._lock:
            if self._rng.random() >= self.fail_rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.faults[kind] += 1
            return kind

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests[f"{self.command} {self.path}"] += 1
                    proxy.headers.append((self.command, self.path,
                                          {k.lower(): v for k, v in self.headers.items()}))
                canned = [data for part, data in proxy.replies.items() if part in self.path]
                if self.command == "GET" and canned:
                    self._reply(200, {"Content-Type": "application/xml"}, canned[0])
                    return
                fault = proxy._draw_fault(self.command, self.path)
                if fault == "reset":
                    self._reset()
                    return
                if fault in ERROR_CODES:
                    code = ERROR_CODES[fault]
                    self._reply(int(fault), {"Content-Type": "application/xml"},
                                ERROR_BODY.format(code=code).encode())
                    return
                if fault == "stall":
                    proxy._stopping.wait()
                    self._reset()
                    return
                if fault == "slow":
                    time.sleep(proxy.slow_seconds)
                status, headers, data = self._forward(body)
                if fault == "lost":
                    self._reset()
                    return
                self._reply(status, headers, data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

            def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port,
                                                  timeout=30)
                try:
                    dropped = HOP_BY_HOP | (CONDITIONS if proxy.ignore_conditions else set())
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in dropped}
                    conn.request(self.command, proxy.origin_path + self.path, body=body,
                                 headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    out = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
                    return response.status, out, data
                finally:
                    conn.close()

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                with proxy._lock:
                    proxy.responses[f"{self.command} {self.path} {status}"] += 1
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() != "content-length":
                        self.send_header(key, value)
                length = headers.get("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _reset(self) -> None:
                # SO_LINGER 0 makes close() send RST: the client sees a connection reset.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

        return Handler


@contextmanager
def fault_proxy(upstream: str, **options: object) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, **options).start()  # type: ignore[arg-type]
    try:
        yield proxy
    finally:
        proxy.stop()
