"""cli/registry.py: the registry conversation (challenges,
tokens, digests, reasons) against an in-process HTTP peer that speaks the v2 API's
authentication, and against the lab's real registry for the digest."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from cli import registry as reg
from cli.registry import Credentials, RegistryError

def test_only_loopback_and_named_registries_may_be_plain_http(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_INSECURE_REGISTRIES", raising=False)
    assert reg._insecure_allowed("127.0.0.1:5000")
    assert reg._insecure_allowed("localhost:5000")
    assert not reg._insecure_allowed("10.1.2.3:5000")
    monkeypatch.setenv("SHOAL_INSECURE_REGISTRIES", "10.1.2.3:5000, other")
    assert reg._insecure_allowed("10.1.2.3:5000")
    assert reg._insecure_allowed("other:443")


# ---- the conversation, against an in-process peer on loopback (plain HTTP) ----

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType":
                       "application/vnd.oci.image.manifest.v1+json"}).encode()
USER, PASSWORD, TOKEN = "alice", "s3cret", "tok-123"


class _Peer(BaseHTTPRequestHandler):
    mode = "bearer"            # "bearer", "basic" or "open"
    send_digest = True
    seen: list[tuple[str, str, str]] = []

    def log_message(self, *_args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self) -> None:
        port = self.server.server_address[1]
        challenge = (f'Bearer realm="http://127.0.0.1:{port}/token",service="peer"'
                     if self.mode == "bearer" else 'Basic realm="peer"')
        body = json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                       "message": "authentication required"}]}).encode()
        self._reply(401, body, {"WWW-Authenticate": challenge})

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        auth = self.headers.get("Authorization", "")
        type(self).seen.append((self.command, self.path, auth))
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.path.startswith("/token"):
            if auth != basic:
                self._reply(401, json.dumps({"details": "incorrect username or password"})
                            .encode())
            else:
                self._reply(200, json.dumps({"token": TOKEN}).encode())
            return
        wanted = {"bearer": f"Bearer {TOKEN}", "basic": basic, "open": auth}[self.mode]
        if auth != wanted:
            self._refuse()
            return
        if self.path == "/v2/":
            self._reply(200, b"{}")
        elif self.path == "/v2/shoal/app/manifests/v1":
            headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
            if self.send_digest:
                headers["Docker-Content-Digest"] = "sha256:" + "c" * 64
            self._reply(200, MANIFEST, headers)
        else:
            self._reply(404, json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN",
                                                     "message": "manifest unknown"}]}).encode())


@pytest.fixture
def peer() -> Iterator[tuple[str, type[_Peer]]]:
    handler = type("Peer", (_Peer,), {"seen": [], "mode": "bearer", "send_digest": True})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_token_server_challenge_is_answered_with_the_credentials(peer) -> None:
    host, handler = peer
    digest = reg.resolve_digest(f"{host}/shoal/app:v1", Credentials(USER, PASSWORD), timeout=5)
    assert digest == "sha256:" + "c" * 64
    token_asks = [path for _, path, _ in handler.seen if path.startswith("/token")]
    assert token_asks and "scope=repository%3Ashoal%2Fapp%3Apull" in token_asks[0]
    assert "account=alice" in token_asks[0]


def test_without_credentials_the_registrys_reason_is_the_error(peer) -> None:
    host, handler = peer
    handler.mode = "basic"
    with pytest.raises(RegistryError, match="^unauthorized: authentication required$"):
        reg.resolve_digest(f"{host}/shoal/app:v1", timeout=5)


def test_basic_challenges_and_missing_tags(peer) -> None:
    host, handler = peer
    handler.mode = "basic"
    creds = Credentials(USER, PASSWORD)
    assert reg.resolve_digest(f"{host}/shoal/app:v1", creds, timeout=5) == "sha256:" + "c" * 64
    with pytest.raises(RegistryError, match="manifest unknown"):
        reg.resolve_digest(f"{host}/shoal/app:v9", creds, timeout=5)


def test_a_digest_missing_from_the_headers_is_the_hash_of_the_manifest(peer) -> None:
    host, handler = peer
    handler.mode, handler.send_digest = "open", False
    digest = reg.resolve_digest(f"{host}/shoal/app:v1", timeout=5)
    assert digest == "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


def test_login_checks_credentials_with_the_token_server(peer) -> None:
    host, handler = peer
    reg.check_login(host, Credentials(USER, PASSWORD), timeout=5)
    with pytest.raises(RegistryError, match="incorrect username or password"):
        reg.check_login(f"http://{host}/", Credentials(USER, "wrong"), timeout=5)
    handler.mode = "basic"
    with pytest.raises(RegistryError, match="unauthorized"):
        reg.check_login(host, Credentials(USER, "wrong"), timeout=5)
    reg.check_login(host, Credentials(USER, PASSWORD), timeout=5)


def test_an_unreachable_registry_fails_fast_with_a_reason() -> None:
    with pytest.raises(RegistryError, match="cannot reach registry 127.0.0.1:9"):
        reg.resolve_digest("127.0.0.1:9/shoal/app:v1", timeout=2)
    with pytest.raises(RegistryError, match="cannot reach registry"):
        reg.resolve_digest("registry.invalid/app:v1", timeout=2)


# ---- the real lab registry ----

def test_the_digest_is_the_one_the_lab_registry_serves() -> None:
    from lab import images
    images.ensure_registry()
    image = images.ensure_demo_image()
    digest = reg.resolve_digest(image, timeout=10)
    out = subprocess.run(["curl", "-sfI", "-H", f"Accept: {reg.MANIFEST_TYPES}",
                          f"http://{images.REGISTRY_ADDR}/v2/{images.DEMO_REPO}/manifests/"
                          f"{images.DEMO_TAG}"], capture_output=True, text=True, check=True)
    served = [line.split(":", 1)[1].strip() for line in out.stdout.splitlines()
              if line.lower().startswith("docker-content-digest:")]
    assert served == [digest] and digest.startswith("sha256:")
