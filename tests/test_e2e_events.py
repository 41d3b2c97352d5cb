"""`swarm events` on a real 3-manager lab: types and attributes, filters, times, formats,
and a stream that goes on, without losing or repeating anything, when its leader is killed.

One module-scoped lab for the whole module (CI time): the tests run in order
and the last one kills the leader. The command runs as a real process inside
a node (`Lab.exec_argv`), its standard output read line by line as it comes.
"""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from typing import Any, Optional

import grpc
import pytest

from lab.cluster import REPO, Lab
from lab.leadership import named_leaders
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.helpers import sw, wait
from tests.labfixtures import module_lab

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

MANAGERS = ("manager1", "manager2", "manager3")
JSON = "{{json .}}"

lab = module_lab(3, 0)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Events:
    """A running `swarm events ARGS` inside a lab node; its output lines as they arrive."""

    def __init__(self, lab: Lab, node: str, *args: str) -> None:
        argv, env = lab.exec_argv(node, [lab.python, "-m", "cli.main", "events", *args])
        # started with SIGINT ignored, as a background job of a shell without job control
        # starts it: `swarm events` must still stop on Ctrl-C (Events.stop sends SIGINT)
        self.proc = subprocess.Popen(argv, env=env, cwd=str(REPO), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=_ignore_sigint)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.lines),
                                          daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.errors),
                                          daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def events(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines)]

    def wait_for(self, what: str, cond: Any, timeout: float = 30.0) -> list[dict]:
        def seen() -> Optional[list[dict]]:
            found = [e for e in self.events() if cond(e)]
            return found or None
        try:
            return wait(seen, timeout, what, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstdout:\n" + "\n".join(self.lines) +
                                 "\nstderr:\n" + "\n".join(self.errors)) from None

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=10)
        for reader in self._readers:
            reader.join(5)
        return code

    def finish(self, timeout: float) -> int:
        """Waits for the command to exit by itself (--until)."""
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(5)
        return code


def api(lab: Lab, node: str) -> control_pb2_grpc.ControlStub:
    channel = grpc.insecure_channel(f"unix://{lab.data_dir(node) / 'swarm.sock'}")
    return control_pb2_grpc.ControlStub(channel)


def named(kind: str, action: str, name: str) -> Any:
    return lambda e: (e["Type"], e["Action"], e["Actor"]["Attributes"].get("name")) == \
        (kind, action, name)


def run_events(lab: Lab, *args: str) -> list[str]:
    res = sw(lab, "events", *args)
    return res.stdout.splitlines()


# --------------------------------------------------------------------- tests --

def test_events_of_every_type_with_their_attributes(lab: Lab, demo_image: str) -> None:
    image = demo_image
    started = time.time()
    stream = Events(lab, "manager1", "--format", JSON, "--since", f"{started:.3f}")
    try:
        sw(lab, "service", "create", "-d", "--name", "ev-web", "--label", "tier=front",
           "--stop-grace-period", "0s", image, "httpd", "-f", "-p", "8080")
        start = stream.wait_for("the task's start", lambda e: e["Type"] == "task"
                                and e["Action"] == "start")[0]
        attrs = start["Actor"]["Attributes"]
        assert attrs["service.name"] == "ev-web" and attrs["image"] == image
        assert attrs["name"] == f"ev-web.1.{start['Actor']['ID']}" and attrs["slot"] == "1"
        assert attrs["node.name"] in MANAGERS
        sw(lab, "service", "update", "-d", "--replicas", "2", "ev-web")
        stream.wait_for("replicas.old/new", lambda e: e["Actor"]["Attributes"].get(
            "replicas.new") == "2" and e["Actor"]["Attributes"]["replicas.old"] == "1")
        sw(lab, "service", "update", "-d", "--env-add", "COLOUR=blue", "ev-web")
        stream.wait_for("a rolling update starting", lambda e: e["Actor"]["Attributes"].get(
            "updatestate.new") == "updating")
        stream.wait_for("the rolling update completed", lambda e: e["Actor"]["Attributes"].get(
            "updatestate.new") == "completed", timeout=60)
        stream.wait_for("an old task's container died", lambda e: e["Type"] == "task"
                        and e["Action"] == "die"
                        and e["Actor"]["Attributes"].get("state") == "shutdown")
        sw(lab, "secret", "create", "ev-secret", "-", input="s3cret")
        sw(lab, "config", "create", "ev-config", "-", input="conf")
        sw(lab, "network", "create", "-d", "overlay", "ev-net")
        sw(lab, "node", "update", "--availability", "pause", "manager3")
        sw(lab, "node", "update", "--availability", "active", "manager3")
        for kind, name in (("secret", "ev-secret"), ("config", "ev-config"),
                           ("network", "ev-net")):
            sw(lab, kind, "rm", name)
        sw(lab, "service", "rm", "ev-web")
        stream.wait_for("the service removed", named("service", "remove", "ev-web"))
        pause = stream.wait_for("manager3 paused", lambda e: e["Type"] == "node" and e["Actor"][
            "Attributes"].get("availability.new") == "pause")[0]
        assert pause["Actor"]["Attributes"]["availability.old"] == "active"
        assert pause["Actor"]["Attributes"]["name"] == "manager3"
        for kind, name in (("secret", "ev-secret"), ("config", "ev-config"),
                           ("network", "ev-net")):
            stream.wait_for(f"{kind} create", named(kind, "create", name))
            stream.wait_for(f"{kind} remove", named(kind, "remove", name))
    finally:
        code = stream.stop(signal.SIGINT)
    assert code == 0, stream.errors
    events = stream.events()
    versions = [e["version"] for e in events]
    assert versions == sorted(versions)
    assert all(e["scope"] == "swarm" and e["timeNano"] >= int(started * 1e9) - 10**9
               for e in events)
    create = next(e for e in events if named("service", "create", "ev-web")(e))
    assert create["Actor"]["Attributes"] == {"name": "ev-web", "tier": "front"}
    assert not any("secret" in json.dumps(e) and "s3cret" in json.dumps(e) for e in events)


def test_filters_since_until_and_templates(lab: Lab) -> None:
    window = ["--since", "10m", "--until", "0s"]    # everything of the test above, then exit
    creates = run_events(lab, *window, "--filter", "type=service", "--filter", "type=secret",
                         "--filter", "event=create", "--format",
                         "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    assert creates == ["service create ev-web", "secret create ev-secret"]
    web = [json.loads(line) for line in run_events(lab, *window, "--filter", "service=ev-web",
                                                   "--format", JSON)]
    kinds = {(e["Type"], e["Action"]) for e in web}
    assert {("service", "create"), ("service", "update"), ("service", "remove"),
            ("task", "start"), ("task", "die")} <= kinds
    assert {e["Type"] for e in web} == {"service", "task"}
    labelled = run_events(lab, *window, "--filter", "label=tier=front", "--filter",
                          "event=remove", "--format", "{{.Actor.ID}} {{.Actor.Attributes.name}}")
    assert len(labelled) == 1 and labelled[0].endswith(" ev-web")
    lines = run_events(lab, *window, "--filter", "node=manager3", "--filter", "type=node")
    assert lines and all(" node " in line and "name=manager3" in line for line in lines)
    assert any(" node create " in line for line in lines), lines     # when the lab came up
    assert any("availability.new=pause" in line for line in lines), lines
    assert all(line.split()[0].endswith("Z") and "(" in line for line in lines)
    # --until alone replays what the manager keeps up to then, and exits
    secrets = run_events(lab, "--until", "0s", "--filter", "type=secret", "--format",
                         "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    assert secrets.index("secret create ev-secret") < secrets.index("secret remove ev-secret")
    # a window in the past holds nothing; one in the future ends at its time
    assert run_events(lab, "--since", "2000-01-01T00:00:00Z", "--until", "946684801") == []
    future = time.time() + 2
    # (with --since: --until alone would replay the secret events above first, as Docker does)
    assert run_events(lab, "--filter", "type=secret", "--since", "0s", "--until=-2s") == []
    assert time.time() >= future          # it streamed until then, and no longer than the call
    bad = sw(lab, "events", "--since", "last tuesday", check=False)
    assert bad.returncode == 1 and 'invalid value "last tuesday" for --since' in bad.stderr
    bad = sw(lab, "events", "--filter", "type=container", check=False)
    assert bad.returncode == 1 and "swarm events are of type" in bad.stderr
    bad = sw(lab, "events", "--since", "100000000000h", check=False)
    assert bad.returncode == 1 and "for --since: the time is out of range" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = sw(lab, "events", "--failover", "manager2", check=False)
    assert bad.returncode == 1 and 'invalid --failover "manager2"' in bad.stderr


def create_until_acknowledged(lab: Lab, nodes: list[str], name: str, image: str,
                              timeout: float = 30.0) -> None:
    """CreateService (0 replicas) on any of `nodes` until one acknowledges it (or says it
    exists: an earlier attempt went through)."""
    spec = pb.ServiceSpec()
    spec.annotations.name = name
    spec.replicated.replicas = 0
    spec.task.container.image = image

    def attempt() -> bool:
        for node in nodes:
            try:
                api(lab, node).CreateService(cpb.CreateServiceRequest(spec=spec), timeout=5)
                return True
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                    return True
        return False
    wait(attempt, timeout, f"service {name} created", interval=0.1)


def test_the_stream_survives_a_leader_kill_without_loss_or_repeat(lab: Lab, demo_image: str) -> None:
    image = demo_image
    leader = named_leaders(api(lab, "manager1"))[0]
    others = [m for m in MANAGERS if m != leader]
    started = time.time()
    stream = Events(lab, leader, "--format", JSON, "--since", f"{started:.3f}",
                    *(arg for m in others for arg in ("--failover", lab.host(m))))
    names = [f"ev-f{i}" for i in range(1, 7)]
    try:
        for name in names[:3]:
            create_until_acknowledged(lab, others, name, image)
        stream.wait_for("the first creates", named("service", "create", names[2]))
        lab.kill(leader)
        for name in names[3:]:
            create_until_acknowledged(lab, others, name, image)
        stream.wait_for("the creates after the kill", named("service", "create", names[5]))
    finally:
        code = stream.stop(signal.SIGTERM)
    assert code == 0, stream.errors
    events = stream.events()
    creates = [e["Actor"]["Attributes"]["name"] for e in events
               if e["Type"] == "service" and e["Action"] == "create"]
    assert creates == names, creates
    assert any("resumed from" in line for line in stream.errors), stream.errors
    # exactly what a surviving manager's history holds for the same window, in order
    replay = [json.loads(line) for line in run_events_on(lab, others[0], "--since",
                                                         f"{started:.3f}", "--until", "0s")]
    last = events[-1]["version"]
    assert [(e["version"], e["Type"], e["Action"], e["Actor"]["ID"]) for e in events] == \
        [(e["version"], e["Type"], e["Action"], e["Actor"]["ID"]) for e in replay
         if e["version"] <= last]


def run_events_on(lab: Lab, node: str, *args: str) -> list[str]:
    return sw(lab, "events", "--format", JSON, *args, node=node).stdout.splitlines()
