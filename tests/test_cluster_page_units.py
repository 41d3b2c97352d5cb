"""Unit tests of `swarm ui` without a node: the view model, the mirror, the feed and the
page server.

The view model (cli/clusterview.py) turns store objects into the page's state;
the feed (cli/clusterwatch.py) follows a fake client's Watch streams here; the
page server (cli/clusterhttp.py) runs on a free loopback port with a state
function of the test's own (no cluster, no browser).
"""
from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from cli import clusterwatch
from cli.client import Client, RpcFailure, describe_rpc_error
from cli.clusterhttp import PageServer, page_html
from cli.clusterview import NO_SERVICE, PALETTE, Mirror, page_state, short_image
from cli.clusterwatch import ClusterFeed
from cli.main import build_parser
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb


def node(node_id: str, hostname: str, manager: bool = False, leader: bool = False,
         state: int = pb.NodeStatus.READY, version: int = 1, **labels: str) -> pb.Node:
    n = pb.Node(id=node_id, role=pb.MANAGER if manager else pb.WORKER)
    n.meta.version = version
    n.description.hostname = hostname
    n.status.state = state  # type: ignore[assignment]
    n.spec.annotations.labels.update(labels)
    if manager:
        n.manager_status.leader = leader
        n.manager_status.reachability = pb.ManagerStatus.REACHABLE
    return n


def svc(service_id: str, name: str, replicas: int | None = None, version: int = 1) -> pb.Service:
    """A replicated service of `replicas` tasks, or a global one (replicas None)."""
    s = pb.Service(id=service_id)
    s.meta.version = version
    s.meta.created_at.seconds = 1000 + int(service_id[1:])
    s.spec.annotations.name = name
    s.spec.task.container.image = f"registry:5000/{name}:1"
    if replicas is None:
        getattr(s.spec, "global").SetInParent()   # `global` is a Python keyword
    else:
        s.spec.replicated.replicas = replicas
    return s


def task(task_id: str, service_id: str, name: str, slot: int, node_id: str,
         state: int = pb.RUNNING, desired: int = pb.RUNNING, version: int = 1,
         health: str = "") -> pb.Task:
    t = pb.Task(id=task_id, service_id=service_id, service_name=name, slot=slot,
                node_id=node_id, desired_state=desired)  # type: ignore[arg-type]
    t.meta.version = version
    t.status.state = state  # type: ignore[assignment]
    t.spec.container.image = f"registry:5000/{name}:1"
    t.status.health.status = health
    return t


def event(obj: Any, action: int = wpb.WatchEvent.UPDATE) -> wpb.WatchEvent:
    return wpb.WatchEvent(action=action, object=model.wrap(obj),  # type: ignore[arg-type]
                          version=obj.meta.version)


def cluster() -> Mirror:
    mirror = Mirror()
    mirror.replace(
        [node("w2", "worker2"), node("w1", "worker1", zone="b"),
         node("m2", "manager2", manager=True), node("m1", "manager1", manager=True, leader=True)],
        [svc("s1", "web", 3), svc("s2", "agent")],
        [task("t1", "s1", "web", 1, "w1"), task("t2", "s1", "web", 2, "w2", health="healthy"),
         task("t3", "s1", "web", 3, "", state=pb.PENDING),
         task("t0", "s1", "web", 1, "w1", state=pb.FAILED, desired=pb.SHUTDOWN),
         task("g1", "s2", "agent", 0, "m1"), task("g2", "s2", "agent", 0, "w1",
                                                   state=pb.STARTING)])
    return mirror


# ------------------------------------------------------------- view model --

def test_columns_put_managers_first_leader_leading_then_natural_hostname_order() -> None:
    state = page_state(cluster())
    assert [c["hostname"] for c in state["nodes"]] == ["manager1", "manager2", "worker1",
                                                       "worker2"]
    first = state["nodes"][0]
    assert (first["role"], first["leader"], first["state"], first["availability"]) == \
        ("manager", True, "ready", "active")
    assert state["nodes"][2]["labels"] == {"zone": "b"}
    assert state["nodes"][3]["leader"] is False and state["nodes"][3]["role"] == "worker"


def test_current_tasks_are_boxes_in_their_node_history_is_left_out() -> None:
    state = page_state(cluster())
    boxes = {c["hostname"]: [(b["service"], b["slot"], b["state"]) for b in c["tasks"]]
             for c in state["nodes"]}
    assert boxes == {"manager1": [("agent", 0, "running")], "manager2": [],
                     "worker1": [("agent", 0, "starting"), ("web", 1, "running")],
                     "worker2": [("web", 2, "running")]}
    assert [(b["name"], b["state"]) for b in state["unassigned"]] == [("web.3", "pending")]
    box = state["nodes"][3]["tasks"][0]
    assert box["image"] == "registry:5000/web:1" and box["health"] == "healthy"
    # colours by age: web (made first) has the first one, agent the second
    assert box["colour"] == PALETTE[0]
    assert state["nodes"][0]["tasks"][0]["colour"] == PALETTE[1]
    assert state["counts"] == {"nodes": 4, "down": 0, "services": 2, "tasks": 5}


def test_services_list_desired_running_and_update_state() -> None:
    mirror = cluster()
    web = mirror.tables["service"]["s1"]
    web.update_status.state = pb.UpdateStatus.ROLLBACK_STARTED
    web.update_status.message = "update paused on failure"
    rows = {r["name"]: r for r in page_state(mirror)["services"]}
    assert (rows["web"]["mode"], rows["web"]["running"], rows["web"]["desired"],
            rows["web"]["replicas"]) == ("replicated", 2, 3, "2/3")
    assert rows["web"]["update_state"] == "rollback-started"
    assert rows["web"]["update_message"] == "update paused on failure"
    assert (rows["agent"]["mode"], rows["agent"]["running"], rows["agent"]["desired"],
            rows["agent"]["update_state"]) == ("global", 1, 2, "")


def test_a_down_node_is_marked_and_its_tasks_stop_counting_as_running() -> None:
    mirror = cluster()
    down = node("w2", "worker2", state=pb.NodeStatus.DOWN, version=9)
    down.status.message = "heartbeat failure"
    assert mirror.apply(event(down))
    state = page_state(mirror)
    column = next(c for c in state["nodes"] if c["hostname"] == "worker2")
    assert (column["state"], column["down"], column["message"]) == \
        ("down", True, "heartbeat failure")
    assert next(r for r in state["services"] if r["name"] == "web")["running"] == 1
    assert state["counts"]["down"] == 1


def test_watch_events_older_than_the_listing_are_ignored() -> None:
    mirror = cluster()
    newer = task("t1", "s1", "web", 1, "w1", state=pb.FAILED, version=5)
    assert mirror.apply(event(newer))
    stale = task("t1", "s1", "web", 1, "w1", state=pb.RUNNING, version=4)
    assert not mirror.apply(event(stale))
    assert mirror.tables["task"]["t1"].status.state == pb.FAILED
    created = task("t9", "s1", "web", 4, "w2", version=6)
    assert mirror.apply(event(created, wpb.WatchEvent.CREATE))
    assert mirror.apply(event(created, wpb.WatchEvent.REMOVE))
    assert not mirror.apply(event(created, wpb.WatchEvent.REMOVE))
    assert "t9" not in mirror.tables["task"]
    other = pb.Network(id="n1")
    assert not mirror.apply(event(other))


def test_the_state_is_plain_json() -> None:
    state = page_state(cluster(), connected=False, error="Cannot connect", now=12.5)
    assert json.loads(json.dumps(state)) == state
    assert (state["connected"], state["error"], state["time"]) == (False, "Cannot connect", 12.5)


# ------------------------------------------------------------------ page --

def test_the_page_is_package_data_and_self_contained() -> None:
    html = page_html().decode()
    assert "<script>" in html and "<style>" in html and 'new EventSource("/events")' in html
    for outside in ("http://", "https://", "//cdn", "<link", "src=", "@import", "url("):
        assert outside not in html.split("-->", 1)[1], outside


def test_ui_port_is_checked() -> None:
    parser = build_parser()
    assert parser.parse_args(["ui"]).port == 8090
    assert parser.parse_args(["ui", "--port", "0"]).port == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["ui", "--port", "65536"])


# ---------------------------------------------------------------- server --

@pytest.fixture
def server() -> Iterator[PageServer]:
    mirror = cluster()
    ps = PageServer(lambda: page_state(mirror), 0, token="secret-token")
    ps.start()
    try:
        yield ps
    finally:
        ps.stop()


def get(ps: PageServer, path: str, host: str | None = None,
        cookie: str = "") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", ps.port, timeout=10)
    headers = {"Host": host or f"127.0.0.1:{ps.port}"}
    if cookie:
        headers["Cookie"] = cookie
    conn.request("GET", path, headers=headers)
    return conn.getresponse()


def test_server_listens_on_loopback_only(server: PageServer) -> None:
    assert server.httpd.server_address[0] == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}/?token=secret-token"


def test_the_token_is_traded_for_a_cookie_and_required(server: PageServer) -> None:
    assert get(server, "/").status == 403
    assert get(server, "/?token=wrong").status == 403
    first = get(server, "/?token=secret-token")
    assert first.status == 303 and first.getheader("Location") == "/"
    cookie = first.getheader("Set-Cookie", "").split(";")[0]
    assert cookie == f"shoal-ui-{server.port}=secret-token"
    page = get(server, "/", cookie=cookie)
    assert page.status == 200 and page.read() == page_html()
    assert "default-src 'none'" in page.getheader("Content-Security-Policy", "")
    state = json.loads(get(server, "/state.json", cookie=cookie).read())
    assert [c["hostname"] for c in state["nodes"]][:2] == ["manager1", "manager2"]


def test_head_of_the_event_stream_ends(server: PageServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("HEAD", "/events?token=secret-token",
                 headers={"Host": f"127.0.0.1:{server.port}"})
    res = conn.getresponse()
    assert res.status == 200 and res.getheader("Content-Type", "").startswith(
        "text/event-stream")
    assert res.read() == b""


def test_other_host_names_are_refused(server: PageServer) -> None:
    """A page of another site rebinding its name to 127.0.0.1 gets nothing."""
    cookie = f"shoal-ui-{server.port}=secret-token"
    assert get(server, "/state.json", host="evil.example:80", cookie=cookie).status == 403
    assert get(server, "/state.json", host=f"localhost:{server.port}",
               cookie=cookie).status == 200


def _sse_lines(sock: socket.socket) -> Iterator[str]:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield line.decode()


def test_events_send_the_state_then_each_change_and_end_on_stop() -> None:
    mirror = cluster()
    ps = PageServer(lambda: page_state(mirror), 0, token="t")
    ps.start()
    stopped = False
    sock = socket.create_connection(("127.0.0.1", ps.port), timeout=10)
    try:
        sock.sendall(f"GET /events?token=t HTTP/1.1\r\nHost: 127.0.0.1:{ps.port}\r\n\r\n"
                     .encode())
        lines = _sse_lines(sock)
        assert next(lines).startswith("HTTP/1.1 200 ")
        datas = (json.loads(line[len("data: "):]) for line in lines
                 if line.startswith("data: "))
        first = next(datas)
        assert first["counts"]["down"] == 0
        mirror.apply(event(node("w1", "worker1", state=pb.NodeStatus.DOWN, version=9)))
        ps.changed()
        assert next(datas)["counts"]["down"] == 1
        ps.stop()
        stopped = True
        assert list(datas) == []      # the stream ends when the server stops
    finally:
        sock.close()
        if not stopped:
            ps.stop()


def test_colours_stay_with_their_service_and_an_orphan_task_is_grey() -> None:
    mirror = cluster()
    before = {r["name"]: r["colour"] for r in page_state(mirror)["services"]}
    newer = svc("s3", "api", 1)
    mirror.apply(event(newer, wpb.WatchEvent.CREATE))
    after = {r["name"]: r["colour"] for r in page_state(mirror)["services"]}
    assert after == dict(before, api=PALETTE[2])
    mirror.apply(event(mirror.tables["service"]["s2"], wpb.WatchEvent.REMOVE))
    boxes = [b for c in page_state(mirror)["nodes"] for b in c["tasks"]
             if b["service"] == "agent"]
    assert boxes and all(b["colour"] == NO_SERVICE for b in boxes)


def test_boxes_show_the_image_without_registry_host_and_digest() -> None:
    assert short_image("127.0.0.1:5000/shoal/busybox:1@sha256:ab") == "shoal/busybox:1"
    assert short_image("registry.example/app:2") == "app:2"
    assert short_image("localhost/app") == "app"
    assert short_image("shoal/busybox:1") == "shoal/busybox:1"
    assert short_image("nginx") == "nginx"
    box = page_state(cluster())["nodes"][0]["tasks"][0]
    assert (box["image"], box["image_short"]) == ("registry:5000/agent:1", "agent:1")


# ------------------------------------------------------------------ feed --

def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class FakeStream:
    """A Watch stream as `Client.watch` returns it: its messages, then open until cancelled."""

    def __init__(self, *messages: wpb.WatchMessage) -> None:
        self.messages = messages
        self.cancelled = threading.Event()

    def wait_open(self, timeout: float | None = None) -> None:
        pass

    def __iter__(self) -> Iterator[wpb.WatchMessage]:
        yield from self.messages
        self.cancelled.wait(30)
        raise RpcFailure("CANCELLED", "Locally cancelled by application!")

    def cancel(self) -> None:
        self.cancelled.set()


class FakeClient:
    """The Control API of `cluster()`: one stream per `watch`, in order."""

    def __init__(self, *streams: FakeStream) -> None:
        self.streams = list(streams)
        self.watches = 0
        self.closes = 0
        held = cluster()
        self.lists = {"ListNodes": cpb.ListNodesResponse(nodes=held.nodes),
                      "ListServices": cpb.ListServicesResponse(services=held.services),
                      "ListTasks": cpb.ListTasksResponse(tasks=held.tasks)}

    def watch(self, request: wpb.WatchRequest, timeout: float | None = None) -> FakeStream:
        assert [s.kind for s in request.selectors] == ["node", "service", "task"]
        self.watches += 1
        return self.streams.pop(0)

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        return self.lists[method]

    def close(self) -> None:
        self.closes += 1


def test_the_feed_opens_its_watch_through_the_shared_client() -> None:
    """One way to open a Watch stream: cli.client.Client.watch (no channel of its own)."""
    assert not hasattr(clusterwatch, "grpc")
    stream = FakeStream()
    client = FakeClient(stream)
    feed = ClusterFeed("unix:///nowhere/swarm.sock", client=client)  # type: ignore[arg-type]
    feed.connect()
    state = feed.state()
    assert state["connected"] and state["counts"]["nodes"] == 4 and client.watches == 1
    feed.stop()
    assert stream.cancelled.is_set() and client.closes >= 1


def test_a_missing_socket_fails_connect_with_the_cli_message(tmp_path: Any) -> None:
    host = f"unix://{tmp_path}/swarm.sock"
    feed = ClusterFeed(host, client=Client(host))
    try:
        with pytest.raises(RpcFailure) as failed:
            feed.connect()
    finally:
        feed.stop()
    assert describe_rpc_error(failed.value, host).startswith(
        f"Cannot connect to the swarm node at {host}.")


def test_a_node_that_accepts_but_never_answers_fails_connect_in_time(tmp_path: Any) -> None:
    """A hung node (its socket accepts, nothing answers) fails `swarm ui` with the CLI's
    message instead of leaving it waiting forever."""
    path = tmp_path / "swarm.sock"
    mute = socket.socket(socket.AF_UNIX)
    mute.bind(str(path))
    mute.listen(8)
    host = f"unix://{path}"
    feed = ClusterFeed(host, client=Client(host))
    feed.open_timeout = 0.5
    failed: list[BaseException] = []

    def connect() -> None:
        try:
            feed.connect()
        except BaseException as exc:   # noqa: BLE001 (handed to the test's thread)
            failed.append(exc)

    thread = threading.Thread(target=connect, daemon=True)
    try:
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "connect waited for a node that never answers"
    finally:
        feed.stop()
        mute.close()
    assert len(failed) == 1 and isinstance(failed[0], RpcFailure), failed
    assert describe_rpc_error(failed[0], host) == \
        f"Error: the swarm node at {host} did not answer in time"


def test_an_unexpected_failure_marks_the_feed_disconnected_and_it_reconnects(
        caplog: pytest.LogCaptureFixture) -> None:
    """Anything raised while following the node (here by the mirror) is logged, shown as not
    connected, and the thread starts over on a fresh channel instead of dying."""
    host = "unix:///nowhere/swarm.sock"
    down = node("w2", "worker2", state=pb.NodeStatus.DOWN, version=9)
    first = FakeStream(wpb.WatchMessage(version=9, events=[event(down)]))
    second = FakeStream()
    client = FakeClient(first, second)
    seen: list[tuple[bool, str]] = []
    feed = ClusterFeed(host, client=client)  # type: ignore[arg-type]
    feed.on_change = lambda: seen.append((feed.connected, feed.error))
    feed.retry_seconds = 0.01
    real_apply = feed.mirror.apply
    calls = []

    def apply_failing_once(ev: wpb.WatchEvent) -> bool:
        calls.append(ev)
        if len(calls) == 1:
            raise ValueError("mangled event")
        return real_apply(ev)

    feed.mirror.apply = apply_failing_once  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="swarm.ui")
    feed.connect()
    feed.start()
    try:
        wait_until(lambda: client.watches == 2 and seen[-1] == (True, ""),
                   "the feed to reconnect")
        assert feed._thread is not None and feed._thread.is_alive()
        lost = [why for connected, why in seen if not connected]
        assert len(lost) == 1 and host in lost[0] and "ValueError: mangled event" in lost[0]
        assert first.cancelled.is_set() and client.closes == 1   # a fresh channel next time
        assert any(host in r.getMessage() and "mangled event" in r.getMessage()
                   for r in caplog.records)
    finally:
        feed.stop()
    assert not feed._thread.is_alive()


# ------------------------------------------------------- server failures --

def test_a_failing_state_is_sent_as_not_connected_and_the_publisher_lives_on(
        caplog: pytest.LogCaptureFixture) -> None:
    mirror = cluster()
    broken = threading.Event()

    def state() -> dict[str, Any]:
        if broken.is_set():
            raise KeyError("s9")
        return page_state(mirror)

    ps = PageServer(state, 0, token="t", source="unix:///run/swarm.sock")
    ps.start()
    try:
        ps.changed()
        seq, data = ps.broadcast.next_after(0, 10)
        assert data is not None and json.loads(data)["connected"] is True
        broken.set()
        ps.changed()
        seq, data = ps.broadcast.next_after(seq, 10)
        assert data is not None, "the publisher died"
        sent = json.loads(data)
        assert sent["connected"] is False and "KeyError" in sent["error"]
        assert sent["counts"]["nodes"] == 4         # the last good state is kept on the page
        res = get(ps, "/state.json?token=t")
        assert res.status == 200 and json.loads(res.read())["connected"] is False
        broken.clear()
        ps.changed()
        seq, data = ps.broadcast.next_after(seq, 10)
        assert data is not None and json.loads(data)["connected"] is True
        assert any("unix:///run/swarm.sock" in r.getMessage() and "KeyError" in r.getMessage()
                   for r in caplog.records)
    finally:
        ps.stop()


def test_a_failed_request_is_logged_not_printed_as_a_traceback(
        server: PageServer, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise RuntimeError("handler broke")
    except RuntimeError:
        server.httpd.handle_error(None, ("127.0.0.1", 40000))
    try:
        raise ConnectionResetError("peer reset")
    except ConnectionResetError:
        server.httpd.handle_error(None, ("127.0.0.1", 40001))
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(messages) == 1 and "handler broke" in messages[0]
