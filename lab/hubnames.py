"""Where a Docker Hub image name lives in the lab registry (pure, no I/O).

Owns the name mapping behind the lab's stand-in images: lab nodes resolve
unqualified names (`redis:alpine`) and `docker.io/...` names through the lab
registry as if it were Docker Hub (lab/podstore.py writes that registry view),
so a name's Docker Hub repository is its repository in the lab registry:
`redis:alpine` and `docker.io/library/redis:alpine` are `library/redis:alpine`
there, `dockersamples/examplevotingapp_vote:before` is
`dockersamples/examplevotingapp_vote:before`. Names already in the lab
registry (`127.0.0.1:5000/...`) keep their repository. Also owns the parsing of
the `--stand-in NAME[=PORT[,PORT...]]` argument of `python -m lab.images`.

The rules are Docker's reference rules (Docker Hub's names are proto.imageref's), in
short: the first path component is a registry only when it has a dot or a colon or
is `localhost`; Docker Hub's official images live under `library/`; the tag
defaults to `latest`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from proto.imageref import DEFAULT_TAG, HUB_ALIASES, HUB_DOMAIN, OFFICIAL_NAMESPACE

LAB_REGISTRY = "127.0.0.1:5000"        # the lab registry as the host reaches it
DEFAULT_PORT = 80
RESERVED_NAMESPACE = "shoal"        # the demo images: 127.0.0.1:5000/shoal/...

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class ImageNameError(ValueError):
    """An image name (or a --stand-in argument) that cannot get a stand-in; says why."""


@dataclass(frozen=True)
class HubName:
    """An image name as the lab registry stores it.

    `name` is what the user wrote; `repository` and `tag` are where the lab
    registry keeps it (`library/redis`, `alpine`); `hub` says whether it is a
    Docker Hub name (else a name in the lab registry itself).
    """
    name: str
    repository: str
    tag: str
    hub: bool

    @property
    def reference(self) -> str:
        """The name in the lab registry, as the host pushes it."""
        return f"{LAB_REGISTRY}/{self.repository}:{self.tag}"

    @property
    def canonical(self) -> str:
        """The fully qualified name podman gives the image on a lab node."""
        domain = HUB_DOMAIN if self.hub else LAB_REGISTRY
        return f"{domain}/{self.repository}:{self.tag}"


def _has_domain(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost"


def parse_name(name: str) -> HubName:
    """Where `name` lives in the lab registry; ImageNameError for a name that cannot.

    Refused: digests (a stand-in is not the image a digest names), registries
    other than Docker Hub and the lab registry (lab nodes pull those from the
    registry itself, which this machine cannot reach), malformed names.
    """
    text = name.strip()
    if not text:
        raise ImageNameError("an empty image name")
    if "@" in text:
        raise ImageNameError(f"{name}: a name with a digest cannot get a stand-in (the stand-in "
                         "is a different image); name it by tag")
    path, tag = text, DEFAULT_TAG
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        path, tag = text[:colon], text[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise ImageNameError(f"{name}: invalid tag {tag!r} (letters, digits, '_', '.', '-'; "
                             "at most 128, not starting with '.' or '-')")
    parts = path.split("/")
    hub = True
    if len(parts) > 1 and _has_domain(parts[0]):
        domain, parts = parts[0], parts[1:]
        if domain == LAB_REGISTRY:
            hub = False
        elif domain not in HUB_ALIASES:
            raise ImageNameError(f"{name}: stand-ins are for Docker Hub names (unqualified or "
                             f"docker.io/...) and the lab registry's {LAB_REGISTRY}/...; lab "
                             f"nodes pull {domain} names from {domain} itself")
    for part in parts:
        if not _COMPONENT.fullmatch(part):
            raise ImageNameError(f"{name}: invalid repository component {part!r} (lowercase "
                             "letters and digits, separated by '.', '_', '__' or '-')")
    if hub and len(parts) == 1:
        parts = [OFFICIAL_NAMESPACE, *parts]
    repository = "/".join(parts)
    if parts[0] == RESERVED_NAMESPACE:
        raise ImageNameError(f"{name}: the lab registry's {RESERVED_NAMESPACE}/... "
                             "repositories hold the lab's own images (lab/images.py); "
                             "a stand-in cannot replace them")
    if len(repository) > 255:
        raise ImageNameError(f"{name}: the repository name is longer than 255 characters")
    return HubName(name=text, repository=repository, tag=tag, hub=hub)


@dataclass(frozen=True)
class StandInRequest:
    """One `--stand-in NAME[=PORT[,PORT...]]`: the image name and the ports it serves."""
    image: HubName
    ports: tuple[int, ...]


def check_ports(ports: Iterable[int], name: str = "") -> tuple[int, ...]:
    """The ports sorted and distinct; ImageNameError for none or one out of 1..65535."""
    where = f"{name}: " if name else ""
    found = set()
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ImageNameError(f"{where}invalid port {port!r} (a number from 1 to 65535)")
        found.add(port)
    if not found:
        raise ImageNameError(f"{where}a stand-in needs at least one port")
    return tuple(sorted(found))


def stand_in_request(name: str, ports: int | Iterable[int] = DEFAULT_PORT) -> StandInRequest:
    """The stand-in for image `name` serving HTTP on `ports`; ImageNameError when invalid."""
    image = parse_name(name)
    return StandInRequest(image=image,
                          ports=check_ports([ports] if isinstance(ports, int) else ports, name))


def parse_stand_in(argument: str) -> StandInRequest:
    """`NAME[=PORT[,PORT...]]` (port 80 when none is given); ImageNameError when invalid."""
    name, sep, text = argument.partition("=")
    if not sep:
        return stand_in_request(name)
    ports = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit():
            raise ImageNameError(f"{argument}: invalid port {item!r} (NAME=PORT[,PORT...], "
                                 f"or NAME alone for port {DEFAULT_PORT})")
        ports.append(int(item))
    return stand_in_request(name, ports)
