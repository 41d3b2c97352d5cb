"""The Docker CLI's configuration file, where `swarm login` keeps registry credentials.

Owns reading and writing `$DOCKER_CONFIG/config.json` (default
`~/.docker/config.json`) the way the Docker CLI does, so that `swarm login`
and `docker login` share one set of credentials:

- `auths`: one entry per registry, keyed by `proto.imageref.registry_key` (Docker
  Hub is `https://index.docker.io/v1/`, any other registry its host[:port]); a stored
  password is `auth`, base64 of `user:password`; an identity token is
  `identitytoken`. Every other key of the file, and of each entry, is kept as
  it was. The file is written whole to a temporary file in the same directory
  (mode 0600) and renamed over the old one, so a reader never sees half of it.
- `credsStore` / `credHelpers`: credentials kept by an external helper,
  `docker-credential-<name>` on the PATH, driven with Docker's protocol: the
  verb (`store`, `get`, `erase`) as argument, JSON (or the server address) on
  stdin, JSON on stdout. `credHelpers` names a helper per registry and wins
  over `credsStore`. A helper's registry still gets an empty entry in `auths`
  (Docker does the same, and `logout` finds the registry through it).

A password is never printed or logged here: errors name the file or helper.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, NamedTuple, Optional

from proto.imageref import TOKEN_USER, encode_auth as encode_registry_auth, hostname_of, \
    registry_key

HELPER_PREFIX = "docker-credential-"
HELPER_TIMEOUT = 30.0             # seconds a credential helper may take


class ConfigError(Exception):
    """The config file or a credential helper failed; the message says which and why."""


class Login(NamedTuple):
    """Credentials for one registry (`password` holds the token when `username` is
    TOKEN_USER)."""
    username: str
    password: str


def config_dir() -> Path:
    """$DOCKER_CONFIG, else ~/.docker (as the Docker CLI)."""
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


def config_path() -> Path:
    return config_dir() / "config.json"


def encode_auth(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def decode_auth(value: str) -> tuple[str, str]:
    """`auth` back to (username, password); ConfigError when it is not base64 user:pass."""
    try:
        text = base64.b64decode(value, validate=False).decode()
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("an `auth` entry in the config file is not base64") from None
    user, sep, password = text.partition(":")
    if not sep:
        raise ConfigError("an `auth` entry in the config file is not base64 of user:password")
    return user, password


class DockerConfig:
    """One config file: its parsed content, and credentials read or written through it
    (or through the helpers it names)."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = Path(path) if path is not None else config_path()
        self.data: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{self.path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path} is not a JSON object")
        return data

    def save(self) -> None:
        """Writes the file atomically (mode 0600; the directory made 0700 if missing)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps(self.data, indent="\t") + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise ConfigError(f"cannot write {self.path}: {exc.strerror}") from None

    # ---- which store

    @property
    def auths(self) -> dict[str, Any]:
        auths = self.data.get("auths")
        if not isinstance(auths, dict):
            auths = {}
            self.data["auths"] = auths
        return auths

    def helper_for(self, key: str) -> str:
        """The credential helper that keeps `key`'s credentials ("" = the file itself)."""
        helpers = self.data.get("credHelpers")
        if isinstance(helpers, dict):
            named = helpers.get(key) or helpers.get(hostname_of(key))
            if isinstance(named, str) and named:
                return named
        store = self.data.get("credsStore")
        return store if isinstance(store, str) else ""

    def _entry_key(self, key: str) -> Optional[str]:
        """The `auths` key holding `key`: itself, else an older spelling of the same
        registry ("https://r:5000", "http://r:5000/v1/")."""
        if key in self.auths:
            return key
        for existing in self.auths:
            if registry_key(existing) == key:
                return existing
        return None

    # ---- credentials

    def get(self, key: str) -> Optional[Login]:
        """The stored credentials for the registry `key`, or None."""
        helper = self.helper_for(key)
        if helper:
            return helper_get(helper, key)
        found = self._entry_key(key)
        entry = self.auths.get(found) if found is not None else None
        if not isinstance(entry, dict):
            return None
        token = entry.get("identitytoken")
        if isinstance(token, str) and token:
            return Login(TOKEN_USER, token)
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            return Login(*decode_auth(auth))
        user, password = entry.get("username"), entry.get("password")
        if isinstance(user, str) and isinstance(password, str) and user:
            return Login(user, password)
        return None

    def store(self, key: str, login: Login) -> str:
        """Stores credentials for `key` and saves the file; returns the helper's name
        ("" when the password went into the file in plain base64)."""
        helper = self.helper_for(key)
        old = self._entry_key(key)
        entry = self.auths.pop(old) if old is not None else {}
        if not isinstance(entry, dict):
            entry = {}
        for field in ("auth", "identitytoken", "username", "password"):
            entry.pop(field, None)
        if helper:
            helper_store(helper, key, login)
        elif login.username == TOKEN_USER:
            entry["identitytoken"] = login.password
        else:
            entry["auth"] = encode_auth(login.username, login.password)
        self.auths[key] = entry
        self.save()
        return helper

    def logged_in(self, key: str) -> list[str]:
        """The `auths` keys that are logins to the registry `key` (Docker's logout finds
        a login through the file, also when a helper holds the password)."""
        return [k for k in self.auths if k == key or registry_key(k) == key]

    def erase(self, key: str) -> list[str]:
        """Removes every login to `key` (file entries, and the helper's copy); saves the
        file; returns warnings (a helper that failed to erase) for the caller to show."""
        warnings = []
        for existing in self.logged_in(key):
            helper = self.helper_for(existing)
            if helper:
                try:
                    helper_erase(helper, existing)
                except ConfigError as exc:
                    warnings.append(f"WARNING: could not erase credentials: {exc}")
            del self.auths[existing]
        self.save()
        return warnings


# ---------------------------------------------------------------- helpers ----

def _run_helper(helper: str, verb: str, payload: str) -> subprocess.CompletedProcess:
    program = HELPER_PREFIX + helper
    try:
        return subprocess.run([program, verb], input=payload, capture_output=True, text=True,
                              timeout=HELPER_TIMEOUT)
    except FileNotFoundError:
        raise ConfigError(f"credential helper {program} is not on the PATH (named by "
                          f"{config_path()})") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"credential helper {program} {verb}: no answer within "
                          f"{HELPER_TIMEOUT:g}s") from None
    except OSError as exc:
        raise ConfigError(f"credential helper {program}: {exc.strerror}") from None


def _helper_failure(helper: str, verb: str, done: subprocess.CompletedProcess) -> ConfigError:
    said = (done.stdout or done.stderr or "").strip().splitlines()
    reason = said[0] if said else f"exit status {done.returncode}"
    return ConfigError(f"credential helper {HELPER_PREFIX}{helper} {verb}: {reason}")


def helper_get(helper: str, key: str) -> Optional[Login]:
    """Credentials for `key` from the helper; None when it has none."""
    done = _run_helper(helper, "get", key)
    if done.returncode != 0:
        if "credentials not found" in (done.stdout + done.stderr).lower():
            return None
        raise _helper_failure(helper, "get", done)
    try:
        answer = json.loads(done.stdout)
        user, secret = str(answer.get("Username", "")), str(answer.get("Secret", ""))
    except (ValueError, AttributeError):
        raise ConfigError(f"credential helper {HELPER_PREFIX}{helper} get: "
                          "its answer is not a JSON object") from None
    if not user and not secret:
        return None
    return Login(user, secret)


def helper_store(helper: str, key: str, login: Login) -> None:
    payload = json.dumps({"ServerURL": key, "Username": login.username,
                          "Secret": login.password})
    done = _run_helper(helper, "store", payload)
    if done.returncode != 0:
        raise _helper_failure(helper, "store", done)


def helper_erase(helper: str, key: str) -> None:
    done = _run_helper(helper, "erase", key)
    if done.returncode != 0 and "credentials not found" not in (done.stdout + done.stderr).lower():
        raise _helper_failure(helper, "erase", done)


# ------------------------------------------------- X-Registry-Auth encoding ----

def registry_auth(login: Optional[Login], server: str) -> str:
    """The credentials as Docker's X-Registry-Auth value (what `--with-registry-auth` sends
    and the node hands to its engine's pull; `proto.imageref.encode_auth`). No login:
    the value of an anonymous pull (the server address only)."""
    if login is None:
        return encode_registry_auth("", "", server)
    return encode_registry_auth(login.username, login.password, server)
