"""Pinning a service's image to the digest its tag names in the registry.

Owns what Docker's CLI and daemon do together when a service is created or its
image changes: the tag is resolved to the digest the registry holds for it now
and the spec keeps `name:tag@sha256:...`, so every node runs the same bits even
if the tag moves later. In particular:

- `pin`: one image to its pinned reference, or unchanged with Docker's warning
  when the registry cannot be reached or refuses (each node then pulls the tag
  on its own); an image given with a digest is kept as given;
- `pin_all`: several distinct images at once (threads: a stack's images are
  resolved side by side, so one slow registry costs one timeout, not one per
  service);
- `stack_choice`: `stack deploy --resolve-image always|changed|never` as a pure
  decision per service, from the image the file names and the deployed service;
- `display_image`: how tables (`service ls`, `service ps`, `stack services`,
  `stack ps`) show an image: Docker's short form of `name:tag`, the digest
  dropped; an image without a tag is shown whole.

Image references themselves (parsing, short forms, Docker Hub's names) are
`proto.imageref`'s; `check_image` refuses an invalid one as Docker does.

Registry credentials are not read here: `pin` takes them as an argument (the
`--with-registry-auth` path passes what `swarm login` stored). The registry
client (`cli.registry`) is loaded by name only when a resolution runs, so
commands that only list do not pay for it.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple, Optional

from cli.parsing import UsageError
from proto import imageref

if TYPE_CHECKING:
    from cli.registry import Credentials

REGISTRY_CLIENT = "cli.registry"
RESOLVE_MODES = ("always", "changed", "never")
# seconds for one resolution (connect and each read): a registry that does not answer
# must not hold a deploy for long, and a HEAD of a manifest is small
RESOLVE_TIMEOUT = 5.0
DNS_TIMEOUT = 2.0      # seconds for the registry's name to resolve (see check_dns)
MAX_PARALLEL = 8

# Resolves an image (as written) to its digest "sha256:..." with these credentials.
Resolver = Callable[[str, "Optional[Credentials]"], str]


class Pinned(NamedTuple):
    """The image a spec gets, and the warning to print ("" when none)."""
    image: str
    warning: str = ""


def digest_warning(image: str, reason: str = "") -> str:
    """Docker's warning for an image whose digest could not be recorded (its words and
    line breaks), with the registry's reason on a last line when there is one."""
    text = (f"image {image} could not be accessed on a registry to record\n"
            f"its digest. Each node will access {image} independently,\n"
            "possibly leading to different nodes running different\n"
            "versions of the image.")
    return f"{text}\n({reason})" if reason else text


def has_digest(image: str) -> bool:
    """Whether the image is already given by digest (`name@sha256:...`)."""
    return "@" in image


def _registry() -> ModuleType:
    """`cli.registry`, loaded by name on the first resolution: it brings http.client,
    ssl and socket, which the commands that only list must not pay for at start-up
    (tests/test_cli_startup.py)."""
    return importlib.import_module(REGISTRY_CLIENT)


def _default_resolver(image: str, creds: "Optional[Credentials]") -> str:
    return _registry().resolve_digest(image, creds, timeout=RESOLVE_TIMEOUT,
                                      dns_timeout=DNS_TIMEOUT)


def check_image(image: str) -> None:
    """Refuses an image that is not a valid reference (Docker's "invalid reference
    format: ..."), before anything is resolved or sent: UsageError, exit status 1."""
    try:
        imageref.parse_reference(image)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _failure_types() -> tuple[type[BaseException], ...]:
    """What a failed resolution raises: the registry's refusal, the network's errors
    (URLError, TLS and timeouts are OSErrors), a bad name (ValueError), a broken reply."""
    import http.client
    return (_registry().RegistryError, OSError, ValueError, http.client.HTTPException)


def pin(image: str, creds: "Optional[Credentials]" = None,
        resolve: Optional[Resolver] = None) -> Pinned:
    """`image` pinned to the digest its tag names now (`name:tag@sha256:...`; Docker
    Hub names in their short form, as Docker stores them). An image already given
    by digest is kept. When the registry cannot say, the image is kept as written
    with Docker's warning: each node will then pull the tag itself. An image that is
    not a valid reference is refused (`check_image`), never sent with a warning."""
    if not image or has_digest(image):
        return Pinned(image)
    check_image(image)
    resolver = resolve or _default_resolver
    try:
        digest = resolver(image, creds)
        return Pinned(imageref.parse_reference(image).pinned(digest))
    except _failure_types() as exc:
        reason = str(exc).strip() or type(exc).__name__
        return Pinned(image, digest_warning(image, reason))


def pin_all(images: Iterable[str], creds_for: Callable[[str], "Optional[Credentials]"],
            resolve: Optional[Resolver] = None) -> dict[str, Pinned]:
    """Each distinct image in `images` pinned (`pin`), resolved side by side; the
    credentials of each come from `creds_for(image)`."""
    wanted = sorted(set(images))
    if not wanted:
        return {}
    if len(wanted) == 1:
        return {wanted[0]: pin(wanted[0], creds_for(wanted[0]), resolve)}
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(wanted))) as pool:
        done = list(pool.map(lambda i: pin(i, creds_for(i), resolve), wanted))
    return dict(zip(wanted, done))


def check_mode(value: str) -> str:
    """A `--resolve-image` value, or ValueError with the choices."""
    mode = value.strip().lower()
    if mode not in RESOLVE_MODES:
        raise ValueError(f'invalid value "{value}" for --resolve-image: expected "always", '
                         '"changed" or "never"')
    return mode


class StackChoice(NamedTuple):
    """What a stack deploy writes in one service's spec: `image`, and whether to pin it
    first (`resolve`); `fallback` is the deployed pinned image to keep when the
    resolution fails and the file names the same image as before ("" otherwise)."""
    image: str
    resolve: bool
    fallback: str = ""


def stack_choice(mode: str, wanted: str, deployed_label: Optional[str],
                 deployed_image: str = "") -> StackChoice:
    """The decision of `stack deploy --resolve-image MODE` for one service, pure.

    `wanted` is the image as the Compose file names it; `deployed_label` the image
    the file named at the last deploy (the service's com.docker.stack.image label),
    None for a new service; `deployed_image` the image in the deployed spec (pinned
    or not). As Docker's stack deploy:

    - always: every service's image is resolved;
    - changed: a new service, or one whose file names another image than last time,
      is resolved; the others keep their deployed (pinned) image untouched;
    - never: nothing is resolved; a service whose file names the same image as last
      time keeps its deployed image, so a redeploy does not unpin it.

    Unlike Docker's daemon, a failed resolution of an image the file names as before
    keeps the deployed pin (`fallback`) instead of rolling every task to the bare tag.
    """
    if deployed_label is None:
        return StackChoice(wanted, mode != "never")
    same = wanted == deployed_label
    if mode == "always":
        return StackChoice(wanted, True, deployed_image if same else "")
    if same:
        return StackChoice(deployed_image or wanted, False)
    return StackChoice(wanted, mode == "changed")


def display_image(image: str) -> str:
    """How Docker's tables show a service's or task's image (`proto.imageref.familiar`):
    a tagged name in its short form with the digest dropped (`busybox:latest@sha256:...`
    -> `busybox:latest`, `registry-1.docker.io/library/redis:7` -> `redis:7`); an image
    without a tag, or one that is not a valid reference, is shown as it is."""
    return imageref.familiar(image)
