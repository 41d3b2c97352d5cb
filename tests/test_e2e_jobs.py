"""End to end on one node: jobs (`--mode replicated-job|global-job`) on real podman
containers through the real CLI: max-concurrent, completion, `service ls`, the
progress display's exit status, re-running on update, and bad input."""
from __future__ import annotations

import pytest

from lab import images
from proto import objects_pb2 as pb
from tests.cluster import SingleNode
from tests.helpers import wait

pytestmark = pytest.mark.e2e

_ACTIVE = (pb.ASSIGNED, pb.ACCEPTED, pb.PREPARING, pb.READY, pb.STARTING, pb.RUNNING)


@pytest.fixture(scope="module")
def image() -> str:
    return images.ensure_demo_image()


@pytest.fixture(scope="module")
def node(tmp_path_factory, image):
    n = SingleNode(tmp_path_factory.mktemp("jobs"))
    try:
        n.init()
        yield n
    finally:
        n.destroy()


def _complete(node: SingleNode, name: str, version: int) -> list[pb.Task]:
    svc = node.service(name)
    return [t for t in node.tasks(name)
            if t.spec_version == version == svc.spec_version and t.status.state == pb.COMPLETE]


def _watch_run(node: SingleNode, name: str, version: int, completions: int) -> int:
    """Polls the task list until the job's iteration `version` has `completions`
    COMPLETE tasks; returns the most tasks seen active (placed, not ended) at once."""
    peak = 0

    def done() -> bool:
        nonlocal peak
        tasks = [t for t in node.tasks(name) if t.spec_version == version]
        active = [t for t in tasks if t.status.state in _ACTIVE]
        peak = max(peak, len(active))
        return sum(1 for t in tasks if t.status.state == pb.COMPLETE) >= completions

    wait(done, 90, f"{completions} completions of {name}", interval=0.1)
    return peak


def test_replicated_job_max_concurrent_and_completion(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "-d", "--name", "batch", "--mode", "replicated-job",
               "--replicas", "6", "--max-concurrent", "2", image, "sh", "-c", "sleep 1")
    peak = _watch_run(node, "batch", 1, 6)
    assert 1 <= peak <= 2, peak
    tasks = node.tasks("batch")
    assert sorted(t.slot for t in tasks if t.status.state == pb.COMPLETE) == [1, 2, 3, 4, 5, 6]
    assert all(t.status.state == pb.COMPLETE for t in tasks), \
        [(t.slot, pb.TaskState.Name(t.status.state)) for t in tasks]
    ls = node.swarm("service", "ls").stdout
    line = next(l for l in ls.splitlines() if " batch " in f" {l} ")
    assert "replicated job" in line and "0/0 (6/6 completed)" in line, line
    ps = node.swarm("service", "ps", "batch").stdout
    assert sum(1 for l in ps.splitlines() if "Complete" in l) == 6, ps

    node.swarm("service", "update", "-d", "batch")  # an update re-runs the job
    assert node.service("batch").spec_version == 2
    peak = _watch_run(node, "batch", 2, 6)
    assert 1 <= peak <= 2, peak
    assert len(_complete(node, "batch", 2)) == 6
    node.swarm("service", "rm", "batch")


def test_progress_ends_when_the_job_completes(node: SingleNode, image: str) -> None:
    out = node.swarm("service", "create", "--name", "quick", "--mode", "replicated-job",
                     "--replicas", "2", image, "true")
    assert "job progress: 2 out of 2 complete" in out.stdout, out.stdout
    assert "verify: Job" in out.stdout and "complete" in out.stdout
    assert len(_complete(node, "quick", 1)) == 2
    out = node.swarm("service", "scale", "quick=3")  # as Docker: 3 completions, a re-run
    assert "job progress: 3 out of 3 complete" in out.stdout, out.stdout
    assert len(_complete(node, "quick", 2)) == 3
    node.swarm("service", "rm", "quick")


def test_a_job_that_cannot_complete_exits_non_zero(node: SingleNode, image: str) -> None:
    res = node.swarm("service", "create", "--name", "broken", "--mode", "replicated-job",
                     "--restart-max-attempts", "1", "--restart-delay", "0s",
                     image, "sh", "-c", "exit 3", check=False)
    assert res.returncode != 0, res.stdout
    assert "job cannot complete" in res.stderr, (res.stdout, res.stderr)
    failed = [t for t in node.tasks("broken") if t.status.state == pb.FAILED]
    assert len(failed) == 2  # the first run and its one restart
    node.swarm("service", "rm", "broken")


def test_global_job_runs_once_on_the_node(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "--name", "everyone", "--mode", "global-job",
               image, "true")
    tasks = node.tasks("everyone")
    assert [(t.node_id, t.status.state) for t in tasks] == [(node.node_id, pb.COMPLETE)]
    ls = node.swarm("service", "ls").stdout
    line = next(l for l in ls.splitlines() if " everyone " in f" {l} ")
    assert "global job" in line and "0/0 (1/1 completed)" in line, line
    node.swarm("service", "rm", "everyone")


@pytest.mark.parametrize("args, needle", [
    (["--max-concurrent", "2"], "max-concurrent can only be used with replicated-job mode"),
    (["--mode", "global-job", "--replicas", "2"],
     "replicas can only be used with replicated or replicated-job mode"),
    (["--mode", "replicated-job", "--replicas", "-1"],
     "invalid replicas value -1: must be a non-negative integer"),
    (["--mode", "replicated-job", "--max-concurrent", "-1"],
     "invalid max-concurrent value -1 for --max-concurrent"),
])
def test_bad_job_input_is_refused(node: SingleNode, image: str, args: list[str],
                                  needle: str) -> None:
    res = node.swarm("service", "create", "--name", "bad", *args, image, "true", check=False)
    assert res.returncode != 0, (args, res.stdout)
    assert needle in res.stderr, (args, res.stderr)
    assert "Traceback" not in res.stderr
    assert "bad" not in node.swarm("service", "ls").stdout
