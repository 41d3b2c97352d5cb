"""End to end on one node: healthchecks run by the agent in real podman containers.

A task with a healthcheck stays STARTING until its first passing check (failures
in the start period do not count) and is RUNNING only then; a task whose check
starts failing becomes FAILED "unhealthy container", its container is stopped and
the restart policy replaces it. The health (status, failing streak, the last
results with their output) is visible in `swarm inspect TASK` and in
`service ps --format '{{json .}}'`. An image's own HEALTHCHECK gates its tasks
the same way unless the service says `--no-healthcheck`.
"""
from __future__ import annotations

import json
import time

import pytest

from lab import images
from proto import objects_pb2 as pb
from tests.cluster import SingleNode, podman
from tests.helpers import wait

pytestmark = pytest.mark.e2e

CHECK = ["--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
         "--health-timeout", "2s"]


@pytest.fixture(scope="module")
def image() -> str:
    return images.ensure_demo_image()


@pytest.fixture(scope="module")
def node(tmp_path_factory, image):
    n = SingleNode(tmp_path_factory.mktemp("health"))
    try:
        n.init()
        yield n
    finally:
        n.destroy()


def test_task_is_starting_until_its_check_passes(node: SingleNode, image: str) -> None:
    # the file appears 2 s after the start: the checks at 1 s (and maybe 2 s) fail inside
    # the 3 s start period, and with one retry any counted failure would fail the task
    node.swarm("service", "create", "-d", "--name", "slowok", "--replicas", "2",
               "--stop-grace-period", "1s", *CHECK, "--health-retries", "1",
               "--health-start-period", "3s", image,
               "sh", "-c", "sleep 2; touch /tmp/ok; exec sleep 3600")
    seen_starting: set[str] = set()

    def all_running():
        tasks = node.tasks("slowok")
        running_containers = {c["Id"] for c in node.containers("slowok")}
        for t in tasks:
            if (t.status.state == pb.STARTING
                    and t.status.container_status.container_id in running_containers):
                assert t.status.message == "starting"
                seen_starting.add(t.id)
        done = [t for t in tasks if t.status.state == pb.RUNNING]
        return tasks if len(done) == 2 else None

    tasks = wait(all_running, 30, "both slowok tasks RUNNING", interval=0.1)
    assert seen_starting == {t.id for t in tasks}, "a task was never seen STARTING while its container ran"
    for t in tasks:
        started = podman("inspect", "--format", "{{.State.StartedAt.Unix}}",
                         t.status.container_status.container_id).stdout.strip()
        # RUNNING was reported once the file existed, not when the container started
        assert t.status.timestamp.seconds - int(started) >= 1, (t.status, started)
    assert len(node.tasks("slowok")) == 2
    assert not [t for t in node.tasks("slowok") if t.status.state == pb.FAILED]
    node.swarm("service", "rm", "slowok")


def test_unhealthy_task_fails_and_is_replaced(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "-d", "--name", "flip", "--stop-grace-period", "1s",
               "--restart-delay", "1s", *CHECK, "--health-retries", "2", image,
               "sh", "-c", "touch /tmp/ok; exec sleep 3600")
    first = wait(lambda: node.running("flip"), 30, "flip running")[0]
    cid = first.status.container_status.container_id
    podman("exec", cid, "rm", "/tmp/ok")
    broken_at = time.monotonic()

    def failed():
        t = next(t for t in node.tasks("flip") if t.id == first.id)
        return t if t.status.state == pb.FAILED else None

    old = wait(failed, 15, "the unhealthy task FAILED")
    failed_after = time.monotonic() - broken_at
    assert old.status.err == "unhealthy container", old.status
    assert_unhealthy_is_visible(node, old.id)

    def replaced():
        new = [t for t in node.running("flip") if t.id != first.id]
        return new or None

    new = wait(replaced, 20, "a replacement RUNNING")[0]
    replaced_after = time.monotonic() - broken_at
    assert new.slot == first.slot
    state = podman("inspect", "--format", "{{.State.Running}}", cid, check=False)
    assert state.returncode != 0 or state.stdout.strip() == "false", "the unhealthy container still runs"
    print(f"\nunhealthy -> FAILED {failed_after:.2f}s, -> replacement RUNNING {replaced_after:.2f}s")
    ps = node.swarm("service", "ps", "flip").stdout
    assert "unhealthy container" in ps, ps
    node.swarm("service", "rm", "flip")


def assert_unhealthy_is_visible(node: SingleNode, task_id: str) -> None:
    """`swarm inspect TASK` and `service ps --format '{{json .}}'` show the task's health
    after its check failed: unhealthy, the failing streak and the checks' output."""
    (task,) = json.loads(node.swarm("inspect", task_id).stdout)
    health = task["status"]["health"]
    assert health["status"] == "unhealthy" and health["failing_streak"] == 2, health
    failures = [r for r in health["log"] if r["exit_code"] != 0]
    assert len(failures) >= 2, health
    assert all(r["start"] and r["end"] for r in health["log"]), health
    # the shell's test prints nothing: a failed check has an empty output and exit 1
    assert failures[-1]["exit_code"] == 1 and failures[-1]["output"] == "", health
    assert [r["exit_code"] for r in health["log"]][0] == 0, "the first check passed"
    rows = [json.loads(line) for line in node.swarm(
        "service", "ps", "--no-trunc", "--format", "{{json .}}", "flip").stdout.splitlines()]
    row = next(r for r in rows if r["ID"] == task_id)
    assert row["Health"]["Status"] == "unhealthy" and row["Health"]["FailingStreak"] == 2, row
    assert [r["ExitCode"] for r in row["Health"]["Log"]][-2:] == [1, 1], row
    shown = node.swarm("service", "ps", "--no-trunc", "--format",
                       "{{.ID}} {{.Health.Status}}", "flip").stdout
    assert f"{task_id} unhealthy" in shown, shown


def test_a_failing_check_is_visible_with_its_output(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "-d", "--name", "noisy", "--stop-grace-period", "1s",
               "--health-cmd", "echo checking; cat /tmp/ok", "--health-interval", "1s",
               "--health-retries", "3", image, "sh", "-c", "echo up > /tmp/ok; exec sleep 3600")
    first = wait(lambda: node.running("noisy"), 30, "noisy running")[0]
    podman("exec", first.status.container_status.container_id, "rm", "/tmp/ok")

    def failing():
        (task,) = json.loads(node.swarm("inspect", "--type", "task", first.id).stdout)
        health = task["status"].get("health", {})
        return health if health.get("failing_streak", 0) >= 1 else None

    # a failed check is reported while the task still runs: streak 1 (of 3), healthy
    health = wait(failing, 15, "a failed check visible", interval=0.2)
    assert health["status"] in ("healthy", "unhealthy"), health
    last = health["log"][-1]
    assert last["exit_code"] == 1 and "checking" in last["output"], last
    assert "No such file" in last["output"] or "can't open" in last["output"], last
    assert any(r["exit_code"] == 0 and r["output"] == "checking\nup\n" for r in health["log"])
    node.swarm("service", "rm", "noisy")


def test_the_image_healthcheck_gates_running_and_no_healthcheck_disables_it(
        node: SingleNode) -> None:
    sick = images.ensure_unhealthy_image()   # HEALTHCHECK every 1 s, 2 retries: /tmp/healthy
    common = ["service", "create", "-d", "--stop-grace-period", "1s", "--restart-delay", "1s"]
    node.swarm(*common, "--name", "imgsick", sick, "sleep", "3600")
    node.swarm(*common, "--name", "imgwell", sick, "sh", "-c",
               "touch /tmp/healthy; exec sleep 3600")
    node.swarm(*common, "--name", "imgoff", "--no-healthcheck", sick, "sleep", "3600")

    def two_failed():
        tasks = node.tasks("imgsick")
        assert not [t for t in tasks if t.status.state == pb.RUNNING], "a sick task RUNNING"
        failed = [t for t in tasks if t.status.state == pb.FAILED]
        return failed if len(failed) >= 2 else None

    # the image's own check fails: the task fails from STARTING, and so does its replacement
    failed = wait(two_failed, 40, "two imgsick tasks FAILED", interval=0.2)
    for t in failed:
        assert t.status.err == "unhealthy container", t.status
        assert t.status.health.status == "unhealthy" and t.status.health.failing_streak == 2
        assert "image healthcheck: /tmp/healthy is missing" in t.status.health.log[-1].output
    # the same check passes once the file exists: RUNNING and healthy
    well = wait(lambda: node.running("imgwell"), 30, "imgwell RUNNING")[0]
    assert well.status.health.status == "healthy", well.status
    # --no-healthcheck: RUNNING at once, no health, and it stays so past the image's retries
    off = wait(lambda: node.running("imgoff"), 30, "imgoff RUNNING")[0]
    assert not off.status.HasField("health"), off.status
    since = time.monotonic()

    def still_running_later():
        (now,) = [t for t in node.tasks("imgoff") if t.id == off.id]
        assert now.status.state == pb.RUNNING, now.status
        return time.monotonic() - since > 4 or None

    wait(still_running_later, 10, "imgoff still RUNNING 4 s later", interval=0.5)
    assert [t.id for t in node.tasks("imgoff")] == [off.id]
    for name in ("imgsick", "imgwell", "imgoff"):
        node.swarm("service", "rm", name)


def test_bad_healthcheck_input_is_refused_and_changes_nothing(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "-d", "--name", "steady", "--stop-grace-period", "1s",
               *CHECK, image, "sh", "-c", "touch /tmp/ok; exec sleep 3600")
    before = node.service("steady")
    listing = node.swarm("service", "ls", "-q").stdout
    cases = [
        (["service", "create", "--name", "neg", "--health-interval", "-1s", image],
         'invalid duration "-1s" for --health-interval: must not be negative'),
        (["service", "create", "--name", "neg", "--health-timeout=-1s", image],
         "--health-timeout: must not be negative"),
        (["service", "create", "--name", "neg", "--health-start-period", "-2s", image],
         "--health-start-period: must not be negative"),
        (["service", "create", "--name", "neg", "--health-retries", "-1", image],
         "invalid retries -1 for --health-retries"),
        (["service", "create", "--name", "neg", "--no-healthcheck", "--health-cmd", "true",
          image], "--no-healthcheck conflicts with --health-* options"),
        (["service", "update", "--health-interval", "-1s", "steady"], "must not be negative"),
        (["service", "update", "--health-retries", "-1", "steady"], "--health-retries"),
        (["service", "update", "--no-healthcheck", "--health-cmd", "x", "steady"], "conflicts"),
    ]
    for args, needle in cases:
        res = node.swarm(*args, check=False)
        assert res.returncode != 0, (args, res.stdout)
        assert needle in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr and "usage:" not in res.stderr, res.stderr
    assert node.swarm("service", "ls", "-q").stdout == listing
    after = node.service("steady")
    assert after.meta.version == before.meta.version and after.spec == before.spec
    node.swarm("service", "rm", "steady")
