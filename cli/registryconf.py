"""Where this host's podman would fetch a repository from: containers-registries.conf.

Owns the part of podman's registry configuration that decides *where* an image is
read, so that `swarm` resolves a tag to a digest at the same registry the node's
podman will pull from (a host whose podman reads Docker Hub names from a mirror
must pin the digest the mirror serves). Pure: `endpoints(text, name)` reads the
file's text; `conf_path(environ)` only names the file podman would read.

What is honoured, as containers-registries.conf(5) describes it:
* `[[registry]]` entries, the one whose `prefix` (default: its `location`) is the
  longest match of the fully qualified repository name (`docker.io/library/redis`)
  at a path boundary; a `*.example.com` prefix matches any subdomain;
* `location`: the matched prefix is replaced by it;
* `[[registry.mirror]]` entries: tried first, in order, then the location;
* `insecure = true` (on the entry or a mirror): plain HTTP and unverified TLS allowed;
* `blocked = true`: the repository may not be read at all.
Drop-in files (`registries.conf.d`) are not read.

The file is `$CONTAINERS_REGISTRIES_CONF` when set, else
`$HOME/.config/containers/registries.conf` when it exists (podman lets it replace
the system file), else `/etc/containers/registries.conf`.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional

SYSTEM_CONF = Path("/etc/containers/registries.conf")


class RegistryConfError(ValueError):
    """registries.conf cannot be read, or forbids the repository; says why."""


class Endpoint(NamedTuple):
    """One place to read a repository: `host[:port]`, the repository path there, and
    whether the configuration allows it without verified TLS."""

    host: str
    path: str
    insecure: bool


def conf_path(environ: Mapping[str, str]) -> Optional[Path]:
    """The registries.conf podman would read with this environment (None: none)."""
    named = environ.get("CONTAINERS_REGISTRIES_CONF", "")
    if named:
        return Path(named)
    home = environ.get("HOME", "")
    if home:
        user = Path(home) / ".config" / "containers" / "registries.conf"
        if user.is_file():
            return user
    return SYSTEM_CONF if SYSTEM_CONF.is_file() else None


def _matches(prefix: str, name: str) -> int:
    """How long a match `prefix` is for `name` (-1: none)."""
    if prefix.startswith("*."):
        host, _, _rest = name.partition("/")
        return len(prefix) if host.endswith(prefix[1:]) and host != prefix[2:] else -1
    if name == prefix or name.startswith(prefix.rstrip("/") + "/"):
        return len(prefix)
    return -1


def _split(location: str) -> tuple[str, str]:
    host, _, path = location.partition("/")
    return host, path


def _entries(text: str) -> list[dict[str, Any]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RegistryConfError(f"registries.conf is not valid TOML: {err}") from err
    entries = data.get("registry", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RegistryConfError("registries.conf: [[registry]] must be a list of tables")
    return entries


def endpoints(text: str, name: str) -> list[Endpoint]:
    """Where to read the repository `name` (`domain/path`, fully qualified), in the
    order podman tries them; [] when no entry concerns it (read it where it names)."""
    best: Optional[dict[str, Any]] = None
    best_len = -1
    for entry in _entries(text):
        prefix = str(entry.get("prefix") or entry.get("location") or "")
        if not prefix:
            continue
        length = _matches(prefix, name)
        if length > best_len:
            best, best_len = entry, length
    if best is None:
        return []
    prefix = str(best.get("prefix") or best.get("location"))
    if best.get("blocked"):
        raise RegistryConfError(f"registry for {name} is blocked in registries.conf "
                                f"(prefix {prefix!r})")
    rest = "" if prefix.startswith("*.") else name[len(prefix.rstrip("/")):]
    insecure = bool(best.get("insecure", False))
    out: list[Endpoint] = []
    for mirror in best.get("mirror", []) or []:
        if isinstance(mirror, dict) and mirror.get("location"):
            host, path = _split(str(mirror["location"]).rstrip("/") + rest)
            out.append(Endpoint(host, path, bool(mirror.get("insecure", False))))
    location = str(best.get("location") or "")
    if location and not prefix.startswith("*."):
        host, path = _split(location.rstrip("/") + rest)
    else:
        host, path = _split(name)
    out.append(Endpoint(host, path, insecure))
    return out


def endpoints_for(name: str, environ: Mapping[str, str] = os.environ) -> list[Endpoint]:
    """`endpoints` of the registries.conf podman would read here ([] without one)."""
    path = conf_path(environ)
    if path is None:
        return []
    try:
        text = path.read_text()
    except OSError as err:
        raise RegistryConfError(f"cannot read {path}: {err.strerror or err}") from err
    return endpoints(text, name)
