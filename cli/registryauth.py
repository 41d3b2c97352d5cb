"""`--with-registry-auth`: the `swarm login` credentials sent along with a service spec.

Owns the flag of `service create`, `service update` and `stack deploy`, and what it
puts in a spec: the credentials the Docker config file (cli.dockerconfig) holds for
the registry of the service's image (Docker Hub for a short name), encoded as
Docker's X-Registry-Auth value, in `ContainerSpec.pull_options`. The managers keep
them encrypted, return them in no answer, and hand them to the nodes that run the
service's tasks for the image pull.

Without the flag nothing is sent: a new service pulls anonymously, an updated one
keeps the credentials it has (the managers keep them, as Docker's do). With the
flag and no login stored for that registry, an anonymous value is sent, which
replaces stored credentials (Docker does the same).

Image references are `proto.imageref`'s. `cli.registry` is loaded by name, and only
by `credentials_for` (the same login as `cli.registry.Credentials`, for a digest
look-up of the image): it brings in the socket and TLS modules that `swarm service
ls`, which imports this module through cli.commands_service, must start without
(tests/test_cli_startup.py).
"""
from __future__ import annotations

import argparse
import importlib
from typing import Any

from cli import dockerconfig
from cli.client import CLIError
from cli.flags import bool_flag, is_on
from cli.parsing import UsageError
from proto import imageref
from proto import objects_pb2 as pb

FLAG = "--with-registry-auth"
HELP = "Send registry authentication details to swarm agents"


def add_flag(parser: argparse.ArgumentParser) -> None:
    """Declares --with-registry-auth (a boolean, `--with-registry-auth=false` too)."""
    bool_flag(parser, FLAG, None, HELP)


def wanted(ns: argparse.Namespace) -> bool:
    return is_on(getattr(ns, "with_registry_auth", None), FLAG)


def _login_for(image: str, config: dockerconfig.DockerConfig | None
               ) -> tuple[str, dockerconfig.Login | None]:
    """The config key of `image`'s registry and the login stored for it (or None)."""
    try:
        ref = imageref.parse_reference(image)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    key = imageref.registry_key(ref.domain)
    try:
        return key, (config or dockerconfig.DockerConfig()).get(key)
    except dockerconfig.ConfigError as exc:
        raise CLIError(f"Error: {exc}") from None


def encoded_auth(image: str, config: dockerconfig.DockerConfig | None = None) -> str:
    """The X-Registry-Auth value for pulling `image`, from the Docker config file."""
    key, login = _login_for(image, config)
    return dockerconfig.registry_auth(login, key)


def credentials_for(image: str, config: dockerconfig.DockerConfig | None = None) -> Any:
    """The stored login for `image`'s registry as `cli.registry.Credentials` (None when
    there is none): what a digest look-up of the image uses when the command was given
    --with-registry-auth (Docker's daemon resolves with the credentials it was sent)."""
    _, login = _login_for(image, config)
    if login is None:
        return None
    return importlib.import_module("cli.registry").Credentials(login.username, login.password)


def apply(spec: pb.ServiceSpec, ns: argparse.Namespace,
          config: dockerconfig.DockerConfig | None = None) -> None:
    """Puts the credentials for the spec's image in it when the flag was given."""
    if wanted(ns):
        attach(spec, config)


def attach(spec: pb.ServiceSpec, config: dockerconfig.DockerConfig | None = None) -> None:
    """Puts the credentials for the spec's image in it (replacing any)."""
    spec.task.container.pull_options.registry_auth = encoded_auth(
        spec.task.container.image, config)
