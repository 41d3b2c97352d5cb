"""Private registries end to end on a real lab (one manager, two workers).

The lab's private registry (lab/privateregistry.py: Debian's docker-registry with
htpasswd logins, TLS from its own CA trusted through /etc/containers/certs.d) holds
the demo image under a name no node has pulled before. With the CLI's Docker config
in a temporary $DOCKER_CONFIG:
* a service of that image created without credentials: its task is Rejected with the
  registry's reason;
* `swarm login` with a wrong password is refused with the registry's reason and
  stores nothing; with the right one it stores them (Docker's format);
* `service create --with-registry-auth` on worker1: the image's digest is looked up
  with the login and pinned in the spec, the task runs; neither `service
  inspect` nor the task's inspect shows the password or the encoded credentials;
  worker2 and manager1's engines never pulled, and worker2's daemon never held the
  credentials (its memory is searched; worker1's, which runs the task, holds them);
  no node logged them or has them in plain in its data directory (the managers'
  store is encrypted at rest);
* `service update` without the flag keeps them: moved to worker2, the task pulls and
  runs there;
* `swarm logout` removes them from the config file.

One lab serves the module; tests run in file order and build on each other. Every
wait polls a condition with a deadline.
"""
from __future__ import annotations

import json
import os
import re
import secrets as random_secrets
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from cli.dockerconfig import registry_auth, Login
from lab.cluster import Lab
from lab.images import DEMO_IMAGE
from lab.privateregistry import PrivateRegistry
from tests.helpers import sw, wait
from tests.labfixtures import module_lab

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

USER = "shoal"
PASSWORD = "pw-" + random_secrets.token_hex(12)     # unique: any hit is this test's
REPO = "private/busybox-" + random_secrets.token_hex(4)
GRACE = ("--stop-grace-period", "1s")

lab = module_lab(1, 2)


@pytest.fixture(scope="module")
def registry(lab: Lab) -> Iterator[PrivateRegistry]:
    with PrivateRegistry.running(lab.net.underlay.host_ip, USER, PASSWORD) as running:
        yield running


@pytest.fixture(scope="module")
def image(registry: PrivateRegistry) -> str:
    return registry.push(DEMO_IMAGE, REPO, "v1")


@pytest.fixture(scope="module")
def docker_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docker-config")


def cli(lab: Lab, config: Path, *args: str, input: str | None = None,
        node: str = "manager1") -> subprocess.CompletedProcess:
    """`swarm ARGS` inside the node, with the Docker config in `config`."""
    argv, env = lab.exec_argv(node, [sys.executable, "-m", "cli.main", *args])
    env = dict(env, DOCKER_CONFIG=str(config))
    return subprocess.run(argv, env=env, input=input, capture_output=True, text=True,
                          timeout=120, cwd=str(Path(__file__).resolve().parent.parent))


def node_of_running(lab: Lab, service: str) -> str | None:
    """The lab node whose engine runs the one container of `service`, or None."""
    found = [c for c in lab.containers(f"label=com.shoal.service.name={service}")
             if c.get("State") == "running"]
    return found[0]["LabNode"] if len(found) == 1 else None


def has_image(lab: Lab, node: str, image: str) -> bool:
    """Whether the node's engine holds the image's repository (by tag or by digest: a
    service's image is pinned to its digest)."""
    repository = image.rsplit(":", 1)[0]
    listed = lab.podman(node, "images", "--format", "{{.Repository}}")
    assert listed.returncode == 0, listed.stderr
    return repository in listed.stdout.split()


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    """Regular files under `root` holding one of the needles (the store's journal and
    snapshots are encrypted: the credentials must not be found there)."""
    hits = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            if any(n in data for n in needles):
                hits.append(path)
    return hits


def memory_holds(pid: int, needles: list[bytes]) -> list[bytes]:
    """The needles found anywhere in the readable memory of process `pid`."""
    found: set[bytes] = set()
    longest = max(len(n) for n in needles)
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            tail = b""
            for offset in range(start, end, 1 << 20):
                try:
                    mem.seek(offset)
                    chunk = tail + mem.read(min(1 << 20, end - offset))
                except (OSError, ValueError, OverflowError):
                    break
                found.update(n for n in needles if n in chunk)
                tail = chunk[-longest:]
    return sorted(found)


# --------------------------------------------------------------------- tests --

def test_without_credentials_the_task_is_rejected_with_the_registrys_reason(
        lab: Lab, image: str, docker_config: Path) -> None:
    made = sw(lab, "service", "create", "-d", "--name", "anon", *GRACE,
              "--constraint", "node.hostname==worker1", image, "sleep", "3600")
    # the digest cannot be looked up anonymously either: Docker's warning, tag kept
    assert "could not be accessed on a registry to record" in made.stderr, made.stderr

    def rejected() -> str | None:
        table = sw(lab, "service", "ps", "--no-trunc", "anon").stdout
        return table if "Rejected" in table else None
    table = wait(rejected, 60, "a Rejected task of the private image without credentials")
    assert re.search(r"authentication required|unauthorized", table), table
    assert not has_image(lab, "worker1", image)
    sw(lab, "service", "rm", "anon")


def test_login_refuses_a_wrong_password_and_stores_the_right_one(
        lab: Lab, registry: PrivateRegistry, docker_config: Path) -> None:
    wrong = cli(lab, docker_config, "login", "-u", USER, "--password-stdin", registry.addr,
                input="not-the-password\n")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.strip() == ("Error response from registry: "
                                    "unauthorized: authentication required"), wrong.stderr
    assert not (docker_config / "config.json").exists()
    right = cli(lab, docker_config, "login", "-u", USER, "--password-stdin", registry.addr,
                input=PASSWORD + "\n")
    assert right.returncode == 0 and right.stdout == "Login Succeeded\n", right.stderr
    assert "WARNING! Your password will be stored unencrypted" in right.stderr
    auths = json.loads((docker_config / "config.json").read_text())["auths"]
    assert list(auths) == [registry.addr] and set(auths[registry.addr]) == {"auth"}


def test_with_registry_auth_the_task_runs_and_nothing_shows_the_credentials(
        lab: Lab, registry: PrivateRegistry, image: str, docker_config: Path) -> None:
    made = cli(lab, docker_config, "service", "create", "-d", "--with-registry-auth",
               "--name", "priv", *GRACE, "--constraint", "node.hostname==worker1",
               image, "sleep", "3600")
    assert made.returncode == 0, made.stderr
    assert wait(lambda: node_of_running(lab, "priv"), 90, "the private image running") == \
        "worker1"
    assert "could not be accessed" not in made.stderr   # the login found its digest too
    pinned = sw(lab, "service", "inspect", "--format",
                "{{.Spec.TaskTemplate.ContainerSpec.Image}}", "priv").stdout.strip()
    assert pinned.startswith(image + "@sha256:"), pinned
    encoded = registry_auth(Login(USER, PASSWORD), registry.addr)
    task_ids = sw(lab, "service", "ps", "-q", "--no-trunc", "priv").stdout.split()
    shown = "".join([sw(lab, "service", "inspect", "priv").stdout,
                     sw(lab, "service", "inspect", "--pretty", "priv").stdout,
                     sw(lab, "inspect", *task_ids).stdout,
                     sw(lab, "stack", "ls").stdout])
    assert task_ids and PASSWORD not in shown and encoded not in shown
    for node in lab.names():       # no node logged them or wrote them in plain on disk
        log = lab.log_path(node).read_text(errors="replace")
        assert PASSWORD not in log and encoded not in log, node
        assert files_containing(lab.data_dir(node), [PASSWORD.encode(), encoded.encode()]) \
            == [], node
    # only the node that runs the task got them: worker2's daemon never held them
    assert not has_image(lab, "worker2", image) and not has_image(lab, "manager1", image)
    needles = [PASSWORD.encode(), encoded.encode()]
    worker1, worker2 = lab.pid("worker1"), lab.pid("worker2")
    assert worker1 is not None and worker2 is not None
    assert encoded.encode() in memory_holds(worker1, needles)   # the search finds them
    assert memory_holds(worker2, needles) == []


def test_an_update_without_the_flag_keeps_the_credentials(
        lab: Lab, image: str, docker_config: Path) -> None:
    moved = cli(lab, docker_config, "service", "update", "-d",
                "--constraint-rm", "node.hostname==worker1",
                "--constraint-add", "node.hostname==worker2", "priv")
    assert moved.returncode == 0, moved.stderr
    wait(lambda: node_of_running(lab, "priv") == "worker2", 90,
         "the task moved to worker2, pulled with the kept credentials")
    assert has_image(lab, "worker2", image)
    sw(lab, "service", "rm", "priv")


def test_logout_removes_the_credentials(lab: Lab, registry: PrivateRegistry,
                                        docker_config: Path) -> None:
    out = cli(lab, docker_config, "logout", registry.addr)
    assert (out.returncode, out.stdout) == (0, f"Removing login credentials for "
                                               f"{registry.addr}\n")
    assert json.loads((docker_config / "config.json").read_text())["auths"] == {}
    again = cli(lab, docker_config, "logout", registry.addr)
    assert again.stdout == f"Not logged in to {registry.addr}\n"
