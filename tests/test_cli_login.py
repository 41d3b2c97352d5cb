"""`swarm login` / `swarm logout` (cli/commands_login.py): Docker 20.10's messages, what
is stored where, and refusals. The registry's answer is stood in by replacing
`cli.registry.check_login` (the real conversation is tested in test_cli_registry.py
and end to end in test_e2e_registry_auth.py)."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional

import pytest

from cli import registry
from cli.dockerconfig import DockerConfig, Login
from cli.main import main
from proto.imageref import HUB_KEY as DOCKER_HUB_KEY

SERVER = "10.99.7.1:5443"


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "docker"
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path


@pytest.fixture
def registry_accepts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, registry.Credentials]]:
    """The registry accepts alice/right only; returns the checks it was asked."""
    asked: list[tuple[str, registry.Credentials]] = []

    def check(server: str, creds: registry.Credentials, timeout: float = 10.0) -> None:
        asked.append((server, creds))
        if creds != registry.Credentials("alice", "right"):
            raise registry.RegistryError("unauthorized: authentication required")
    monkeypatch.setattr(registry, "check_login", check)
    return asked


def swarm(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str,
          stdin: Optional[str] = None) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin or ""))
    code = main(["-H", "unix:///nowhere/swarm.sock", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_login_with_password_stdin_stores_and_warns_plaintext(
        capsys, monkeypatch, config_dir: Path, registry_accepts) -> None:
    code, out, err = swarm(capsys, monkeypatch, "login", "-u", "alice", "--password-stdin",
                           SERVER, stdin="right\n")
    assert code == 0 and out == "Login Succeeded\n"
    assert err.startswith(f"WARNING! Your password will be stored unencrypted in "
                          f"{config_dir / 'config.json'}.\nConfigure a credential helper")
    assert registry_accepts == [(SERVER, registry.Credentials("alice", "right"))]
    assert DockerConfig().get(SERVER) == Login("alice", "right")
    assert "right" not in out + err


def test_login_with_p_warns_it_is_insecure(capsys, monkeypatch, config_dir, registry_accepts
                                           ) -> None:
    code, out, err = swarm(capsys, monkeypatch, "login", "-u", "alice", "-p", "right",
                           f"https://{SERVER}/")
    assert code == 0 and out == "Login Succeeded\n"
    assert err.splitlines()[0] == ("WARNING! Using --password via the CLI is insecure. "
                                   "Use --password-stdin.")
    assert list(json.loads((config_dir / "config.json").read_text())["auths"]) == [SERVER]


def test_a_refused_login_stores_nothing_and_says_why(capsys, monkeypatch, config_dir,
                                                     registry_accepts) -> None:
    code, out, err = swarm(capsys, monkeypatch, "login", "-u", "alice", "--password-stdin",
                           SERVER, stdin="wrong")
    assert code == 1 and out == ""
    assert err == "Error response from registry: unauthorized: authentication required\n"
    assert not (config_dir / "config.json").exists()


def test_login_without_server_is_docker_hub(capsys, monkeypatch, config_dir, registry_accepts
                                            ) -> None:
    code, _, _ = swarm(capsys, monkeypatch, "login", "-u", "alice", "-p", "right")
    assert code == 0 and registry_accepts[0][0] == "docker.io"
    assert DockerConfig().get(DOCKER_HUB_KEY) == Login("alice", "right")


def test_login_tries_stored_credentials_first(capsys, monkeypatch, config_dir,
                                              registry_accepts) -> None:
    DockerConfig().store(SERVER, Login("alice", "right"))
    code, out, err = swarm(capsys, monkeypatch, "login", SERVER)
    assert code == 0 and out == "Authenticating with existing credentials...\nLogin Succeeded\n"
    assert err == ""


@pytest.mark.parametrize("argv,stdin,message", [
    (["login", "--password-stdin", SERVER], "x", "Error: Must provide --username with "
                                                 "--password-stdin\n"),
    (["login", "-u", "a", "-p", "x", "--password-stdin", SERVER], "x",
     "Error: --password and --password-stdin are mutually exclusive\n"),
    (["login", "-u", "alice", SERVER], "", "Error: Cannot perform an interactive login from "
                                           "a non TTY device\n"),
    (["login", SERVER], "", "Error: Cannot perform an interactive login from a non TTY "
                            "device\n"),
])
def test_login_refusals(capsys, monkeypatch, config_dir, registry_accepts, argv: list[str],
                        stdin: str, message: str) -> None:
    code, out, err = swarm(capsys, monkeypatch, *argv, stdin=stdin)
    assert code == 1 and err == message and registry_accepts == []
    assert not (config_dir / "config.json").exists()


def test_login_through_a_credential_helper_prints_no_plaintext_warning(
        capsys, monkeypatch, config_dir: Path, tmp_path: Path, registry_accepts) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-memo"
    helper.write_text("#!/bin/sh\ncat > \"$0.$1\"\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"credsStore": "memo"}))
    code, out, err = swarm(capsys, monkeypatch, "login", "-u", "alice", "--password-stdin",
                           SERVER, stdin="right")
    assert code == 0 and out == "Login Succeeded\n" and err == ""
    assert json.loads((bindir / "docker-credential-memo.store").read_text())["Secret"] == "right"
    assert "right" not in (config_dir / "config.json").read_text()


def test_logout_removes_then_says_not_logged_in(capsys, monkeypatch, config_dir) -> None:
    DockerConfig().store(SERVER, Login("alice", "right"))
    DockerConfig().store("other:1", Login("bob", "pw"))
    code, out, err = swarm(capsys, monkeypatch, "logout", SERVER)
    assert (code, out, err) == (0, f"Removing login credentials for {SERVER}\n", "")
    assert DockerConfig().get(SERVER) is None and DockerConfig().get("other:1") is not None
    code, out, _ = swarm(capsys, monkeypatch, "logout", SERVER)
    assert (code, out) == (0, f"Not logged in to {SERVER}\n")
    code, out, _ = swarm(capsys, monkeypatch, "logout")
    assert (code, out) == (0, f"Not logged in to {DOCKER_HUB_KEY}\n")
