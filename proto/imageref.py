"""Image references, registry names and Docker's X-Registry-Auth value: pure rules.

Owns what the CLI, the managers and the workers must agree on about an image's
name and the credentials that go with it; no sockets, no files, no I/O:

- `parse_reference`: Docker's image reference rules (a registry domain only when
  the first component has a dot or a colon or is `localhost`; Docker Hub's
  official images under `library/`; the tag defaults to `latest`), as a
  `Reference` that also gives the names Docker stores and shows
  (`busybox:latest`, `busybox:latest@sha256:...`);
- Docker Hub's names: the domain `docker.io` and its aliases, the host its v2
  API answers on, and its key in Docker's config.json
  (`https://index.docker.io/v1/`); `registry_host` and `registry_key` turn any
  spelling of a registry (a `swarm login` argument, a config key, an
  X-Registry-Auth `serveraddress`) into one host[:port] or one config key;
- `encode_auth` / `decode_auth`: Docker's X-Registry-Auth value (base64url of a
  JSON object with `username`/`password` or `identitytoken`, and
  `serveraddress`); `auth_for_image`: whether such a value was made for the
  registry an image is pulled from, so one registry's password never goes to
  another.

Imports nothing of ours.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import NamedTuple, Optional

HUB_DOMAIN = "docker.io"
HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
HUB_REGISTRY = "registry-1.docker.io"       # where Docker Hub's v2 API answers
HUB_KEY = "https://index.docker.io/v1/"     # Docker Hub's key in config.json
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
TOKEN_USER = "<token>"                      # a username meaning "the password is a token"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")


class InvalidAuth(ValueError):
    """A registry auth value is not Docker's X-Registry-Auth encoding."""


class Reference(NamedTuple):
    """An image reference split as Docker splits it: `docker.io`, `library/busybox`,
    `latest`, `` (no digest)."""

    domain: str
    path: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        """The repository's full name: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    def familiar_name(self) -> str:
        """The repository as Docker shows it: `busybox`, `user/app`, `host:5000/app`."""
        if self.domain != HUB_DOMAIN:
            return self.name
        prefix = OFFICIAL_NAMESPACE + "/"
        return self.path[len(prefix):] if self.path.startswith(prefix) \
            and "/" not in self.path[len(prefix):] else self.path

    def familiar(self) -> str:
        """Docker's short form with the tag and without the digest: `busybox:latest`."""
        return f"{self.familiar_name()}:{self.tag}"

    def pinned(self, digest: str) -> str:
        """The name Docker stores in a service spec: `busybox:latest@sha256:...`."""
        return f"{self.familiar()}@{digest}"


def is_digest(text: str) -> bool:
    """Whether `text` is a content digest (`sha256:` and hex)."""
    return bool(_DIGEST.fullmatch(text))


def has_tag(image: str) -> bool:
    """Whether the reference names a tag itself (`name:tag`, `host:5000/name:tag`)."""
    named = image.partition("@")[0]
    return named.rfind(":") > named.rfind("/")


def parse_reference(image: str) -> Reference:
    """Splits an image reference by Docker's rules; ValueError ("invalid reference
    format: ...") says what is wrong."""
    text = image.strip()
    if not text:
        raise ValueError("invalid reference format: the image name is empty")
    rest, _, digest = text.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise ValueError(f"invalid reference format: {image!r} has a malformed digest")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, remainder
    else:
        domain, path = HUB_DOMAIN, rest
    if domain in HUB_ALIASES:
        domain = HUB_DOMAIN
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"invalid reference format: {image!r} has a malformed registry")
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    tag = ""
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise ValueError(f"invalid reference format: {image!r} has a malformed tag")
    if not _PATH.fullmatch(path):
        raise ValueError(f"invalid reference format: repository name in {image!r} must be "
                         "lowercase letters, digits and separators")
    if domain == HUB_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return Reference(domain, path, tag or DEFAULT_TAG, digest)


def familiar(image: str) -> str:
    """How Docker's tables show an image: a tagged name in its short form with the
    digest dropped (`busybox:latest@sha256:...` -> `busybox:latest`,
    `registry-1.docker.io/library/redis:7` -> `redis:7`); an image without a tag, or
    one that is not a valid reference, is shown as it is."""
    if not has_tag(image):
        return image
    try:
        return parse_reference(image).familiar()
    except ValueError:
        return image


# ------------------------------------------------------------ registries ----

def hostname_of(server: str) -> str:
    """A server address as a host[:port]: scheme and path dropped ("https://r:5000/v2/"
    -> "r:5000"), as Docker's ConvertToHostname."""
    text = server.strip()
    scheme, sep, rest = text.partition("://")
    if sep and scheme.isalpha():
        text = rest
    return text.split("/", 1)[0]


def registry_host(server: str) -> str:
    """The registry a server address names, as host[:port]; Docker Hub in any of its
    spellings (its config key, `index.docker.io`, "" ...) is `docker.io`."""
    host = hostname_of(server)
    return HUB_DOMAIN if host == "" or host.lower() in HUB_ALIASES else host


def registry_key(server: str) -> str:
    """The key of a registry's credentials in Docker's config.json: Docker Hub's is
    HUB_KEY, any other registry's its host[:port]."""
    host = registry_host(server)
    return HUB_KEY if host == HUB_DOMAIN else host


def same_registry(a: str, b: str) -> bool:
    """Whether two server addresses (any spelling) name the same registry."""
    return registry_host(a).lower() == registry_host(b).lower()


# ------------------------------------------------- X-Registry-Auth value ----

def encode_auth(username: str, password: str, server: str) -> str:
    """Docker's X-Registry-Auth value for a login to `server` (the username TOKEN_USER
    makes the password an identity token); no username and no password: the value of
    an anonymous pull (the server address only)."""
    doc: dict[str, str] = {}
    if username == TOKEN_USER:
        doc["identitytoken"] = password
    elif username or password:
        doc["username"] = username
        doc["password"] = password
    doc["serveraddress"] = server
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def decode_auth(value: str) -> dict:
    """The JSON object an X-Registry-Auth value carries; InvalidAuth (never quoting the
    value) when it is not one."""
    padded = value + "=" * (-len(value) % 4)
    try:
        doc = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidAuth("registry auth is not base64url-encoded JSON "
                          "(Docker's X-Registry-Auth)") from None
    if not isinstance(doc, dict):
        raise InvalidAuth("registry auth is not a JSON object (Docker's X-Registry-Auth)")
    return doc


def has_credentials(doc: dict) -> bool:
    """Whether a decoded X-Registry-Auth object carries credentials (not only a server)."""
    return bool(doc.get("username") or doc.get("password") or doc.get("identitytoken"))


def auth_for_image(doc: dict, image: str) -> bool:
    """Whether a decoded X-Registry-Auth object was made for the registry `image` is
    pulled from: its `serveraddress` names that registry (Docker Hub's spellings are
    one). No server address, or an image that is not a valid reference: False."""
    server = doc.get("serveraddress")
    if not isinstance(server, str) or not server.strip():
        return False
    try:
        domain = parse_reference(image).domain
    except ValueError:
        return False
    return same_registry(server, domain)


def auth_matches(value: str, image: str) -> bool:
    """`auth_for_image` of an encoded value (False when it does not decode)."""
    try:
        return auth_for_image(decode_auth(value), image)
    except InvalidAuth:
        return False
