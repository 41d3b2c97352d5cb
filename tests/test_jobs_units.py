"""Unit tests for jobs outside the orchestrator: the CLI's `--mode replicated-job|global-job`
and `--max-concurrent`, its REPLICAS column and job progress, and the control API's
re-run of a job on every update."""
from __future__ import annotations

import pytest

from cli import format as fmt
from cli.parsing import UsageError
from cli.progress import compute_progress
from manager.controlapi import services
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.test_cli_units import create, update


def test_replicated_job_flags() -> None:
    s = create(["--mode", "replicated-job", "--replicas", "6", "--max-concurrent", "2",
                "busybox", "true"])
    assert s.WhichOneof("mode") == "replicated_job"
    assert (s.replicated_job.total_completions, s.replicated_job.max_concurrent) == (6, 2)
    assert s.task.restart.condition == pb.RestartPolicy.ON_FAILURE
    s = create(["--mode", "replicated-job", "busybox"])
    assert (s.replicated_job.total_completions, s.replicated_job.max_concurrent) == (1, 0)
    s = create(["--mode", "replicated-job", "--restart-condition", "none", "busybox"])
    assert s.task.restart.condition == pb.RestartPolicy.NONE
    s = update(s, ["--replicas", "3", "--max-concurrent", "1"])
    assert (s.replicated_job.total_completions, s.replicated_job.max_concurrent) == (3, 1)


def test_global_job_flags() -> None:
    s = create(["--mode", "global-job", "busybox"])
    assert s.WhichOneof("mode") == "global_job"
    assert s.task.restart.condition == pb.RestartPolicy.ON_FAILURE


@pytest.mark.parametrize("argv, message", [
    (["--max-concurrent", "2", "busybox"],
     "max-concurrent can only be used with replicated-job mode"),
    (["--mode", "global", "--max-concurrent", "2", "busybox"],
     "max-concurrent can only be used with replicated-job mode"),
    (["--mode", "global-job", "--max-concurrent", "2", "busybox"],
     "max-concurrent can only be used with replicated-job mode"),
    (["--mode", "global-job", "--replicas", "2", "busybox"],
     "replicas can only be used with replicated or replicated-job mode"),
    (["--mode", "replicated-job", "--replicas", "-1", "busybox"],
     "invalid replicas value -1: must be a non-negative integer"),
    (["--mode", "replicated-job", "--max-concurrent", "-2", "busybox"],
     "invalid max-concurrent value -2 for --max-concurrent: must be a non-negative integer"),
    (["--mode", "job", "busybox"], 'invalid mode "job"'),
])
def test_bad_job_input_is_refused(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        create(argv)


@pytest.mark.parametrize("argv,flag", [
    (["--mode", "replicated-job", "--update-parallelism", "2", "busybox"], "--update-parallelism"),
    (["--mode", "global-job", "--update-order", "start-first", "busybox"], "--update-order"),
    (["--mode", "replicated-job", "--rollback-monitor", "3s", "busybox"], "--rollback-monitor"),
])
def test_update_and_rollback_flags_are_refused_for_jobs(argv: list[str], flag: str) -> None:
    with pytest.raises(UsageError, match=f"{flag} cannot be used with job modes"):
        create(argv)


def test_update_flags_on_an_existing_job_are_refused() -> None:
    job = create(["--mode", "replicated-job", "--replicas", "3", "busybox"])
    with pytest.raises(UsageError, match="--update-delay cannot be used with job modes"):
        update(job, ["--update-delay", "2s"])
    replicated = create(["--replicas", "3", "busybox"])
    assert update(replicated, ["--update-delay", "2s"]).update.delay.nanos == 2 * 10**9


def job_service(completions: int | None, max_concurrent: int = 0) -> pb.Service:
    svc = pb.Service(id="jid", spec_version=2)
    svc.spec.annotations.name = "job"
    if completions is None:
        svc.spec.global_job.SetInParent()
    else:
        svc.spec.replicated_job.total_completions = completions
        svc.spec.replicated_job.max_concurrent = max_concurrent
    return svc


def task(slot: int, state: int, desired: int = pb.RUNNING, version: int = 2,
         node: str = "n1", tid: str = "") -> pb.Task:
    t = pb.Task(id=tid or f"t{slot}-{state}-{version}", service_id="jid", slot=slot,
                node_id=node, desired_state=desired, spec_version=version)
    t.status.state = state
    return t


def test_job_replicas_column_and_mode() -> None:
    svc = job_service(5, 2)
    tasks = [task(1, pb.COMPLETE, pb.COMPLETE), task(2, pb.COMPLETE, pb.COMPLETE),
             task(3, pb.COMPLETE, pb.COMPLETE), task(4, pb.RUNNING), task(5, pb.RUNNING),
             task(1, pb.COMPLETE, pb.COMPLETE, version=1)]
    row = fmt.service_row(svc, tasks)
    assert row["Mode"] == "replicated job"
    assert row["Replicas"] == "2/2 (3/5 completed)"
    glob = job_service(None)
    gtasks = [task(0, pb.COMPLETE, pb.COMPLETE, node="a"), task(0, pb.RUNNING, node="b")]
    row = fmt.service_row(glob, gtasks)
    assert row["Mode"] == "global job"
    assert row["Replicas"] == "1/1 (1/2 completed)"


def test_job_progress_completes_or_cannot() -> None:
    svc = job_service(2)
    running = compute_progress(svc, [task(1, pb.COMPLETE, pb.COMPLETE), task(2, pb.RUNNING)])
    assert running.header() == "job progress: 1 out of 2 complete"
    assert not running.converged and not running.cannot_finish
    done = compute_progress(svc, [task(1, pb.COMPLETE, pb.COMPLETE),
                                  task(2, pb.COMPLETE, pb.COMPLETE)])
    assert done.converged
    retrying = task(2, pb.FAILED)  # waiting for its restart delay: desired still RUNNING
    assert not compute_progress(svc, [task(1, pb.COMPLETE), retrying]).cannot_finish
    gave_up = task(2, pb.FAILED, pb.SHUTDOWN)
    gave_up.status.err = "task: non-zero exit (3)"
    progress = compute_progress(svc, [task(1, pb.COMPLETE), gave_up])
    assert progress.cannot_finish == "job cannot complete: task 2/2 failed: task: non-zero exit (3)"


def test_every_update_of_a_job_is_a_new_iteration() -> None:
    svc = job_service(3)
    svc.spec.task.container.image = "busybox"
    svc.spec.task.container.stop_grace_period.nanos = 10 * 10**9  # as normalised
    svc.meta.version = 3
    same = cpb.UpdateServiceRequest(service_version=3, spec=svc.spec)
    again = services.updated_service(svc, same, services.Refs())
    assert again is not None and again.spec_version == 3 and again.spec == svc.spec
    assert not again.HasField("previous_spec")
    changed = pb.ServiceSpec()
    changed.CopyFrom(svc.spec)
    changed.replicated_job.total_completions = 4
    new = services.updated_service(svc, cpb.UpdateServiceRequest(service_version=3, spec=changed),
                                   services.Refs())
    assert new is not None and new.spec_version == 3
    assert new.previous_spec == svc.spec and new.spec == changed
    assert new.update_status.state == pb.UpdateStatus.UNKNOWN
