"""`swarm network prune [-f] [--filter until=|label=|label!=]`, as Docker 20.10's.

Run in process against the real Control API over the seeded in-memory cluster
(tests/cliserver.py), where front (web), back (db) and app_default (the stack's
app_web) are attached to services, ingress is the routing mesh and spare is unused:
prune removes spare only, prints Docker's "Deleted Networks:" list, asks first
unless -f (anything but y keeps everything), and keeps what its filters leave out.
"""
from __future__ import annotations

import io
import sys

import pytest

from cli.commands_network import PRUNE_WARNING, prune_candidates, prune_filter
from proto import model
from proto import objects_pb2 as pb
from raft import actions
from tests.cliserver import InProcessClient, run, serve

SEEDED = ["app_default", "back", "front", "ingress", "spare"]


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> InProcessClient:
    return serve(monkeypatch)


def names(cluster: InProcessClient) -> list[str]:
    return sorted(n.spec.annotations.name for n in cluster.control.store.list("network"))


def answer(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def test_prompt_text_is_dockers_with_service_for_container() -> None:
    assert PRUNE_WARNING == ("WARNING! This will remove all custom networks not used by at "
                             "least one service.\nAre you sure you want to continue? [y/N] ")


def test_force_removes_only_the_networks_no_service_uses(capsys, cluster) -> None:
    code, out, err = run(capsys, "network", "prune", "-f")
    assert (code, out, err) == (0, "Deleted Networks:\nspare\n\n", "")
    # front, back (services), app_default (a stack's service) and ingress are kept
    assert names(cluster) == ["app_default", "back", "front", "ingress"]
    assert cluster.methods.count("RemoveNetwork") == 1   # the used ones are not even tried
    code, out, _ = run(capsys, "network", "prune", "--force")
    assert (code, out) == (0, "")          # nothing left to prune: nothing printed
    assert names(cluster) == ["app_default", "back", "front", "ingress"]


@pytest.mark.parametrize("reply", ["n\n", "\n", "", "yes\n", "N\n"])
def test_anything_but_y_at_the_prompt_removes_nothing(capsys, cluster, monkeypatch,
                                                      reply) -> None:
    answer(monkeypatch, reply)
    code, out, err = run(capsys, "network", "prune")
    assert (code, out, err) == (0, PRUNE_WARNING, "")
    assert "RemoveNetwork" not in cluster.methods and "ListNetworks" not in cluster.methods
    assert names(cluster) == SEEDED


@pytest.mark.parametrize("reply", ["y\n", "Y\n"])
def test_y_at_the_prompt_prunes(capsys, cluster, monkeypatch, reply) -> None:
    answer(monkeypatch, reply)
    code, out, _ = run(capsys, "network", "prune")
    assert (code, out) == (0, PRUNE_WARNING + "Deleted Networks:\nspare\n\n")
    assert "spare" not in names(cluster)


def _labelled(capsys: pytest.CaptureFixture[str]) -> None:
    for name, labels in (("t-test", ["env=test"]), ("t-prod", ["env=prod", "keep"]),
                         ("t-none", [])):
        argv = [arg for label in labels for arg in ("--label", label)]
        assert run(capsys, "network", "create", *argv, name)[0] == 0


def test_label_filters_choose_what_is_pruned(capsys, cluster) -> None:
    _labelled(capsys)
    code, out, _ = run(capsys, "network", "prune", "-f", "--filter", "label=env=test")
    assert (code, out) == (0, "Deleted Networks:\nt-test\n\n")
    code, out, _ = run(capsys, "network", "prune", "-f", "--filter", "label!=keep")
    assert (code, out) == (0, "Deleted Networks:\nspare\nt-none\n\n")
    assert names(cluster) == SEEDED[:4] + ["t-prod"]
    code, out, _ = run(capsys, "network", "prune", "-f", "--filter", "label=env")
    assert (code, out) == (0, "Deleted Networks:\nt-prod\n\n")


def test_label_filter_never_prunes_a_used_network(capsys, cluster) -> None:
    # the stack's network carries the stack label; its service still uses it
    code, out, _ = run(capsys, "network", "prune", "-f", "--filter",
                       "label=com.docker.stack.namespace=app")
    assert (code, out) == (0, "")
    assert names(cluster) == SEEDED


def test_until_keeps_the_networks_created_after_it(capsys, cluster) -> None:
    code, out, _ = run(capsys, "network", "prune", "-f", "--filter", "until=1h")
    assert (code, out) == (0, "")           # every network is younger than an hour
    assert "RemoveNetwork" not in cluster.methods and names(cluster) == SEEDED
    code, out, _ = run(capsys, "network", "prune", "-f", "--filter", "until=-1m")
    assert (code, out) == (0, "Deleted Networks:\nspare\n\n")


@pytest.mark.parametrize("argv, message", [
    (["--filter", "dangling=true"], 'invalid filter "dangling"'),
    (["--filter", "until=tomorrow"], 'invalid value "tomorrow" for --filter until'),
    (["--filter", "until=1h", "--filter", "until=2h"], "more than one until filter"),
    (["--filter", "label"], 'bad format of filter "label"'),
])
def test_a_bad_filter_is_refused_before_asking(capsys, cluster, monkeypatch, argv,
                                               message) -> None:
    answer(monkeypatch, "y\n")
    code, out, err = run(capsys, "network", "prune", *argv)
    assert (code, out) == (1, "")
    assert err.startswith("Error: ") and message in err, err
    assert cluster.methods == [] and names(cluster) == SEEDED


def test_ingress_is_kept_even_when_no_service_publishes_a_port(capsys, cluster) -> None:
    """The manager would let ingress go once nothing publishes on it; prune never
    removes it (as Docker: the routing mesh is removed only by name)."""
    assert run(capsys, "service", "rm", "web")[0] == 0   # the only service publishing
    code, out, _ = run(capsys, "network", "prune", "-f")
    assert code == 0 and out == "Deleted Networks:\nspare\n\n"
    assert "ingress" in names(cluster)


def test_a_network_tasks_still_hold_is_kept_silently(capsys, cluster) -> None:
    """No service names spare, but a task that is stopping still holds an address on it:
    the manager refuses its removal and prune goes on, as Docker's skips "in use"."""
    store = cluster.control.store
    spare = store.by_name("network", "spare")
    assert isinstance(spare, pb.Network)
    task = pb.Task(id=model.new_id(), node_id="w1", slot=9, desired_state=pb.SHUTDOWN)
    task.status.state = pb.RUNNING
    task.networks.add(network_id=spare.id, addresses=["10.0.3.9/24"])
    store.commit([actions.create(task)])
    code, out, err = run(capsys, "network", "prune", "-f")
    assert (code, out, err) == (0, "", "")
    assert "RemoveNetwork" in cluster.methods and names(cluster) == SEEDED


def test_label_not_filters_leave_out_a_network_only_when_all_match() -> None:
    """Docker's rule: every `label` must match; `label!` leaves a network out only when
    every `label!` value matches it."""
    net = pb.Network(id="n1")
    net.spec.annotations.name = "n"
    net.spec.annotations.labels.update({"a": "1", "b": "2"})
    chosen = [prune_filter(["label!=a", "label!=c"], 0), prune_filter(["label=a=1"], 0),
              prune_filter([], 0)]
    assert all(prune_candidates([net], [], wanted) == [net] for wanted in chosen)
    left_out = [prune_filter(["label!=a", "label!=b=2"], 0), prune_filter(["label=a=2"], 0),
                prune_filter(["label=a", "label=c"], 0)]
    assert all(prune_candidates([net], [], wanted) == [] for wanted in left_out)
