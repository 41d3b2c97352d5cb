"""`swarm stack rollback` and `swarm stack deploy --rollback-on-failure` against a fake
Control API (cli/commands_stack.py), through `cli.main.main`: what is printed, the
exit codes, the calls made."""
from __future__ import annotations

from typing import Any

from cli.client import FAST_METHODS, RpcFailure
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.test_cli_stack import (Change, fake, make_service, run, stack_file,  # noqa: F401
                                  waiting_control)

PAUSED_WHY = ("update paused due to failure or early termination of task t9 "
              "(task: non-zero exit (1))")


def update(name: str, sid: str, rollback: bool = False) -> Change:
    return Change(action=Change.UPDATE, kind="service", name=name, id=sid,
                  fields=["task.container.image"], rollback=rollback)


def test_rollback_on_failure_needs_waiting(capsys, fake, stack_file) -> None:
    client = fake({})
    code, out, err = run(capsys, "stack", "deploy", "-c", str(stack_file), "-d",
                         "--rollback-on-failure", "app")
    assert (code, out) == (1, "")
    assert "--rollback-on-failure" in err and "can't be used with --detach (-d)" in err
    code, out, err = run(capsys, "stack", "deploy", "-c", str(stack_file), "--dry-run",
                         "--rollback-on-failure", "app")
    assert code == 1 and "can't be used with --dry-run" in err
    assert client.calls == []


def test_a_failed_deploy_rolls_the_whole_stack_back(capsys, fake, stack_file) -> None:
    web = make_service("w" * 25, "app_web", pb.UpdateStatus.PAUSED, PAUSED_WHY)
    db = make_service("d" * 25, "app_db", pb.UpdateStatus.COMPLETED, "update completed")
    services = {web.id: web, db.id: db}

    def roll_back(request: cpb.RollbackStackRequest) -> Any:
        assert request.name == "app" and not request.dry_run
        web.update_status.state = pb.UpdateStatus.ROLLBACK_COMPLETED
        web.update_status.message = "rollback completed"
        return cpb.RollbackStackResponse(changes=[
            update("app_web", web.id, rollback=True),
            Change(action=Change.REMOVE, kind="service", name="app_new", id="n" * 25)])

    client = fake({"DeployStack": cpb.DeployStackResponse(changes=[
                       update("app_web", web.id),
                       Change(action=Change.CREATE, kind="service", name="app_new",
                              id="n" * 25)]),
                   "RollbackStack": roll_back, **waiting_control(services).answers})
    code, out, err = run(capsys, "stack", "deploy", "-c", str(stack_file),
                         "--rollback-on-failure", "app")
    assert code == 1
    # the first failure rolls back at once: app_new is not waited for
    assert client.methods() == ["DeployStack", "GetService", "ListTasks", "RollbackStack",
                                "GetService", "ListTasks"]
    assert out.splitlines()[:3] == [
        f"Updating service app_web (id: {web.id})", "Creating service app_new",
        f"Waiting for service app_web (id: {web.id})"]
    assert "Removing service app_new" in out.splitlines()
    assert f"Rolling back service app_web (id: {web.id})" in out.splitlines()
    assert f"verify: Service {web.id} converged" in out
    lines = err.splitlines()
    assert lines[0] == f"Error: service app_web: {PAUSED_WHY}"
    assert lines[1] == ("Rolling back stack app to its previous definition: service(s) "
                        "app_web did not converge")
    assert lines[-1] == (f"Error: stack app: service app_web did not converge ({PAUSED_WHY}); "
                         "the stack was rolled back to its previous definition")


def test_a_deploy_that_converges_is_not_rolled_back(capsys, fake, stack_file) -> None:
    db = make_service("d" * 25, "app_db", pb.UpdateStatus.COMPLETED, "update completed")
    client = fake({"DeployStack": cpb.DeployStackResponse(changes=[update("app_db", db.id)]),
                   **waiting_control({db.id: db}).answers})
    code, _, err = run(capsys, "stack", "deploy", "-q", "-c", str(stack_file),
                       "--rollback-on-failure", "app")
    assert (code, err) == (0, "")
    assert "RollbackStack" not in client.methods()


def test_a_failed_first_deploy_says_it_could_not_roll_back(capsys, fake, stack_file) -> None:
    web = make_service("w" * 25, "app_web", pb.UpdateStatus.PAUSED, PAUSED_WHY)
    fake({"DeployStack": cpb.DeployStackResponse(changes=[update("app_web", web.id)]),
          "RollbackStack": RpcFailure("FAILED_PRECONDITION",
                                      "stack app does not have a previous definition"),
          **waiting_control({web.id: web}).answers})
    code, _, err = run(capsys, "stack", "deploy", "-q", "-c", str(stack_file),
                       "--rollback-on-failure", "app")
    assert code == 1
    assert err.splitlines()[-1] == (
        f"Error: stack app: service app_web did not converge ({PAUSED_WHY}), and the stack "
        "could not be rolled back: Error response from daemon: stack app does not have a "
        "previous definition")


def test_stack_rollback_prints_the_changes_and_waits(capsys, fake) -> None:
    web = make_service("w" * 25, "app_web", pb.UpdateStatus.ROLLBACK_COMPLETED,
                       "rollback completed")
    client = fake({"RollbackStack": cpb.RollbackStackResponse(changes=[
                       update("app_web", web.id, rollback=True),
                       Change(action=Change.REMOVE, kind="service", name="app_new",
                              id="n" * 25),
                       Change(action=Change.REMOVE, kind="config", name="app_conf",
                              id="c" * 25)]),
                   **waiting_control({web.id: web}).answers})
    code, out, err = run(capsys, "stack", "rollback", "app")
    assert (code, err) == (0, "")
    assert out.splitlines()[:4] == [
        "Removing service app_new", f"Rolling back service app_web (id: {web.id})",
        "Removing config app_conf", f"Waiting for service app_web (id: {web.id})"]
    assert out.splitlines()[-1] == f"verify: Service {web.id} converged"
    assert client.methods() == ["RollbackStack", "GetService", "ListTasks"]


def test_stack_rollback_names_a_service_whose_rollback_paused(capsys, fake) -> None:
    web = make_service("w" * 25, "app_web", pb.UpdateStatus.ROLLBACK_PAUSED,
                       "rollback paused due to failure or early termination of task t3")
    fake({"RollbackStack": cpb.RollbackStackResponse(changes=[
              update("app_web", web.id, rollback=True)]),
          **waiting_control({web.id: web}).answers})
    code, _, err = run(capsys, "stack", "rollback", "-q", "app")
    assert code == 1
    assert ("Error: service app_web: rollback paused due to failure or early termination "
            "of task t3") in err
    assert err.splitlines()[-1] == "Error: stack app: 1 service(s) did not converge: app_web"


def test_stack_rollback_detached_dry_run_and_refused(capsys, fake) -> None:
    client = fake({"RollbackStack": cpb.RollbackStackResponse(changes=[
        update("app_web", "w" * 25, rollback=True)])})
    code, out, _ = run(capsys, "stack", "rollback", "-d", "app")
    assert (code, out) == (0, f"Rolling back service app_web (id: {'w' * 25})\n")
    code, out, _ = run(capsys, "stack", "rollback", "--dry-run", "app")
    assert code == 0 and out.splitlines() == [
        f"Would roll back service app_web (id: {'w' * 25}): task.container.image",
        "Dry run: nothing was changed"]
    assert [r.dry_run for m, r, _ in client.calls] == [False, True]
    fake({"RollbackStack": RpcFailure("FAILED_PRECONDITION",
                                      "stack app does not have a previous definition")})
    code, out, err = run(capsys, "stack", "rollback", "app")
    assert (code, out) == (1, "")
    assert "stack app does not have a previous definition" in err


def test_rollback_stack_is_a_write() -> None:
    assert "RollbackStack" not in FAST_METHODS
