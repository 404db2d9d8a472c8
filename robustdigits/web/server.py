"""The demo's HTTP server: loopback only, and closed to other sites.

The attacker is a web page in the user's own browser. Against DNS rebinding every request
must name this server in its ``Host`` (127.0.0.1 or localhost, with its port); against
cross-site requests a POST must carry ``Content-Type: application/json`` (a cross-site
page cannot send that without a CORS preflight, which is refused) and no foreign
``Origin`` or ``Sec-Fetch-Site: cross-site``. Model work is serialized and its queue
bounded (503 when full). Every answer, http.server's own errors included, is JSON with an
``error`` the page shows; a client too slow to send its body gets 408.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .demo import BadInputError, Demo, page

MAX_BODY = 2_000_000  # bytes of one request: the page sends a 112×112 canvas as JSON, about 0.1 MB
DRAIN_LIMIT = 64_000_000  # a larger body is read and dropped before the 413, so the client sees the answer
MAX_PENDING = 4  # model requests running or waiting; one more gets 503
CLIENT_TIMEOUT = 10.0  # seconds a client may take to send its request line, headers and body
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


class DemoHandler(BaseHTTPRequestHandler):
    """One request; the demo, its lock and its queue are the server's (see ``make_server``)."""

    server_version = "robustdigits-demo"
    timeout = CLIENT_TIMEOUT
    server: DemoServer
    body_read = False  # whether this request's body was read (a refusal reads it first)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints the address
        pass

    # --- answers ------------------------------------------------------------------------
    def send(self, status: HTTPStatus, body: bytes, kind: str, close: bool = False,
             headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply(self, status: HTTPStatus, obj: Any, **kwargs: Any) -> None:
        self.send(status, json.dumps(obj).encode(), "application/json", **kwargs)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a bad request line, a URL or header too long, an
        unknown method) as JSON like every other answer."""
        status = HTTPStatus(code)
        self.reply(status, {"error": message or status.phrase}, close=True)

    # --- checks -------------------------------------------------------------------------
    def check_host(self) -> None:
        port = self.server.server_port
        allowed = {f"{name}:{port}" for name in LOOPBACK_NAMES} | set(LOOPBACK_NAMES)
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in allowed:
            raise BadInputError(f"this demo answers only requests to http://127.0.0.1:{port}/ (Host "
                                f"{host or 'missing'})", HTTPStatus.MISDIRECTED_REQUEST)

    def check_same_site(self) -> None:
        port = self.server.server_port
        origin = self.headers.get("Origin")
        if origin is not None and origin.lower() not in {f"http://{name}:{port}" for name in LOOPBACK_NAMES}:
            raise BadInputError(f"requests from {origin} are refused: use the demo's own page", HTTPStatus.FORBIDDEN)
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise BadInputError("cross-site requests are refused: use the demo's own page", HTTPStatus.FORBIDDEN)
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise BadInputError("send the request as application/json from the demo page",
                                HTTPStatus.UNSUPPORTED_MEDIA_TYPE)

    def read_body(self) -> Any:
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise BadInputError("the request needs a Content-Length", HTTPStatus.LENGTH_REQUIRED)
        if not raw.strip().isdigit():
            raise BadInputError(f"Content-Length must be a whole number of bytes, got {raw!r}", HTTPStatus.BAD_REQUEST)
        length = int(raw)
        self.body_read = True
        if length > MAX_BODY:
            if length <= DRAIN_LIMIT:  # read it, so the client is not reset before it reads the answer
                self.drain(length)
            self.close_connection = True
            raise BadInputError(f"the upload is too large ({length / 1e6:.1f} MB; at most {MAX_BODY / 1e6:.0f} MB): "
                                "use a smaller image", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = self.rfile.read(length)
        except TimeoutError:  # the client stopped sending mid-body
            self.close_connection = True
            raise BadInputError(f"the request was not complete within {self.timeout:g} s",
                                HTTPStatus.REQUEST_TIMEOUT) from None
        if len(body) < length:
            raise BadInputError(f"the body ended after {len(body)} of {length} bytes", HTTPStatus.BAD_REQUEST)
        try:
            payload = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadInputError("the request is not JSON: send it from the demo page", HTTPStatus.BAD_REQUEST) from None
        if not isinstance(payload, dict):
            raise BadInputError("the request must be a JSON object with an image", HTTPStatus.BAD_REQUEST)
        return payload

    def discard_body(self) -> None:
        raw = (self.headers.get("Content-Length") or "").strip()
        if raw.isdigit() and int(raw) <= DRAIN_LIMIT:
            self.drain(int(raw))
        self.close_connection = True

    def drain(self, length: int) -> None:
        left = length
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    return
                left -= len(chunk)
        except TimeoutError:
            self.close_connection = True

    # --- methods ------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        try:
            self.check_host()
            path = urlsplit(self.path).path
            if path in ("/", "/index.html"):
                self.send(HTTPStatus.OK, page(), "text/html; charset=utf-8",
                          headers={"Content-Security-Policy": "frame-ancestors 'none'; form-action 'none'",
                                   "X-Frame-Options": "DENY"})  # no other site frames the page
            elif path == "/api/models":
                self.reply(HTTPStatus.OK, {"models": list(self.server.demo.models)})
            else:
                self.reply(HTTPStatus.NOT_FOUND, {"error": f"no page {path}"})
        except BadInputError as e:
            self.reply(e.status, {"error": str(e)}, close=True)

    def do_POST(self) -> None:  # noqa: N802
        demo = self.server.demo
        routes = {"/api/predict": demo.predict, "/api/attack": demo.attack}
        self.body_read = False
        try:
            self.check_host()
            self.check_same_site()
            path = urlsplit(self.path).path
            if path not in routes:
                raise BadInputError(f"no endpoint {path}", HTTPStatus.NOT_FOUND)
            payload = self.read_body()
            if not self.server.pending.acquire(blocking=False):
                raise BadInputError(f"the demo is busy with {MAX_PENDING} requests; try again in a moment",
                                    HTTPStatus.SERVICE_UNAVAILABLE)
            try:
                with self.server.lock:
                    answer = routes[path](payload)
            finally:
                self.server.pending.release()
            self.reply(HTTPStatus.OK, answer)
        except BadInputError as e:
            if not self.body_read:  # refused on its headers: read what it sends, so it sees the answer
                self.discard_body()
            extra = {"Retry-After": "2"} if e.status == HTTPStatus.SERVICE_UNAVAILABLE else None
            self.reply(e.status, {"error": str(e)}, close=self.close_connection, headers=extra)

    def refuse_method(self) -> None:
        self.reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not served: GET the page, POST "
                                                            "to /api/predict or /api/attack"},
                   headers={"Allow": "GET, POST"})

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = refuse_method  # noqa: N815


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, demo: Demo, port: int) -> None:
        super().__init__(("127.0.0.1", port), DemoHandler)
        self.demo = demo
        self.lock = threading.Lock()  # one model computation at a time: torch threads are shared
        self.pending = threading.BoundedSemaphore(MAX_PENDING)


def make_server(demo: Demo, port: int = 0) -> DemoServer:
    """A server on 127.0.0.1 (``port`` 0: a free one); ``server.server_port`` says which."""
    return DemoServer(demo, port)
