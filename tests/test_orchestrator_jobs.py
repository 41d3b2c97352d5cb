"""Unit tests for manager/orchestrator/jobs.py: replicated and global jobs on the
store's own state machine (the `Sim` of tests/test_orchestrator.py)."""
from __future__ import annotations

from typing import Optional

import pytest

from proto import objects_pb2 as pb
from tests.test_orchestrator import Sim, mk_node, mk_service


@pytest.fixture
def sim() -> Sim:
    s = Sim()
    for i in range(3):
        s.put(mk_node(f"n{i}"))
    return s


def mk_job(sid: str, completions: Optional[int], max_concurrent: int = 0,
           condition: int = pb.RestartPolicy.ON_FAILURE, **kw) -> pb.Service:
    """A replicated job of `completions`, or a global job when None."""
    s = mk_service(sid, 1, condition=condition, **kw)
    if completions is None:
        s.spec.global_job.SetInParent()
    else:
        s.spec.replicated_job.total_completions = completions
        s.spec.replicated_job.max_concurrent = max_concurrent
    return s


def active(sim: Sim, sid: str) -> list[pb.Task]:
    """Tasks the job still wants running and that have not ended."""
    return [t for t in sim.live(sid) if t.status.state <= pb.RUNNING]


def complete_running(sim: Sim, sid: str) -> int:
    """The scripted agent: every RUNNING task of the job exits 0."""
    done = 0
    for t in sim.tasks(sid):
        if t.status.state == pb.RUNNING:
            sim.set_state(t.id, pb.COMPLETE)
            done += 1
    return done


def completed(sim: Sim, sid: str) -> list[pb.Task]:
    return [t for t in sim.tasks(sid) if t.status.state == pb.COMPLETE]


def test_replicated_job_runs_at_most_max_concurrent_and_completes(sim: Sim):
    sim.put(mk_job("job", 6, max_concurrent=2))
    peak = 0
    for _ in range(10):
        sim.settle()
        now_active = active(sim, "job")
        peak = max(peak, len(now_active))
        assert len(now_active) <= 2
        if not complete_running(sim, "job"):
            break
    sim.settle()
    assert peak == 2
    done = completed(sim, "job")
    assert sorted(t.slot for t in done) == [1, 2, 3, 4, 5, 6]
    assert len(sim.tasks("job")) == 6
    assert all(t.desired_state == pb.COMPLETE for t in done)
    assert active(sim, "job") == []
    assert sim.reconcile().actions == []


def test_max_concurrent_defaults_to_all(sim: Sim):
    sim.put(mk_job("job", 4))
    sim.settle()
    assert len(active(sim, "job")) == 4


def test_completed_task_is_not_restarted_even_with_condition_any(sim: Sim):
    sim.put(mk_job("job", 1, condition=pb.RestartPolicy.ANY))
    sim.settle()
    complete_running(sim, "job")
    sim.now += 60
    sim.settle()
    assert len(sim.tasks("job")) == 1 and len(completed(sim, "job")) == 1
    assert sim.reconcile().wake_at is None


def test_failed_task_is_retried_per_restart_policy(sim: Sim):
    sim.put(mk_job("job", 2, max_concurrent=1, delay=2, max_attempts=1))
    sim.settle()
    first = active(sim, "job")[0]
    assert first.slot == 1
    sim.set_state(first.id, pb.FAILED, 1)
    sim.now += 1
    plan = sim.settle()
    assert plan.wake_at == sim.now + 1  # the restart delay; the slot stays occupied
    assert len(sim.tasks("job")) == 1
    sim.now += 1
    sim.settle()
    retry = active(sim, "job")[0]
    assert retry.slot == 1 and retry.id != first.id and len(retry.restarts) == 1
    sim.set_state(retry.id, pb.FAILED, 1)  # max_attempts reached: slot 1 gives up
    sim.now += 5
    sim.settle()
    second = active(sim, "job")[0]
    assert second.slot == 2
    complete_running(sim, "job")
    sim.now += 5
    sim.settle()
    assert active(sim, "job") == []
    assert [t.slot for t in completed(sim, "job")] == [2]
    assert sim.reconcile().actions == []


def test_condition_none_never_retries(sim: Sim):
    sim.put(mk_job("job", 1, condition=pb.RestartPolicy.NONE))
    sim.settle()
    sim.set_state(active(sim, "job")[0].id, pb.FAILED, 3)
    sim.now += 60
    sim.settle()
    assert len(sim.tasks("job")) == 1 and active(sim, "job") == []


def test_global_job_once_per_node_and_on_a_node_that_joins(sim: Sim):
    sim.put(mk_node("n1", availability=pb.NodeSpec.DRAIN))
    sim.put(mk_job("once", None))
    sim.settle()
    assert sorted(t.node_id for t in active(sim, "once")) == ["n0", "n2"]
    complete_running(sim, "once")
    sim.settle()
    assert active(sim, "once") == []
    sim.put(mk_node("n3"))
    sim.settle()
    assert [t.node_id for t in active(sim, "once")] == ["n3"]
    complete_running(sim, "once")
    sim.settle()
    assert sorted(t.node_id for t in completed(sim, "once")) == ["n0", "n2", "n3"]
    assert len(sim.tasks("once")) == 3
    assert sim.reconcile().actions == []


def rerun(sim: Sim, sid: str) -> None:
    """What the control API does on `service update` of a job: a new iteration."""
    s = pb.Service()
    s.CopyFrom(sim.service(sid))
    s.spec_version += 1
    sim.put(s)


def test_update_reruns_a_replicated_job(sim: Sim):
    sim.put(mk_job("job", 3))
    sim.settle()
    complete_running(sim, "job")
    sim.settle()
    assert len(completed(sim, "job")) == 3
    rerun(sim, "job")
    sim.settle()
    now_active = active(sim, "job")
    assert sorted(t.slot for t in now_active) == [1, 2, 3]
    assert all(t.spec_version == 2 for t in now_active)
    complete_running(sim, "job")
    sim.settle()
    assert len(completed(sim, "job")) == 6 and len(sim.tasks("job")) == 6


def test_update_during_a_run_stops_the_old_iteration(sim: Sim):
    sim.put(mk_job("job", 4, max_concurrent=2))
    sim.settle()
    old = {t.id for t in active(sim, "job")}
    rerun(sim, "job")
    sim.settle()
    tasks = sim.tables["task"]
    assert all(tasks[i].desired_state == pb.SHUTDOWN for i in old)
    assert [t.spec_version for t in active(sim, "job")] == [2, 2]


def test_update_reruns_a_global_job(sim: Sim):
    sim.put(mk_job("once", None))
    sim.settle()
    complete_running(sim, "once")
    sim.settle()
    rerun(sim, "once")
    sim.settle()
    assert sorted(t.node_id for t in active(sim, "once")) == ["n0", "n1", "n2"]


def test_reruns_keep_a_bounded_history_with_the_newest_completion(sim: Sim):
    sim.put(mk_job("job", 2))
    for _ in range(8):
        sim.settle()
        complete_running(sim, "job")
        sim.settle()
        rerun(sim, "job")
    sim.settle()
    complete_running(sim, "job")
    sim.settle()
    version = sim.service("job").spec_version
    for slot in (1, 2):
        tasks = [t for t in sim.tasks("job") if t.slot == slot]
        assert len(tasks) == 5  # the default task history retention limit
        assert any(t.spec_version == version and t.status.state == pb.COMPLETE for t in tasks)
