"""The cluster page's web server: one page and a stream of its state, on loopback only.

Owns `PageServer`: an HTTP server bound to 127.0.0.1 that serves the page
(`cli/clusterpage.html`, package data: HTML, CSS and script inline, nothing
fetched from elsewhere), the page state as JSON (`/state.json`) and as
Server-Sent Events (`/events`: one `data:` line with the whole state after
each change, at most `MAX_RATE` a second, a comment line every
`KEEPALIVE_SECONDS` so that a closed tab is noticed).

Loopback is reachable by every local user and, through DNS rebinding, by web
pages in a local browser; the cluster's state is for root (as the node's
socket). So the server answers only requests whose Host is its own loopback
address, and only holders of the access token it was started with: the URL
`swarm ui` prints carries it, the first visit trades it for a cookie.

Nothing that goes wrong in a request or in building the state ends the
server or reaches the terminal as a traceback: it is logged (naming the
node) and, when the state cannot be built, the page is sent the last good
state marked not connected, so that it says so instead of freezing.
"""
from __future__ import annotations

import hmac
import json
import logging
import secrets
import sys
import threading
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

from cli.clusterview import Mirror, page_state

log = logging.getLogger("swarm.ui")

ADDRESS = "127.0.0.1"
PAGE_RESOURCE = "clusterpage.html"
MAX_RATE = 10              # state messages a second, at most (changes are coalesced)
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 1000            # how soon a page's EventSource reconnects after a cut
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'")


def page_html() -> bytes:
    """The page, as installed with the package."""
    return resources.files("cli").joinpath(PAGE_RESOURCE).read_bytes()


class _Broadcast:
    """The latest state, serialised, with a sequence number clients wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seq = 0
        self.data = b""
        self.closed = False

    def publish(self, data: bytes) -> None:
        with self.cond:
            self.seq += 1
            self.data = data
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def next_after(self, seq: int, timeout: float) -> tuple[int, Optional[bytes]]:
        """(seq, data) of a state newer than seq, or (seq, None) after timeout or close."""
        with self.cond:
            self.cond.wait_for(lambda: self.closed or self.seq > seq, timeout)
            if self.closed or self.seq <= seq:
                return seq, None
            return self.seq, self.data


class _HTTPServer(ThreadingHTTPServer):
    """The standard threading server, logging a failed request instead of printing it."""

    daemon_threads = True
    source = ""          # the node whose page this is (for log lines)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("cluster page of %s: %s went away: %s", self.source, client_address, exc)
            return
        log.error("cluster page of %s: a request from %s failed: %s: %s", self.source,
                  client_address, type(exc).__name__, exc)
        log.debug("cluster page of %s: the failed request", self.source, exc_info=True)


class PageServer:
    """Serves the page on 127.0.0.1:port; `changed()` pushes a new state to open pages.

    `source` names the node the state comes from (for log lines).
    """

    def __init__(self, state: Callable[[], dict[str, Any]], port: int,
                 token: Optional[str] = None, source: str = "") -> None:
        self.state = state
        self.source = source
        self.token = token or secrets.token_urlsafe(18)
        self.page = page_html()
        self.broadcast = _Broadcast()
        self._dirty = threading.Event()
        self._last: Optional[dict[str, Any]] = None   # the last state that could be built
        self.stopped = threading.Event()
        self.httpd = _HTTPServer((ADDRESS, port), self._handler_class())
        self.httpd.source = source
        self.port = int(self.httpd.server_address[1])
        self.cookie = f"shoal-ui-{self.port}"
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """The address to open (with the access token)."""
        return f"http://{ADDRESS}:{self.port}/?token={self.token}"

    def changed(self) -> None:
        """Something in the state changed: open pages get the new state soon."""
        self._dirty.set()

    def start(self) -> None:
        for target, name in ((self.httpd.serve_forever, "swarm-ui-http"),
                             (self._publish, "swarm-ui-publish")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stops serving, ends every open event stream, closes the socket."""
        self.stopped.set()
        self._dirty.set()
        self.broadcast.close()
        if self._threads:       # shutdown() waits for serve_forever: only once it runs
            self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def state_json(self, indent: Optional[int] = None) -> bytes:
        """The state as JSON; never raises. When the state function fails, the last state
        that could be built (or an empty one), marked not connected with the reason."""
        try:
            state = self.state()
            data = json.dumps(state, indent=indent,
                              separators=None if indent else (",", ":")).encode()
            self._last = state
            return data
        except Exception as exc:   # noqa: BLE001 (the page must be told, not frozen)
            why = (f"Error: the cluster page of {self.source} could not be updated "
                   f"({type(exc).__name__}: {exc})")
            log.error("cluster page of %s: %s", self.source, why)
            log.debug("cluster page of %s: the failed state", self.source, exc_info=True)
        base = self._last if self._last is not None else page_state(Mirror(), False)
        return json.dumps(dict(base, connected=False, error=why), indent=indent).encode()

    def _publish(self) -> None:
        """Serialises the state after changes, coalescing bursts (at most MAX_RATE a second)."""
        while True:
            self._dirty.wait()
            if self.stopped.is_set():
                return
            self._dirty.clear()
            try:
                self.broadcast.publish(self.state_json())
            except Exception as exc:   # noqa: BLE001 (the thread must outlive one failure)
                log.error("cluster page of %s: publishing the state failed: %s: %s",
                          self.source, type(exc).__name__, exc)
            if self.stopped.wait(1.0 / MAX_RATE):
                return

    # -------------------------------------------------------------- access --

    def host_allowed(self, host: str) -> bool:
        return host in (f"{ADDRESS}:{self.port}", f"localhost:{self.port}")

    def token_ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            page_server = server
        return Handler


class _Handler(BaseHTTPRequestHandler):
    """One request to the page server (GET only)."""

    page_server: PageServer
    protocol_version = "HTTP/1.1"
    server_version = "swarm-ui"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        log.debug("cluster page: %s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str = "text/plain",
              headers: Optional[dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type + "; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        ps = self.page_server
        if ps.token_ok(query.get("token", [""])[0]):
            return True
        cookies = SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie", ""))
        except Exception:   # a malformed Cookie header is no credential
            return False
        morsel = cookies.get(ps.cookie)
        return morsel is not None and ps.token_ok(morsel.value)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        ps = self.page_server
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not ps.host_allowed(self.headers.get("Host", "")):
            self._send(HTTPStatus.FORBIDDEN, b"swarm ui answers only on its loopback address\n")
            return
        if not self._authorised(query):
            self._send(HTTPStatus.FORBIDDEN,
                       b"open the address `swarm ui` printed (it carries the access token)\n")
            return
        if url.path == "/" and "token" in query:
            # trade the token for a cookie, and keep it out of the address bar
            self._send(HTTPStatus.SEE_OTHER, b"", headers={
                "Location": "/",
                "Set-Cookie": f"{ps.cookie}={ps.token}; Path=/; HttpOnly; SameSite=Strict"})
        elif url.path == "/":
            self._send(HTTPStatus.OK, ps.page, "text/html",
                       {"Content-Security-Policy": CSP})
        elif url.path == "/state.json":
            self._send(HTTPStatus.OK, ps.state_json(indent=1), "application/json")
        elif url.path == "/events":
            self._events()
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")

    def _events(self) -> None:
        """Server-Sent Events: the current state at once, then each new one."""
        ps = self.page_server
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        seq = 0              # nothing sent yet (published states count from 1)
        try:
            self.wfile.write(f"retry: {RETRY_MS}\n\n".encode())
            self.wfile.flush()
            if ps.broadcast.seq == 0:
                ps.changed()        # nothing published yet: ask for a first state
            while not ps.stopped.is_set():
                seq, data = ps.broadcast.next_after(seq, KEEPALIVE_SECONDS)
                if data is not None:
                    self.wfile.write(b"data: " + data + b"\n\n")
                elif not ps.stopped.is_set():
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass              # the page went away
