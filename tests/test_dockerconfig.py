"""The Docker config file as `swarm login` reads and writes it (cli/dockerconfig.py):
`auths` entries in Docker's format, other content kept, mode 0600, atomic writes,
credential helpers driven with Docker's protocol (a real helper script on the PATH),
and the X-Registry-Auth encoding `--with-registry-auth` sends."""
from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from cli import dockerconfig
from cli.dockerconfig import ConfigError, DockerConfig, Login
from proto import imageref
from proto.imageref import HUB_KEY as DOCKER_HUB_KEY

# A credential helper as Docker's protocol has them: `store` reads JSON, `get` and
# `erase` read the server URL; it keeps its entries as files in $HELPER_DIR.
HELPER = """#!/bin/sh
set -e
dir="$HELPER_DIR"
echo "$1" >> "$dir/calls"
case "$1" in
store)
    cat > "$dir/stored.json"
    key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ServerURL"])' \
          "$dir/stored.json")
    mv "$dir/stored.json" "$dir/$key.json" ;;
get)
    read -r key || true
    if [ -f "$dir/$key.json" ]; then cat "$dir/$key.json"
    else echo "credentials not found in native keychain"; exit 1; fi ;;
erase) read -r key || true; rm -f "$dir/$key.json" ;;
*) echo "unknown verb $1" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dockercfg"
    monkeypatch.setenv("DOCKER_CONFIG", str(home))
    return home


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`docker-credential-shoaltest` on the PATH, keeping its secrets in a directory."""
    bindir, store = tmp_path / "bin", tmp_path / "helper-store"
    bindir.mkdir()
    store.mkdir()
    script = bindir / "docker-credential-shoaltest"
    script.write_text(HELPER)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("HELPER_DIR", str(store))
    return store


def test_default_path_is_docker_config_then_home(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "x"))
    assert dockerconfig.config_path() == tmp_path / "x" / "config.json"
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dockerconfig.config_path() == tmp_path / "home" / ".docker" / "config.json"


def test_store_writes_docker_format_0600_and_keeps_other_content(config_dir: Path) -> None:
    config_dir.mkdir()
    path = config_dir / "config.json"
    path.write_text(json.dumps({"auths": {"other:5000": {"auth": "b3RoZXI6cHc=",
                                                         "email": "a@b"}},
                                "psFormat": "table {{.ID}}", "detachKeys": "ctrl-x"}))
    cfg = DockerConfig()
    assert cfg.store("reg.example:5443", Login("alice", "s3cret:x")) == ""
    data = json.loads(path.read_text())
    assert data["psFormat"] == "table {{.ID}}" and data["detachKeys"] == "ctrl-x"
    assert data["auths"]["other:5000"] == {"auth": "b3RoZXI6cHc=", "email": "a@b"}
    assert base64.b64decode(data["auths"]["reg.example:5443"]["auth"]) == b"alice:s3cret:x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in config_dir.iterdir()] == ["config.json"]   # no temp file left
    assert DockerConfig().get("reg.example:5443") == Login("alice", "s3cret:x")
    assert DockerConfig().get("other:5000") == Login("other", "pw")
    assert DockerConfig().get("nowhere:1") is None


def test_missing_file_and_directory_are_made(config_dir: Path) -> None:
    cfg = DockerConfig()
    assert cfg.get(DOCKER_HUB_KEY) is None
    cfg.store(DOCKER_HUB_KEY, Login("bob", "pw"))
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert list(json.loads((config_dir / "config.json").read_text())["auths"]) == [DOCKER_HUB_KEY]


def test_older_spellings_of_a_registry_are_found_and_replaced(config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps(
        {"auths": {"https://reg:5000": {"auth": dockerconfig.encode_auth("old", "pw")}}}))
    cfg = DockerConfig()
    assert cfg.get("reg:5000") == Login("old", "pw")
    assert cfg.logged_in("reg:5000") == ["https://reg:5000"]
    cfg.store("reg:5000", Login("new", "pw2"))
    assert list(json.loads((config_dir / "config.json").read_text())["auths"]) == ["reg:5000"]


def test_identity_token_entries(config_dir: Path) -> None:
    cfg = DockerConfig()
    cfg.store("reg:5000", Login("<token>", "tok"))
    entry = json.loads((config_dir / "config.json").read_text())["auths"]["reg:5000"]
    assert entry == {"identitytoken": "tok"}
    assert DockerConfig().get("reg:5000") == Login("<token>", "tok")


def test_erase_removes_every_spelling(config_dir: Path) -> None:
    config_dir.mkdir()
    auth = dockerconfig.encode_auth("u", "p")
    (config_dir / "config.json").write_text(json.dumps(
        {"auths": {"reg:5000": {"auth": auth}, "http://reg:5000": {"auth": auth},
                   "keep:1": {"auth": auth}}}))
    assert DockerConfig().erase("reg:5000") == []
    assert list(json.loads((config_dir / "config.json").read_text())["auths"]) == ["keep:1"]


def test_a_broken_file_is_a_clear_error(config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json is not valid JSON"):
        DockerConfig()
    (config_dir / "config.json").write_text(json.dumps({"auths": {"r:1": {"auth": "!!"}}}))
    with pytest.raises(ConfigError, match="not base64"):
        DockerConfig().get("r:1")


def test_creds_store_helper_keeps_the_password_out_of_the_file(config_dir: Path,
                                                               helper: Path) -> None:
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"credsStore": "shoaltest"}))
    cfg = DockerConfig()
    assert cfg.store("reg:5000", Login("carol", "hunter2")) == "shoaltest"
    text = (config_dir / "config.json").read_text()
    assert "hunter2" not in text and json.loads(text)["auths"] == {"reg:5000": {}}
    kept = json.loads((helper / "reg:5000.json").read_text())
    assert kept == {"ServerURL": "reg:5000", "Username": "carol", "Secret": "hunter2"}
    assert DockerConfig().get("reg:5000") == Login("carol", "hunter2")
    assert DockerConfig().get("other:1") is None          # "credentials not found"
    assert DockerConfig().erase("reg:5000") == []
    assert not (helper / "reg:5000.json").exists()
    assert json.loads((config_dir / "config.json").read_text())["auths"] == {}
    assert (helper / "calls").read_text().split() == ["store", "get", "get", "erase"]


def test_cred_helpers_per_registry_win_over_creds_store(config_dir: Path, helper: Path) -> None:
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps(
        {"credsStore": "absent", "credHelpers": {"reg:5000": "shoaltest"}}))
    cfg = DockerConfig()
    assert cfg.helper_for("reg:5000") == "shoaltest" and cfg.helper_for("x:1") == "absent"
    cfg.store("reg:5000", Login("d", "pw"))
    assert DockerConfig().get("reg:5000") == Login("d", "pw")
    with pytest.raises(ConfigError, match="docker-credential-absent is not on the PATH"):
        DockerConfig().get("x:1")


def test_a_failing_helper_says_what_it_said(config_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin2"
    bindir.mkdir()
    script = bindir / "docker-credential-broken"
    script.write_text("#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"credsStore": "broken"}))
    with pytest.raises(ConfigError, match="docker-credential-broken store: keychain locked"):
        DockerConfig().store("r:1", Login("u", "p"))


def _decoded(value: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def test_registry_auth_is_dockers_x_registry_auth() -> None:
    value = dockerconfig.registry_auth(Login("u", "p?>>"), "reg:5000")
    assert "+" not in value and "/" not in value        # base64url
    assert _decoded(value) == {"username": "u", "password": "p?>>", "serveraddress": "reg:5000"}
    token = dockerconfig.registry_auth(Login("<token>", "t"), DOCKER_HUB_KEY)
    assert _decoded(token) == {"identitytoken": "t", "serveraddress": DOCKER_HUB_KEY}
    assert _decoded(dockerconfig.registry_auth(None, "r:1")) == {"serveraddress": "r:1"}


@pytest.mark.parametrize("server,key", [
    ("", DOCKER_HUB_KEY), ("docker.io", DOCKER_HUB_KEY),
    ("https://index.docker.io/v1/", DOCKER_HUB_KEY), ("reg:5000", "reg:5000"),
    ("https://reg:5000/v2/", "reg:5000"), ("http://10.0.0.1:5443", "10.0.0.1:5443"),
])
def test_server_keys(server: str, key: str) -> None:
    assert imageref.registry_key(server) == key
