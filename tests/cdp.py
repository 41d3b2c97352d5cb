"""Headless Chromium for tests, driven over the Chrome DevTools Protocol.

Owns `headless_chromium()`: Debian's `chromium --headless=new` on a free
DevTools port with a throwaway profile, killed (its whole process group) and
its profile removed when the block ends, whatever happens in it; and `Page`,
one tab's DevTools session over a WebSocket (a small RFC 6455 client of the
standard library: text frames, fragments, ping/close; all the protocol
needs). `Page.wait_for` waits for a DOM condition inside the page (a
MutationObserver, no polling from here) with a deadline.
"""
from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

from tests.helpers import wait

CHROMIUM = "chromium"
START_TIMEOUT = 30.0   # seconds for Chromium to open its DevTools port
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For subprocess.Popen(preexec_fn=...): the child gets SIGKILL when the test process
    dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG), so no browser outlives a test run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class CDPError(Exception):
    """The browser answered a command with an error, or went away."""


class _WebSocket:
    """A client WebSocket (RFC 6455) on a plain TCP connection."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80),
                                             timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CDPError("the browser closed the DevTools connection during the handshake")
            head += chunk
        head, self._buffer = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise CDPError(f"DevTools handshake refused: {head.decode(errors='replace')}")

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buffer)))
            if not chunk:
                raise CDPError("the browser closed the DevTools connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        """The next whole text message (answers pings, raises on close)."""
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else b""
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise CDPError("the browser closed the DevTools connection")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, b"")
        self.sock.close()


class Page:
    """One tab's DevTools session: commands, script evaluation, DOM waits, screenshots."""

    def __init__(self, ws_url: str) -> None:
        self.ws = _WebSocket(ws_url)
        self._next_id = 0

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Sends a command and returns its result (events in between are dropped)."""
        self._next_id += 1
        ident = self._next_id
        self.ws.sock.settimeout(timeout)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") != ident:
                continue
            if "error" in reply:
                raise CDPError(f"{method}: {reply['error']}")
            return reply.get("result", {})

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CDPError(f"script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout: float, what: str) -> Any:
        """Waits, inside the page, until the JavaScript expression `condition` is truthy
        (checked on every DOM change); returns its value, or fails naming `what`."""
        script = f"""new Promise((resolve) => {{
            const check = () => {{ try {{ return ({condition}); }} catch (e) {{ return null; }} }};
            const first = check();
            if (first) {{ resolve(first); return; }}
            const observer = new MutationObserver(() => {{
                const value = check();
                if (value) {{ observer.disconnect(); clearTimeout(timer); resolve(value); }}
            }});
            observer.observe(document, {{subtree: true, childList: true, attributes: true,
                                         characterData: true}});
            const timer = setTimeout(() => {{ observer.disconnect(); resolve(null); }},
                                     {int(timeout * 1000)});
        }})"""
        value = self.evaluate(script, timeout=timeout + 10)
        if not value:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; the page "
                                 f"shows:\n{self.evaluate('document.body.innerText')}")
        return value

    def navigate(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def screenshot(self, path: Path, width: int = 1280, height: int = 760) -> bytes:
        """A PNG of the page at width x height CSS pixels, written to path."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        self.ws.close()


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    """The port Chromium wrote to <profile>/DevToolsActivePort once listening."""
    marker = profile / "DevToolsActivePort"

    def port() -> Optional[int]:
        if proc.poll() is not None:
            raise CDPError(f"chromium exited ({proc.returncode}) before opening DevTools")
        try:
            return int(marker.read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None

    return int(wait(port, timeout, "chromium's DevTools port", interval=0.05))


@contextlib.contextmanager
def headless_chromium(executable: str = CHROMIUM) -> Iterator[Page]:
    """A headless Chromium with one blank tab; killed and its profile removed afterwards."""
    binary = shutil.which(executable)
    if binary is None:
        raise CDPError(f"{executable} is not installed (scripts/setup.sh installs Debian's "
                       "chromium)")
    profile = Path(tempfile.mkdtemp(prefix="shoal-chromium-"))
    argv = [binary, "--headless=new", "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}",
            "--no-first-run", "--no-default-browser-check", "--disable-gpu",
            "--disable-extensions", "--disable-background-networking", "--disable-sync",
            "--hide-scrollbars", "--mute-audio", "about:blank"]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")     # Chromium's sandbox refuses to run as root
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=die_with_parent)
    page: Optional[Page] = None
    try:
        port = _devtools_port(profile, proc, START_TIMEOUT)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as res:
            targets = json.loads(res.read())
        tab = next(t for t in targets if t.get("type") == "page")
        page = Page(tab["webSocketDebuggerUrl"])
        yield page
    finally:
        if page is not None:
            page.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)     # the browser and every helper it started
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
