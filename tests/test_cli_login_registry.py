"""`swarm login` against a real registry that wants a login over TLS (lab/privateregistry.py
on loopback: htpasswd, its own CA trusted through /etc/containers/certs.d), as a person
runs it: on a terminal it prompts for the username and, without echo, the password;
a wrong password is refused with the registry's reason and stores nothing; the right
one is stored; then `logout`. The CLI runs as its own process (on a pseudo-terminal
for the prompts)."""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import select
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Iterator

import pytest

from lab.privateregistry import PrivateRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

USER, PASSWORD = "prompted", "pw-" + secrets.token_hex(8)
PORT = 5446
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def registry() -> Iterator[PrivateRegistry]:
    with PrivateRegistry.running("127.0.0.1", USER, PASSWORD, port=PORT) as running:
        yield running


def swarm(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_CONFIG=str(config), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "cli.main", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60, cwd=str(REPO))


def _controlling_tty() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`swarm ARGS` on a pseudo-terminal: read what it shows, type answers."""

    def __init__(self, config: Path, *args: str) -> None:
        self.master, slave = os.openpty()
        env = dict(os.environ, DOCKER_CONFIG=str(config), PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdin=slave,
                                     stdout=slave, stderr=slave, env=env, cwd=str(REPO),
                                     preexec_fn=_controlling_tty, close_fds=True)
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} on the terminal; it shows {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"the command ended before {text!r}; it showed {self.seen!r}"
                self.seen += chunk

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        while select.select([self.master], [], [], 0.1)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        os.close(self.master)
        return code


def test_wrong_password_is_refused_with_the_registrys_reason(registry: PrivateRegistry,
                                                             tmp_path: Path) -> None:
    res = swarm(tmp_path, "login", "-u", USER, "--password-stdin", registry.addr,
                stdin="nope\n")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == ("Error response from registry: unauthorized: authentication "
                          "required\n"), res.stderr
    assert not (tmp_path / "config.json").exists()
    res = swarm(tmp_path, "login", registry.addr)          # no terminal: no prompt
    assert res.returncode == 1 and "non TTY device" in res.stderr


def test_prompted_login_stores_then_logout_removes(registry: PrivateRegistry,
                                                   tmp_path: Path) -> None:
    term = Terminal(tmp_path, "login", registry.addr)
    term.expect("Username: ")
    term.type(USER + "\n")
    term.expect("Password: ")
    term.type(PASSWORD + "\n")
    assert term.finish() == 0, term.seen
    shown = term.seen.decode(errors="replace")
    assert "Login Succeeded" in shown and PASSWORD not in shown      # typed without echo
    auths = json.loads((tmp_path / "config.json").read_text())["auths"]
    assert list(auths) == [registry.addr]
    again = swarm(tmp_path, "login", registry.addr)       # stored ones are tried first
    assert again.returncode == 0
    assert again.stdout == "Authenticating with existing credentials...\nLogin Succeeded\n"
    out = swarm(tmp_path, "logout", registry.addr)
    assert out.stdout == f"Removing login credentials for {registry.addr}\n"
    assert json.loads((tmp_path / "config.json").read_text())["auths"] == {}
