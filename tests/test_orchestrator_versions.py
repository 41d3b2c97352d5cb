"""The sweep of superseded stack secret versions (manager/orchestrator/reaper.py,
manager/fileversions.py), on the store's own state machine with a scripted agent."""
from __future__ import annotations

from manager import fileversions
from proto import objects_pb2 as pb
from tests.test_orchestrator import Sim, mk_service, sim  # noqa: F401  (fixture)


def mk_secret(sid: str, name: str, superseded_by: str = "") -> pb.Secret:
    s = pb.Secret(id=sid)
    s.spec.annotations.name = name
    s.spec.data = name.encode()
    if superseded_by:
        s.spec.annotations.labels[fileversions.SUPERSEDED] = superseded_by
    return s


def uses(service: pb.Service, secret: pb.Secret) -> pb.Service:
    del service.spec.task.container.secrets[:]
    service.spec.task.container.secrets.add(secret_id=secret.id,
                                            secret_name=secret.spec.annotations.name,
                                            target="pw")
    return service


def test_a_superseded_version_goes_once_the_roll_away_from_it_is_done(sim: Sim) -> None:
    old = sim.put(mk_secret("s1", "app_pw"))
    sim.put(uses(mk_service(replicas=2), old))
    sim.settle()
    new = sim.put(mk_secret("s2", "app_pw.v2"))
    sim.put(mk_secret("s1", "app_pw", superseded_by=new.id))
    svc = pb.Service()
    svc.CopyFrom(sim.service("web"))
    svc.previous_spec.CopyFrom(svc.spec)
    uses(svc, new)
    svc.spec_version += 1
    svc.update_status.state = pb.UpdateStatus.UPDATING
    sim.put(svc)

    sim.step()      # the first old task is told to stop; both old tasks may still run
    assert "s1" in sim.tables["secret"], "removed while tasks could still be using it"
    sim.settle()
    assert sim.service("web").update_status.state == pb.UpdateStatus.COMPLETED
    assert all(r.secret_id == "s2" for t in sim.live("web")
               for r in t.spec.container.secrets)
    assert "s1" not in sim.tables["secret"], "the superseded version stayed"
    assert "s2" in sim.tables["secret"]


def test_a_version_a_paused_update_may_roll_back_to_stays(sim: Sim) -> None:
    old = sim.put(mk_secret("s1", "app_pw", superseded_by="s2"))
    sim.put(mk_secret("s2", "app_pw.v2"))
    svc = uses(mk_service(replicas=0), sim.tables["secret"]["s2"])
    svc.previous_spec.CopyFrom(uses(mk_service(replicas=0), old).spec)
    svc.update_status.state = pb.UpdateStatus.PAUSED
    sim.put(svc)
    sim.settle()
    assert "s1" in sim.tables["secret"]


def test_only_superseded_versions_are_swept(sim: Sim) -> None:
    sim.put(mk_secret("s1", "lonely"))      # used by nothing, but not a superseded version
    sim.settle()
    assert "s1" in sim.tables["secret"]
