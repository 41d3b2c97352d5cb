"""`swarm login [SERVER]` and `swarm logout [SERVER]`: registry credentials, as Docker's.

Owns both commands. `login` checks the credentials with the registry itself
(cli.registry.check_login: Basic or bearer-token challenge, over TLS unless the
registry is one Docker treats as insecure) before it stores them in the Docker
config file (cli.dockerconfig: the file, or the credential helper it names); a
refused login stores nothing and exits 1 with the registry's reason. Without
a SERVER the registry is Docker Hub. The password comes from `-p` (with Docker's
warning), `--password-stdin`, or a prompt without echo when stdin is a
terminal; with none of them and no terminal, the command says so instead of
waiting. Without -u/-p, the credentials already stored for the registry are
tried first ("Authenticating with existing credentials..."), as Docker does.
Output follows Docker 20.10: the plaintext-storage WARNING (stderr) when no
helper keeps the password, then "Login Succeeded"; `logout` prints "Removing
login credentials for SERVER" or "Not logged in to SERVER". No password is
ever printed.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from typing import Optional

from cli import dockerconfig, registry
from cli.client import CLIError
from cli.context import Context
from cli.dockerconfig import DockerConfig, Login
from cli.parsing import UsageError
from proto import imageref

PASSWORD_FLAG_WARNING = "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
UNENCRYPTED_WARNING = (
    "WARNING! Your password will be stored unencrypted in {path}.\n"
    "Configure a credential helper to remove this warning. See\n"
    "https://docs.docker.com/engine/reference/commandline/login/#credentials-store\n")
NO_TTY = "Error: Cannot perform an interactive login from a non TTY device"


def _config() -> DockerConfig:
    try:
        return DockerConfig()
    except dockerconfig.ConfigError as exc:
        raise CLIError(f"Error: {exc}") from None


def registry_domain(server: Optional[str]) -> str:
    """The registry a SERVER argument names, as host[:port] ("docker.io" for Docker Hub)."""
    return imageref.registry_host(server or "")


def config_key(server: Optional[str]) -> str:
    """The config file's key of the registry a SERVER argument names."""
    return imageref.registry_key(server or "")


def read_password_stdin(stdin) -> str:
    """--password-stdin: all of stdin, one trailing newline (\\n, \\r\\n) removed."""
    text = stdin.read()
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return text


def _check(domain: str, login: Login) -> Optional[str]:
    """None when the registry accepts `login`, else its reason."""
    try:
        registry.check_login(domain, registry.Credentials(login.username, login.password))
    except registry.RegistryError as exc:
        return str(exc) or "the registry refused the credentials"
    return None


def _prompt(ctx: Context, stored: Optional[Login], username: str, password: str) -> Login:
    """Asks for what is missing on the terminal (Docker's ConfigureAuth)."""
    if not sys.stdin.isatty():
        raise CLIError(NO_TTY)
    if not username:
        default = stored.username if stored and stored.username != imageref.TOKEN_USER \
            else ""
        shown = f"Username ({default}): " if default else "Username: "
        ctx.out.write(shown)
        ctx.out.flush()
        username = sys.stdin.readline().strip() or default
        if not username:
            raise CLIError("Error: Non-null Username Required")
    if not password:
        password = getpass.getpass("Password: ")
        if not password:
            raise CLIError("Error: Password Required")
    return Login(username, password)


def login(ctx: Context, ns: argparse.Namespace) -> int:
    if ns.password and ns.password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    password = ns.password or ""
    if ns.password_stdin:
        if not ns.username:
            raise UsageError("Must provide --username with --password-stdin")
        password = read_password_stdin(sys.stdin)
    if ns.password:
        ctx.warn(PASSWORD_FLAG_WARNING)
    key = config_key(ns.server)
    domain = registry_domain(ns.server)
    config = _config()
    try:
        stored = config.get(key)
    except dockerconfig.ConfigError:
        stored = None
    username = ns.username or ""
    if not username and not password and stored is not None and stored.password:
        ctx.print("Authenticating with existing credentials...")
        reason = _check(domain, stored)
        if reason is None:
            ctx.print("Login Succeeded")
            return 0
        ctx.warn(f"Login did not succeed, error: {reason}")
    if not username or not password:
        creds = _prompt(ctx, stored, username, password)
    else:
        creds = Login(username, password)
    reason = _check(domain, creds)
    if reason is not None:
        raise CLIError(f"Error response from registry: {reason}")
    try:
        helper = config.store(key, creds)
    except dockerconfig.ConfigError as exc:
        raise CLIError(f"Error saving credentials: {exc}") from None
    if not helper and creds.username != imageref.TOKEN_USER:
        ctx.err.write(UNENCRYPTED_WARNING.format(path=config.path))
        ctx.err.flush()
    ctx.print("Login Succeeded")
    return 0


def logout(ctx: Context, ns: argparse.Namespace) -> int:
    if ns.server:
        key = config_key(ns.server)
        shown = imageref.hostname_of(ns.server)
    else:
        key = shown = imageref.HUB_KEY
    config = _config()
    if not config.logged_in(key):
        ctx.print(f"Not logged in to {shown}")
        return 0
    ctx.print(f"Removing login credentials for {shown}")
    try:
        warnings = config.erase(key)
    except dockerconfig.ConfigError as exc:
        raise CLIError(f"Error: {exc}") from None
    for warning in warnings:
        ctx.warn(warning)
    return 0


def declare_login(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm login [OPTIONS] [SERVER]` on `parser`."""
    parser.usage = "swarm login [OPTIONS] [SERVER]"
    parser.description = ("Log in to a container registry (the credentials are kept where "
                          "the Docker CLI keeps them). If no server is specified, the "
                          "default is Docker Hub.")
    parser.add_argument("-u", "--username", default=None, help="Username")
    parser.add_argument("-p", "--password", default=None, help="Password")
    parser.add_argument("--password-stdin", action="store_true",
                        help="Take the password from stdin")
    parser.add_argument("server", nargs="?", default=None, metavar="SERVER")
    parser.set_defaults(handler=login)


def declare_logout(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm logout [SERVER]` on `parser`."""
    parser.usage = "swarm logout [SERVER]"
    parser.description = ("Log out from a container registry. If no server is specified, "
                          "the default is Docker Hub.")
    parser.add_argument("server", nargs="?", default=None, metavar="SERVER")
    parser.set_defaults(handler=logout)
