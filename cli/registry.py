"""A client of container registries (the Docker Registry HTTP API v2), for the CLI.

Owns what `swarm` itself asks a registry, as the Docker CLI does before it hands
a spec to the cluster:
* image references and registry names are `proto.imageref`'s (shared with the
  managers and the workers);
* `resolve_digest`: the digest of the manifest (or index) a tag names now, as
  the registry reports it (`Docker-Content-Digest`, else the hash of the body);
* where to ask: the registry the name names, or where this host's podman would
  read it instead (`cli.registryconf`: registries.conf locations and mirrors),
  so the digest pinned is the one the nodes' pulls will find;
* `check_login`: whether the registry accepts credentials (`swarm login`);
* the conversation with the registry: HTTPS trusted through the system's CAs
  plus the per-registry `ca.crt` files Docker and podman read
  (`/etc/docker/certs.d/HOST[:PORT]/`, `/etc/containers/certs.d/HOST[:PORT]/`);
  plain HTTP only for Docker's default insecure registries (127.0.0.0/8,
  localhost) and those named in `$SHOAL_INSECURE_REGISTRIES` (comma list), and
  only after HTTPS failed there; the `Bearer` (token server) and `Basic`
  challenges of a registry that wants credentials.

Errors are `RegistryError`, whose text is the registry's own reason
("unauthorized: authentication required") or what failed on the way.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import threading
import urllib.parse
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Optional

from cli.registryconf import RegistryConfError, endpoints_for
from proto.imageref import (HUB_DOMAIN, HUB_REGISTRY, TOKEN_USER, is_digest, parse_reference,
                            registry_host)

CERT_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d"))

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """A registry refused a request, or could not be reached; says why."""


class Credentials(NamedTuple):
    """What a registry is asked to accept: a user and password, or an identity token
    (username `<token>`)."""

    username: str
    password: str


def _api_host(domain: str) -> str:
    return HUB_REGISTRY if domain == HUB_DOMAIN else domain


def _insecure_allowed(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    extra = {h.strip() for h in os.environ.get("SHOAL_INSECURE_REGISTRIES", "").split(",")
             if h.strip()}
    if host in extra or name in extra or name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """The name in "host[:port]" ("" for an IP literal or localhost: nothing to look up)."""
    name = host
    if name.startswith("["):
        return ""
    if name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", name):
        return ""
    return name


def check_dns(host: str, timeout: float = 2.0,
              lookup: Optional[Callable[[str], object]] = None) -> None:
    """Returns when the registry host's name resolves, or fails to, within `timeout`;
    raises the registry's "cannot reach" error when DNS gives no answer by then.

    A socket timeout does not bound a name lookup: where DNS packets are dropped (a
    machine or a namespace without a way out) the C resolver waits its own 5 s per
    try, twice. The lookup runs in a daemon thread, left to finish on its own."""
    name = _host_name(host)
    if not name:
        return
    look = lookup or (lambda n: socket.getaddrinfo(n, 443, type=socket.SOCK_STREAM))
    finished = threading.Event()

    def run() -> None:
        try:
            look(name)
        except OSError:
            pass             # a quick failure: the request that follows reports it
        finally:
            finished.set()
    threading.Thread(target=run, name=f"dns {name}", daemon=True).start()
    if not finished.wait(timeout):
        raise RegistryError(f"cannot reach registry {host}: no answer from "
                                        f"DNS for {name} within {timeout:g}s")


def _tls_context(host: str, insecure: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if insecure or _insecure_allowed(host):       # Docker does not verify an insecure registry's TLS
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    for base in CERT_DIRS:
        folder = base / host
        try:
            files = sorted(folder.glob("*.crt"))
        except OSError:
            continue
        for path in files:
            try:
                context.load_verify_locations(cafile=str(path))
            except (OSError, ssl.SSLError) as err:
                raise RegistryError(f"cannot use {path} as a CA certificate: {err}") from err
    return context


class _Response(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes


def _reason(response: _Response) -> str:
    """The registry's own words for a refusal: `code: message` of its first error."""
    try:
        errors = json.loads(response.body.decode()).get("errors") or []
        first = errors[0]
        code = str(first.get("code", "")).lower().replace("_", " ")
        message = str(first.get("message", "")).strip()
        if code or message:
            return f"{code}: {message}" if code and message else code or message
    except (ValueError, AttributeError, IndexError, TypeError, UnicodeDecodeError):
        pass
    try:
        detail = json.loads(response.body.decode())
        if isinstance(detail, dict) and detail.get("details"):
            return str(detail["details"])
    except (ValueError, UnicodeDecodeError):
        pass
    text = response.body.decode(errors="replace").strip()
    return text.splitlines()[0][:200] if text else f"HTTP {response.status}"


def _basic(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(params))


class _Session:
    """Requests to one registry: picks the scheme once, answers its challenge once."""

    def __init__(self, domain: str, creds: Optional[Credentials], timeout: float,
                 insecure: bool = False, dns_timeout: Optional[float] = None) -> None:
        self.host = _api_host(domain)
        self.dns_timeout = dns_timeout
        self.insecure = insecure or _insecure_allowed(self.host)   # registries.conf's say
        self.creds = creds
        self.timeout = timeout
        self.scheme = ""
        self.authorization = ""

    def _send(self, scheme: str, method: str, target: str,
              headers: Mapping[str, str], host: str = "") -> _Response:
        host = host or self.host
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, timeout=self.timeout,
                context=_tls_context(host, self.insecure and host == self.host))
        else:
            connection = http.client.HTTPConnection(host, timeout=self.timeout)
        try:
            connection.request(method, target, headers=dict(headers))
            answer = connection.getresponse()
            body = answer.read()
            return _Response(answer.status, {k.lower(): v for k, v in answer.getheaders()},
                             body)
        finally:
            connection.close()

    def _pick_scheme(self, method: str, target: str,
                     headers: Mapping[str, str]) -> _Response:
        if self.dns_timeout is not None:
            check_dns(self.host, self.dns_timeout)
        try:
            response = self._send("https", method, target, headers)
            self.scheme = "https"
            return response
        except (OSError, http.client.HTTPException) as err:
            if not self.insecure:
                raise RegistryError(f"cannot reach registry {self.host}: {_why(err)}") from err
            try:
                response = self._send("http", method, target, headers)
            except (OSError, http.client.HTTPException) as err2:
                raise RegistryError(f"cannot reach registry {self.host}: "
                                    f"{_why(err2)}") from err2
            self.scheme = "http"
            return response

    def request(self, method: str, target: str, headers: Mapping[str, str],
                scope: str = "") -> _Response:
        """One request, answering an authentication challenge once when one comes."""
        sent = dict(headers)
        if self.authorization:
            sent["Authorization"] = self.authorization
        response = self._request_once(method, target, sent)
        if response.status == 401 and not self.authorization:
            self.authorization = self._authorize(response, scope)
            if self.authorization:
                sent["Authorization"] = self.authorization
                response = self._request_once(method, target, sent)
        return response

    def _request_once(self, method: str, target: str, headers: Mapping[str, str]) -> _Response:
        if not self.scheme:
            return self._pick_scheme(method, target, headers)
        try:
            return self._send(self.scheme, method, target, headers)
        except (OSError, http.client.HTTPException) as err:
            raise RegistryError(f"cannot reach registry {self.host}: {_why(err)}") from err

    def _authorize(self, refusal: _Response, scope: str) -> str:
        """The Authorization header that answers the registry's challenge ("" when the
        challenge cannot be answered: the refusal then stands)."""
        scheme, params = _challenge(refusal.headers.get("www-authenticate", ""))
        if scheme == "basic":
            return _basic(self.creds) if self.creds else ""
        if scheme != "bearer" or "realm" not in params:
            return ""
        return "Bearer " + self._token(params, scope)

    def _token(self, params: Mapping[str, str], scope: str) -> str:
        realm = urllib.parse.urlsplit(params["realm"])
        if realm.scheme not in ("https", "http") or not realm.netloc:
            raise RegistryError(f"registry {self.host} names a bad token server: "
                                f"{params['realm']!r}")
        if realm.scheme == "http" and not _insecure_allowed(realm.netloc):
            raise RegistryError(f"registry {self.host} sends credentials to a plain-HTTP "
                                f"token server ({params['realm']}); refusing")
        query = {"service": params.get("service", "")}
        scope = scope or params.get("scope", "")
        if scope:
            query["scope"] = scope
        headers: dict[str, str] = {}
        method, body = "GET", b""
        if self.creds and self.creds.username == TOKEN_USER:
            method = "POST"
            body = urllib.parse.urlencode({**query, "grant_type": "refresh_token",
                                           "refresh_token": self.creds.password,
                                           "client_id": "shoal"}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif self.creds:
            headers["Authorization"] = _basic(self.creds)
            query["account"] = self.creds.username
        target = (realm.path or "/") + ("?" + urllib.parse.urlencode(query)
                                         if method == "GET" else "")
        connection: http.client.HTTPConnection
        if realm.scheme == "https":
            connection = http.client.HTTPSConnection(realm.netloc, timeout=self.timeout,
                                                     context=_tls_context(realm.netloc))
        else:
            connection = http.client.HTTPConnection(realm.netloc, timeout=self.timeout)
        try:
            connection.request(method, target, body=body or None, headers=headers)
            answer = connection.getresponse()
            response = _Response(answer.status, dict(answer.getheaders()), answer.read())
        except (OSError, http.client.HTTPException) as err:
            raise RegistryError(f"cannot reach the token server of {self.host}: "
                                f"{_why(err)}") from err
        finally:
            connection.close()
        if response.status != 200:
            raise RegistryError(_reason(response))
        try:
            answer_json = json.loads(response.body.decode())
            token = answer_json.get("token") or answer_json.get("access_token")
        except (ValueError, AttributeError, UnicodeDecodeError):
            token = None
        if not token:
            raise RegistryError(f"the token server of {self.host} answered without a token")
        return str(token)


def _why(err: BaseException) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"x509: {err.verify_message or err}"
    return str(err) or type(err).__name__


def resolve_digest(image: str, creds: Optional[Credentials] = None,
                   timeout: float = 10.0, dns_timeout: Optional[float] = None) -> str:
    """The digest (`sha256:...`) of what `image`'s tag names in its registry now (with
    `dns_timeout`, a registry whose name DNS does not answer by then is given up on)."""
    try:
        ref = parse_reference(image)
    except ValueError as err:
        raise RegistryError(str(err)) from err
    if ref.digest:
        return ref.digest
    try:
        places = [(e.host, e.path, e.insecure) for e in endpoints_for(ref.name)] \
            or [(ref.domain, ref.path, False)]
    except RegistryConfError as err:
        raise RegistryError(str(err)) from err
    error = RegistryError(f"no registry to ask for {image}")
    for host, path, insecure in places:       # mirrors first, as podman reads them
        try:
            session = _Session(host, creds, timeout, insecure, dns_timeout)
            return _manifest_digest(session, path, ref.tag)
        except RegistryError as err:
            error = err
    raise error


def _manifest_digest(session: "_Session", path: str, tag: str) -> str:
    target = f"/v2/{path}/manifests/{urllib.parse.quote(tag, safe='')}"
    response = session.request("GET", target, {"Accept": MANIFEST_TYPES},
                               scope=f"repository:{path}:pull")
    if response.status != 200:
        raise RegistryError(_reason(response))
    digest = response.headers.get("docker-content-digest", "").strip()
    if not is_digest(digest):
        digest = "sha256:" + hashlib.sha256(response.body).hexdigest()
    return digest


def check_login(server: str, creds: Credentials, timeout: float = 10.0) -> None:
    """Returns when the registry at `server` (host[:port] or URL) accepts `creds`;
    RegistryError with its reason otherwise. A registry that asks for nothing
    accepts anyone, as with Docker."""
    session = _Session(registry_host(server), creds, timeout)
    response = session.request("GET", "/v2/", {})
    if response.status == 401:
        reason = _reason(response)
        raise RegistryError(reason if reason != "HTTP 401"
                            else "unauthorized: incorrect username or password")
    if response.status != 200:
        raise RegistryError(_reason(response))
