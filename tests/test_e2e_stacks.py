"""`swarm stack` on a 1+2 lab: seed 001's AtSea stack file, deployed unchanged.

Five services on three overlay networks (one encrypted), four external secrets with
source/target, placement on node.role and node.labels.pcidss, update_configs that roll
back, published ports, a bind of /var/run/docker.sock; images named as on Docker Hub
and served by the lab's stand-ins. The stack deploys unchanged; `stack
ls`/`services`/`ps` show it; services reach each other by name only on the networks
they share, and the published port answers through the mesh; an unchanged redeploy
touches no task; a change of one service's replicas and another's image changes only
those two; `--dry-run` writes nothing; `--prune` removes a service dropped from the
file; a missing external secret is refused, and a bad key, a bad value and a missing
external are three errors in one run, with nothing created; a changed secret file
rolls to a new version at the same path and the old version goes; `stack rm` followed
at once by a deploy of the same file works every time; a redeploy whose new image fails
its healthcheck, with `--rollback-on-failure`, exits non-zero naming the service and
leaves the whole stack at its previous definition. Digest pinning (on this lab for
its three nodes): a service's image is pinned to its digest at create, new tasks run
that digest after the tag moved, an update naming the same tag picks up the new one,
a rollback returns to the old digest, `--no-resolve-image` keeps the tag. Every wait
polls with a deadline.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from lab import images
from lab.cluster import REPO, Lab
from lab.images import ensure_stand_in
from tests.compose_helpers import ATSEA
from tests.helpers import sw, wait
from tests.labfixtures import module_lab
from tests.test_e2e_overlay import cexec, lookup
from tests.test_e2e_standins import fetch_from

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

lab = module_lab(1, 2)

APP = "dockersamples/atsea_app"
DB = "dockersamples/atsea_db"
PAYMENT = "dockersamples/atseasampleshopapp_payment_gateway"
PROXY = "dockersamples/atseasampleshopapp_reverse_proxy"
VISUALIZER = "dockersamples/visualizer:stable"
EXTERNAL_SECRETS = ("postgres_password", "staging_token", "revprox_key", "revprox_cert")
DOCKER_SOCK = Path("/var/run/docker.sock")


def atsea(tmp: Path, replicas: int = 2, payment_tag: str = "",
          visualizer: bool = True) -> str:
    """Seed 001's file as it is, or with appserver's replicas, payment_gateway's image
    tag, or without the visualizer."""
    text = ATSEA.replace("      replicas: 2\n", f"      replicas: {replicas}\n")
    if payment_tag:
        text = text.replace(f"image: {PAYMENT}\n", f"image: {PAYMENT}:{payment_tag}\n")
    if not visualizer:
        before, rest = text.split("  visualizer:\n", 1)
        text = before + "  payment_gateway:\n" + rest.split("  payment_gateway:\n", 1)[1]
    path = tmp / f"atsea-{replicas}-{payment_tag}-{visualizer}.yml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def stand_ins() -> None:
    for name in (f"{APP}:latest", f"{APP}:v2", f"{DB}:latest", f"{PAYMENT}:latest",
                 f"{PAYMENT}:v2"):
        ensure_stand_in(name, 80)
    ensure_stand_in(f"{PROXY}:latest", (80, 443))
    ensure_stand_in(VISUALIZER, 8080)


@pytest.fixture
def docker_sock() -> Iterator[None]:
    """The visualizer binds the host's /var/run/docker.sock, as on a Docker host: a
    stand-in file where the machine has none (removed afterwards)."""
    made = not DOCKER_SOCK.exists()
    if made:
        DOCKER_SOCK.touch()
    try:
        yield
    finally:
        if made:
            DOCKER_SOCK.unlink(missing_ok=True)


def tasks(lab: Lab, service: str) -> list[dict[str, Any]]:
    out = sw(lab, "service", "ps", service, "--no-trunc", "--format", "json",
             check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def running_ids(lab: Lab, service: str) -> set[str]:
    return {r["ID"] for r in tasks(lab, service)
            if r["DesiredState"] == "Running" and r["CurrentState"].startswith("Running")}


def all_running(lab: Lab, wanted: dict[str, int]) -> dict[str, set[str]] | None:
    ids = {name: running_ids(lab, name) for name in wanted}
    return ids if all(len(ids[n]) == count for n, count in wanted.items()) else None


def container(lab: Lab, service: str) -> tuple[str, str]:
    found = lab.containers(f"label=com.shoal.service.name={service}")
    assert found, f"no running container of {service}"
    return found[0]["LabNode"], found[0]["Id"]


def listing(lab: Lab) -> tuple[list[str], list[str], list[str]]:
    def names(*args: str) -> list[str]:
        return sorted(sw(lab, *args, "--format", "{{.Name}}").stdout.split())
    return names("service", "ls"), names("network", "ls"), names("secret", "ls")


def test_atsea_deploys_unchanged_redeploys_and_prunes(lab: Lab, stand_ins: None,
                                                      docker_sock: None,
                                                      tmp_path: Path) -> None:
    for name in EXTERNAL_SECRETS:
        sw(lab, "secret", "create", name, "-", input=f"{name}-value")
    sw(lab, "node", "update", "--label-add", "pcidss=yes", "worker2")
    try:
        _scenario(lab, tmp_path)
    finally:
        sw(lab, "stack", "rm", "atsea", check=False)
        wait(lambda: "atsea_" not in sw(lab, "network", "ls").stdout, 90,
             "atsea's networks gone")
        for name in EXTERNAL_SECRETS:
            sw(lab, "secret", "rm", name, check=False)
        sw(lab, "node", "update", "--label-rm", "pcidss", "worker2", check=False)


def _refusals(lab: Lab, tmp: Path) -> None:
    before = listing(lab)
    missing = tmp / "missing.yml"
    missing.write_text(ATSEA.replace("      - postgres_password\n",
                                     "      - postgres_password\n      - nowhere\n", 1)
                       + "  nowhere:\n    external: true\n")
    refused = sw(lab, "stack", "deploy", "-d", "-c", str(missing), "atsea", check=False)
    assert refused.returncode != 0 and "nowhere" in refused.stderr, refused
    assert listing(lab) == before, "a refused deploy created something"
    # a bad key, a bad value and a missing external secret: the three, in one run
    bad = tmp / "bad.yml"
    bad.write_text(missing.read_text().replace(f"    image: {DB}\n",
                                               f"    image: {DB}\n    colour: blue\n")
                   .replace("replicas: 2", "replicas: lots"))
    refused = sw(lab, "stack", "deploy", "-d", "-c", str(bad), "atsea", check=False)
    assert refused.returncode != 0, refused
    problems = refused.stderr.strip().splitlines()
    assert len(problems) == 3, refused.stderr
    assert any("services.database" in p and "colour" in p for p in problems), problems
    assert "services.appserver.deploy.replicas" in refused.stderr, problems
    assert 'secret "nowhere" is declared as external, but could not be found' in \
        refused.stderr, problems
    assert listing(lab) == before, "a refused deploy created something"


def _scenario(lab: Lab, tmp: Path) -> None:
    _refusals(lab, tmp)
    out = sw(lab, "stack", "deploy", "-d", "-c", atsea(tmp), "atsea").stdout
    for line in ("Creating network atsea_front-tier", "Creating network atsea_payment",
                 "Creating network atsea_default", "Creating service atsea_appserver",
                 "Creating service atsea_reverse_proxy", "Creating service atsea_visualizer",
                 "Creating service atsea_database", "Creating service atsea_payment_gateway"):
        assert line in out, out
    wanted = {"atsea_reverse_proxy": 1, "atsea_database": 1, "atsea_appserver": 2,
              "atsea_visualizer": 1, "atsea_payment_gateway": 1}
    first = wait(lambda: all_running(lab, wanted), 150, "every atsea task running")

    def nodes_of(service: str) -> set[str]:
        return {r["Node"] for r in tasks(lab, service) if r["DesiredState"] == "Running"}
    assert nodes_of("atsea_payment_gateway") == {"worker2"}
    assert nodes_of("atsea_visualizer") == {"manager1"}
    assert nodes_of("atsea_database") | nodes_of("atsea_appserver") <= {"worker1", "worker2"}

    assert sw(lab, "stack", "ls").stdout.split() == ["NAME", "SERVICES", "atsea", "5"]
    services = sw(lab, "stack", "services", "atsea", "--format", "{{.Name}} {{.Replicas}}")
    assert sorted(services.stdout.splitlines()) == [
        "atsea_appserver 2/2", "atsea_database 1/1", "atsea_payment_gateway 1/1",
        "atsea_reverse_proxy 1/1", "atsea_visualizer 1/1"], services.stdout
    ps = sw(lab, "stack", "ps", "atsea", "--format", "{{.Name}}").stdout.split()
    assert sorted(ps) == ["atsea_appserver.1", "atsea_appserver.2", "atsea_database.1",
                          "atsea_payment_gateway.1", "atsea_reverse_proxy.1",
                          "atsea_visualizer.1"], ps
    network = json.loads(sw(lab, "network", "inspect", "atsea_payment").stdout)[0]
    assert network["Options"].get("encrypted") is not None, network

    # names resolve on shared networks only; the published port answers on every node
    app, payment = container(lab, "atsea_appserver"), container(lab, "atsea_payment_gateway")
    proxy = container(lab, "atsea_reverse_proxy")
    wait(lambda: lookup(lab, app, "database"), 30, "appserver resolving database")
    wait(lambda: lookup(lab, app, "payment_gateway"), 30, "appserver resolving the gateway")
    wait(lambda: lookup(lab, proxy, "appserver"), 30, "reverse_proxy resolving appserver")
    assert lookup(lab, payment, "database") == [], "payment_gateway reached the back tier"
    assert lookup(lab, proxy, "database") == [], "reverse_proxy reached the back tier"
    wait(lambda: not fetch_from(lab, "worker1", lab.ip("worker1"), 80).startswith("error"),
         30, "the reverse proxy's published port 80 answering on worker1")
    secret_file = cexec(lab, payment, "cat", "/run/secrets/payment_token").stdout
    assert secret_file == "staging_token-value", secret_file

    # unchanged: nothing to do, no task replaced; a dry run writes nothing
    dry = sw(lab, "stack", "deploy", "--dry-run", "-c", atsea(tmp), "atsea").stdout
    assert "nothing to do" in dry.lower(), dry
    again = sw(lab, "stack", "deploy", "-d", "-c", atsea(tmp), "atsea").stdout
    assert "up to date" in again, again
    assert all_running(lab, wanted) == first

    # one service's replicas, another's image: only those two change
    changed = atsea(tmp, replicas=3, payment_tag="v2")
    dry = sw(lab, "stack", "deploy", "--dry-run", "-c", changed, "atsea").stdout
    assert sorted(line.split()[3] for line in dry.splitlines() if line.startswith("Would")) \
        == ["atsea_appserver", "atsea_payment_gateway"], dry
    assert all_running(lab, wanted) == first, "a dry run changed the stack"
    sw(lab, "stack", "deploy", "-d", "-c", changed, "atsea")
    wanted["atsea_appserver"] = 3
    now = wait(lambda: (lambda ids: ids if ids and ids["atsea_payment_gateway"] !=
                        first["atsea_payment_gateway"] else None)(all_running(lab, wanted)),
               120, "the payment gateway updated and a third appserver")
    for same in ("atsea_database", "atsea_reverse_proxy", "atsea_visualizer"):
        assert now[same] == first[same], same
    assert first["atsea_appserver"] < now["atsea_appserver"], "appserver tasks were replaced"

    # --prune: a service dropped from the file goes
    sw(lab, "stack", "deploy", "-d", "--prune", "-c",
       atsea(tmp, replicas=3, payment_tag="v2", visualizer=False), "atsea")
    wait(lambda: "atsea_visualizer" not in sw(lab, "service", "ls").stdout, 60,
         "the pruned service removed")
    assert running_ids(lab, "atsea_database") == first["atsea_database"]


TINY = """\
services:
  web:
    image: {app}
    networks: [net]
networks:
  net:
"""


def test_stack_rm_then_deploy_at_once_works_every_time(lab: Lab, stand_ins: None,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "tiny.yml"
    path.write_text(TINY.format(app=APP))
    try:
        for round_ in range(5):
            sw(lab, "stack", "deploy", "-d", "-c", str(path), "tiny")
            wait(lambda: running_ids(lab, "tiny_web"), 60, f"round {round_}: tiny_web running")
            removed = sw(lab, "stack", "rm", "tiny").stdout
            assert "Removing network tiny_net" in removed, removed
    finally:
        sw(lab, "stack", "rm", "tiny", check=False)


ROLLING = """\
services:
  web:
    image: {app}:{tag}
{health}    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        monitor: 20s
        failure_action: pause
  db:
    image: {db}
{extra}"""

FAILING_HEALTH = """\
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      retries: 1
"""

EXTRA = """\
  extra:
    image: {payment}
"""


def inspect_spec(lab: Lab, service: str) -> dict[str, Any]:
    (data,) = json.loads(sw(lab, "service", "inspect", service).stdout)
    spec: dict[str, Any] = data["spec"]
    return spec


def test_a_failing_redeploy_rolls_the_whole_stack_back(lab: Lab, stand_ins: None,
                                                       tmp_path: Path) -> None:
    v1 = tmp_path / "v1.yml"
    v1.write_text(ROLLING.format(app=APP, tag="latest", health="", db=DB, extra=""))
    v2 = tmp_path / "v2.yml"
    v2.write_text(ROLLING.format(app=APP, tag="v2", health=FAILING_HEALTH, db=DB,
                                 extra=EXTRA.format(payment=PAYMENT)))
    try:
        sw(lab, "stack", "deploy", "-q", "-c", str(v1), "rb")
        wanted = {"rb_web": 2, "rb_db": 1}
        first = wait(lambda: all_running(lab, wanted), 120, "rb's tasks running")
        specs = {name: inspect_spec(lab, name) for name in wanted}

        failed = sw(lab, "stack", "deploy", "--rollback-on-failure", "-c", str(v2), "rb",
                    check=False)
        assert failed.returncode != 0, failed
        last = failed.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: stack rb: service rb_web did not converge"), failed
        assert "unhealthy" in last, failed   # the failing task's error
        assert last.endswith("the stack was rolled back to its previous definition"), failed
        assert "Rolling back service rb_web" in failed.stdout, failed
        assert "Removing service rb_extra" in failed.stdout, failed

        # the whole stack is at v1 again: the same specs, the service v2 added gone,
        # the untouched service's tasks the same
        assert {name: inspect_spec(lab, name) for name in wanted} == specs
        assert "rb_extra" not in sw(lab, "service", "ls").stdout
        now = wait(lambda: all_running(lab, wanted), 60, "rb at v1 again")
        assert now["rb_db"] == first["rb_db"]
        listed = sw(lab, "stack", "services", "rb", "--format", "{{.Name}}")
        assert sorted(listed.stdout.split()) == ["rb_db", "rb_web"]

        # a second rollback goes forward to v2 (detached: its healthcheck fails again)
        forward = sw(lab, "stack", "rollback", "-d", "rb").stdout
        assert "Rolling back service rb_web" in forward and "Creating service rb_extra" \
            in forward, forward
        assert inspect_spec(lab, "rb_web")["task"]["container"]["image"] == f"{APP}:v2"
    finally:
        sw(lab, "stack", "rm", "rb", check=False)
        wait(lambda: "rb_" not in sw(lab, "network", "ls").stdout, 90, "rb's networks gone")


SECRETIVE = """\
services:
  app:
    image: {app}
    secrets:
      - source: pw
        target: app_password
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
secrets:
  pw:
    file: ./pw.txt
"""


def secret_in_tasks(lab: Lab) -> set[str]:
    """The secret file's content in each running task of sec_app."""
    seen = set()
    for found in lab.containers("label=com.shoal.service.name=sec_app"):
        res = cexec(lab, (found["LabNode"], found["Id"]), "cat", "/run/secrets/app_password")
        seen.add(res.stdout if res.returncode == 0 else f"error: {res.stderr}")
    return seen


def test_new_secret_file_content_rolls_to_a_new_version(lab: Lab, stand_ins: None,
                                                        tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("first")
    path = tmp_path / "secretive.yml"
    path.write_text(SECRETIVE.format(app=APP))
    try:
        sw(lab, "stack", "deploy", "-q", "-c", str(path), "sec")
        wait(lambda: secret_in_tasks(lab) == {"first"}, 60, "both tasks with the first secret")
        (tmp_path / "pw.txt").write_text("second")
        out = sw(lab, "stack", "deploy", "-q", "-c", str(path), "sec").stdout
        assert "Creating secret sec_pw.v2" in out and "Updating service sec_app" in out, out
        wait(lambda: secret_in_tasks(lab) == {"second"} and len(running_ids(lab, "sec_app"))
             == 2, 90, "both tasks with the new content at the same path")
        wait(lambda: sw(lab, "secret", "ls", "--format", "{{.Name}}").stdout.split()
             == ["sec_pw.v2"], 60, "the old version removed after the roll")
        again = sw(lab, "stack", "deploy", "-q", "-c", str(path), "sec").stdout
        assert "up to date" in again, again
    finally:
        sw(lab, "stack", "rm", "sec", check=False)
        wait(lambda: "sec_" not in sw(lab, "secret", "ls").stdout, 60, "sec's secrets gone")


# ------------------------------------------------------- digest pinning ----

PIN_REPO = "shoal/pin-test"


def host_swarm(lab: Lab, *args: str) -> subprocess.CompletedProcess:
    """The swarm CLI on the host against manager1's control socket: in the host's network
    127.0.0.1:5000 is the lab registry, as a user's machine reaches its registry (inside a
    node's namespace 127.0.0.1 is the node's own loopback)."""
    res = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True,
                         text=True, timeout=120, cwd=str(REPO),
                         env=dict(os.environ, SWARM_HOST=lab.host("manager1")))
    assert res.returncode == 0, f"swarm {' '.join(args)}: {res.stdout}{res.stderr}"
    return res


def markers(lab: Lab, service: str) -> list[tuple[str, str]]:
    """(node, marker file of the variant) of each running container of the service."""
    found = []
    for c in lab.containers(f"label=com.shoal.service.name={service}"):
        res = cexec(lab, (c["LabNode"], c["Id"]), "cat", "/etc/shoal-variant")
        found.append((c["LabNode"], res.stdout.strip() if res.returncode == 0 else "?"))
    return sorted(found)


def test_a_pinned_image_runs_its_digest_after_the_tag_moves(lab: Lab) -> None:
    image = f"{images.REGISTRY_ADDR}/{PIN_REPO}:latest"
    v1 = images.push_variant(PIN_REPO, "latest", "v1")
    try:
        made = host_swarm(lab, "service", "create", "-d", "--name", "pinned",
                          "--stop-grace-period", "1s", image, "sleep", "3600")
        assert made.stderr == "", made.stderr
        assert inspect_spec(lab, "pinned")["task"]["container"]["image"] == f"{image}@{v1}"
        wait(lambda: [m for _, m in markers(lab, "pinned")] == ["v1"], 90, "pinned at v1")

        # the tag moves; new tasks, on nodes that never pulled it, still run v1
        v2 = images.push_variant(PIN_REPO, "latest", "v2")
        assert v2 != v1
        host_swarm(lab, "service", "scale", "-d", "pinned=3")
        three = wait(lambda: (lambda m: len(m) == 3 and m)(markers(lab, "pinned")), 120,
                     "3 tasks of pinned")
        assert {m for _, m in three} == {"v1"}, three
        assert len({node for node, _ in three}) == 3, three       # one per node: 3 pulls
        # tables show the tag, as Docker; inspect JSON and --no-trunc the pinned name
        ps = host_swarm(lab, "service", "ps", "pinned", "--format", "{{.Image}}").stdout
        assert set(ps.split()) == {image}, ps
        ls = host_swarm(lab, "service", "ls", "--filter", "name=pinned", "--format",
                        "{{.Image}}").stdout
        assert ls.strip() == image
        ps = host_swarm(lab, "service", "ps", "pinned", "--no-trunc", "--format",
                        "{{.Image}}").stdout
        assert set(ps.split()) == {f"{image}@{v1}"}, ps

        # an update naming the same tag resolves it again: every task rolls to v2
        updated = host_swarm(lab, "service", "update", "-d", "--image", image, "pinned")
        assert updated.stderr == "", updated.stderr
        assert inspect_spec(lab, "pinned")["task"]["container"]["image"] == f"{image}@{v2}"
        wait(lambda: [m for _, m in markers(lab, "pinned")] == ["v2"] * 3, 180,
             "3 tasks of pinned at v2")
        # a rollback returns to the v1 digest, though the tag now names v2
        host_swarm(lab, "service", "rollback", "-d", "pinned")
        assert inspect_spec(lab, "pinned")["task"]["container"]["image"] == f"{image}@{v1}"
        wait(lambda: [m for _, m in markers(lab, "pinned")] == ["v1"] * 3, 180,
             "3 tasks of pinned back at v1")

        # --no-resolve-image keeps the bare tag: each node pulls it itself (now v2)
        host_swarm(lab, "service", "create", "-d", "--name", "unpinned",
                   "--no-resolve-image", "--stop-grace-period", "1s", image, "sleep", "3600")
        assert inspect_spec(lab, "unpinned")["task"]["container"]["image"] == image
        wait(lambda: [m for _, m in markers(lab, "unpinned")] == ["v2"], 90,
             "unpinned running the tag's v2")
    finally:
        for name in ("pinned", "unpinned"):
            sw(lab, "service", "rm", name, check=False)


PINNED_STACK = """\
services:
  app:
    image: {image}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"""


def test_stack_deploy_resolve_image_modes_on_the_cluster(lab: Lab, tmp_path: Path) -> None:
    repo = f"{PIN_REPO}-stack"
    image = f"{images.REGISTRY_ADDR}/{repo}:latest"
    v1 = images.push_variant(repo, "latest", "v1")
    path = tmp_path / "pinned.yml"
    path.write_text(PINNED_STACK.format(image=image))

    def deploy(*flags: str) -> str:
        return host_swarm(lab, "stack", "deploy", "-d", "-c", str(path), *flags,
                          "pins").stdout
    try:
        deploy()
        assert inspect_spec(lab, "pins_app")["task"]["container"]["image"] == f"{image}@{v1}"
        wait(lambda: [m for _, m in markers(lab, "pins_app")] == ["v1"], 90, "pins at v1")
        v2 = images.push_variant(repo, "latest", "v2")
        # the file names the same image: changed and never keep the deployed digest
        for mode in ("changed", "never"):
            out = deploy("--resolve-image", mode)
            assert "Stack pins is up to date" in out, (mode, out)
        assert inspect_spec(lab, "pins_app")["task"]["container"]["image"] == f"{image}@{v1}"
        # always (the default) resolves the moved tag and rolls the service to it
        assert "Updating service pins_app" in deploy()
        assert inspect_spec(lab, "pins_app")["task"]["container"]["image"] == f"{image}@{v2}"
        wait(lambda: [m for _, m in markers(lab, "pins_app")] == ["v2"], 90, "pins at v2")
        listed = host_swarm(lab, "stack", "services", "pins", "--format", "{{.Image}}")
        assert listed.stdout.strip() == image
    finally:
        sw(lab, "stack", "rm", "pins", check=False)


def test_a_nodes_own_cli_pins_where_the_nodes_podman_pulls(lab: Lab, stand_ins: None) -> None:
    """`swarm-lab exec NODE -- swarm ...` (and the demo) run the CLI with the node's
    registries.conf: inside the node 127.0.0.1:5000 is not the registry, and Docker Hub
    names are read from the lab registry; the CLI asks where the node's podman pulls, so
    both a lab name and a Hub name are pinned to the digests the nodes then run."""
    lab_image = images.DEMO_IMAGE
    hub_image = f"{DB}:latest"                   # a Docker Hub name with a lab stand-in
    want_lab = images.manifest_digest(images.DEMO_REPO, images.DEMO_TAG)
    repo, tag = images.stand_in_request(hub_image).image.repository, "latest"
    want_hub = images.manifest_digest(repo, tag)
    try:
        for name, image, digest in (("viewlab", lab_image, want_lab),
                                    ("viewhub", hub_image, want_hub)):
            made = lab.swarm("manager1", "service", "create", "-d", "--name", name,
                             "--stop-grace-period", "1s", image, "sleep", "3600",
                             registry_view=True)
            assert made.stderr == "", made.stderr           # no "could not be accessed"
            stored = inspect_spec(lab, name)["task"]["container"]["image"]
            assert stored.endswith(f"@{digest}"), (stored, digest)
            wait(lambda: sw(lab, "service", "ps", name, "--filter", "desired-state=running",
                            "--format", "{{.CurrentState}}").stdout.startswith("Running"),
                 90, f"{name} running its pinned digest")
        # without the node's view (the tests' own helper) the CLI cannot reach the
        # registry from inside the node: Docker's warning, and the tag is stored
        plain = sw(lab, "service", "create", "-d", "--name", "viewnone", lab_image,
                   "sleep", "3600")
        assert "could not be accessed on a registry" in plain.stderr
        assert inspect_spec(lab, "viewnone")["task"]["container"]["image"] == lab_image
    finally:
        sw(lab, "service", "rm", "viewlab", "viewhub", "viewnone", check=False)
