"""The scale benchmark's parts that need no lab: its matrix, statistics, parsers, JSON
document and plots (lab/bench/scalefigures.py, scaleplot.py), and its trackers
(lab/bench/scaletrack.py) against a scripted Watch server in this process."""
from __future__ import annotations

import json
import os
import queue
import re
import struct
import time
from concurrent import futures
from pathlib import Path
from typing import Iterator, Optional, Sequence

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from lab.bench import scale
from lab.bench.scalefigures import (FIGURES, Point, Results, Step, check_document, cpu_ticks,
                                    figure_line, hollow_layout, load_document, markdown_table,
                                    metric_samples, peak_rate, percentile, plan, points,
                                    rate_bins, rss_bytes)
from lab.bench.scaleplot import main as plot_main
from lab.bench.scaleplot import plot_document
from lab.bench.scaletrack import ProcWindow, SessionMonitor, TaskTracker, tree_bytes
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb
from proto import watch_pb2_grpc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- matrix --

def test_plan_pairs_node_and_task_counts_and_sweeps_tasks_at_the_largest_cluster() -> None:
    steps = plan([1000, 100, 300], [30000, 3000, 10000])
    assert steps == [Step(100, (3000,)), Step(300, (10000,)), Step(1000, (3000, 10000, 30000))]
    assert [s.main for s in steps] == [3000, 10000, 30000]
    assert points(steps) == [Point(100, 3000, True), Point(300, 10000, True),
                             Point(1000, 3000, False), Point(1000, 10000, False),
                             Point(1000, 30000, True)]


def test_plan_with_fewer_task_counts_reuses_the_last_and_one_point_runs_alone() -> None:
    assert plan([100, 300, 1000], [3000]) == [Step(100, (3000,)), Step(300, (3000,)),
                                             Step(1000, (3000,))]
    assert plan([100, 300], [1000, 2000, 3000]) == [Step(100, (1000,)),
                                                   Step(300, (1000, 2000, 3000))]
    assert points(plan([50], [500])) == [Point(50, 500, True)]


@pytest.mark.parametrize("nodes,tasks", [([], [10]), ([10], []), ([0, 10], [5]), ([10], [-1])])
def test_plan_refuses_empty_or_non_positive_counts(nodes: list[int], tasks: list[int]) -> None:
    with pytest.raises(ValueError):
        plan(nodes, tasks)


def test_hollow_layout_ends_with_a_tenth_of_the_nodes_and_balances_the_rest() -> None:
    assert hollow_layout(100, 250) == [90, 10]
    assert hollow_layout(300, 250) == [135, 135, 30]
    assert hollow_layout(1000, 250) == [225, 225, 225, 225, 100]
    assert hollow_layout(1001, 250) == [226, 225, 225, 225, 100]
    assert hollow_layout(50, 20) == [15, 15, 15, 5]
    assert hollow_layout(5, 250) == [4, 1]           # at least one node is killed
    for n in (2, 7, 99, 1000, 2384):
        layout = hollow_layout(n, 250)
        assert sum(layout) == n and max(layout[:-1]) <= 250


@pytest.mark.parametrize("nodes,per,fraction", [(1, 250, 0.1), (10, 0, 0.1), (10, 5, 0.0),
                                                (10, 5, 1.0)])
def test_hollow_layout_refuses_what_cannot_be_run(nodes: int, per: int, fraction: float) -> None:
    with pytest.raises(ValueError):
        hollow_layout(nodes, per, fraction)


# ------------------------------------------------------------ statistics --

def test_percentile_interpolates_between_closest_ranks() -> None:
    samples = [float(v) for v in range(1, 21)]          # 1..20, shuffled order must not matter
    assert percentile(list(reversed(samples)), 50) == pytest.approx(10.5)
    assert percentile(samples, 99) == pytest.approx(19.81)
    assert percentile(samples, 0) == 1 and percentile(samples, 100) == 20
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_rate_bins_and_peak() -> None:
    times = [0.1, 0.2, 0.9, 1.5, 3.0, 3.1, 3.2, 3.3]
    assert rate_bins(times) == [(0.0, 3), (1.0, 1), (2.0, 0), (3.0, 4)]
    assert peak_rate(times) == 4.0
    assert peak_rate(times, width=2.0) == 2.0            # (0..2: 4 events, 2..4: 4) per second
    assert rate_bins([]) == [] and peak_rate([]) == 0.0
    assert rate_bins([2.5, 2.7], origin=0.0) == [(0.0, 0), (1.0, 0), (2.0, 2)]


def test_proc_parsers() -> None:
    # the command name holds a space and a parenthesis, as a thread name may
    fields = ["S"] + [str(i) for i in range(4, 14)] + ["150", "50"] + ["0"] * 30
    stat = "1234 (python3 (x) y) " + " ".join(fields)
    assert cpu_ticks(stat) == 200
    status = "Name:\tpython3\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\nThreads:\t9\n"
    assert rss_bytes(status) == 123456 * 1024
    with pytest.raises(ValueError):
        rss_bytes("Name:\tkthreadd\n")


def test_metric_samples_sum_label_sets() -> None:
    text = ("# HELP shoal_dispatcher_heartbeats_total Agent heartbeats.\n"
            "# TYPE shoal_dispatcher_heartbeats_total counter\n"
            "shoal_dispatcher_heartbeats_total 42.0\n"
            "# TYPE shoal_dispatcher_sessions gauge\n"
            "shoal_dispatcher_sessions 1003.0\n"
            "# TYPE shoal_nodes gauge\n"
            'shoal_nodes{role="worker",state="ready"} 1000.0\n'
            'shoal_nodes{role="manager",state="ready"} 3.0\n')
    values = metric_samples(text)
    assert values["shoal_dispatcher_heartbeats_total"] == 42
    assert values["shoal_dispatcher_sessions"] == 1003
    assert values["shoal_nodes"] == 1003


# -------------------------------------------------------------- document --

def synthetic(path: Optional[Path], names: Sequence[str] = tuple(FIGURES)) -> Results:
    """A document as a run of the default matrix writes it, with made-up values (of the
    figures `names`)."""
    run = points(plan([100, 300, 1000], [3000, 10000, 30000]))
    results = Results(path, {"nodes": [100, 300, 1000]}, run)
    for p in run:
        for name in names:
            if FIGURES[name].axis == "both" or p.main:
                results.add(name, p.nodes, p.tasks, p.nodes / 100 + p.tasks / 1000)
    for n in (100, 300, 1000):
        results.series("failover_reconnects", {"nodes": n, "tasks": 30 * n,
                                               "bins": [[0.0, 0], [1.0, n / 2], [2.0, n / 2]]})
    results.note("made up for a test")
    return results


def test_results_save_after_every_figure_and_print_one_line(tmp_path: Path) -> None:
    path = tmp_path / "out" / "scale.json"
    results = Results(path, {"steady": 120}, [Point(50, 500, True)])
    line = results.add("join_s", 50, 500, 12.5)
    assert line.startswith("join_s N=50 T=500: 12.5 s (") and "target <= 60 s: met" in line
    doc = load_document(path)
    assert doc["figures"] == [{"name": "join_s", "nodes": 50, "tasks": 500, "value": 12.5,
                               "unit": "s"}]
    assert doc["points"] == [{"nodes": 50, "tasks": 500, "main": True}]
    assert doc["host"]["cpus"] >= 1
    assert "MISSED" in figure_line("sched_delay_p99_ms", 1000, 30000, 450.0)
    with pytest.raises(KeyError):
        results.add("no_such_figure", 50, 500, 1.0)


def test_check_document_refuses_other_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        check_document({"figures": []})
    with pytest.raises(ValueError):
        check_document({"schema": "shoal.scale/1", "points": [], "series": {}, "notes": [],
                        "figures": [{"name": "join_s"}]})


def test_markdown_table_has_a_row_per_measured_figure(tmp_path: Path) -> None:
    table = markdown_table(synthetic(tmp_path / "s.json").doc)
    lines = table.splitlines()
    assert lines[0] == ("| figure | unit | 100 / 3000 | 300 / 10000 | 1000 / 3000 | "
                        "1000 / 10000 | 1000 / 30000 | target |")
    assert len(lines) == 2 + len(FIGURES)
    assert "| join_s | s | 4.00 | 13.0 |  |  | 40.0 | <= 60 |" in lines


# ----------------------------------------------------------------- plots --

def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plot_document_writes_a_valid_png_per_figure(tmp_path: Path) -> None:
    doc = synthetic(tmp_path / "scale.json").doc
    written = plot_document(doc, tmp_path / "plots")
    names = {p.name for p in written}
    assert names == {f"{n}.png" for n in FIGURES} | {"failover_reconnects.png"}
    for path in written:
        width, height = _png_size(path)
        assert width > 300 and height > 200
    # figures measured per service get a second panel (against T): a wider image
    assert _png_size(tmp_path / "plots" / "create_running_s.png")[0] > \
        _png_size(tmp_path / "plots" / "join_s.png")[0]


def test_plot_document_of_a_small_run_skips_what_was_not_measured(tmp_path: Path) -> None:
    results = Results(None, {}, [Point(50, 500, True)])
    results.add("join_s", 50, 500, 3.0)
    results.add("create_running_s", 50, 500, 4.0)
    written = plot_document(results.doc, tmp_path)
    assert sorted(p.name for p in written) == ["create_running_s.png", "join_s.png"]
    for path in written:
        _png_size(path)


def test_scaleplot_command_replots_a_saved_document(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    synthetic(tmp_path / "scale.json", names=["join_s", "create_running_s"])
    assert plot_main([str(tmp_path / "scale.json"), "--plots", str(tmp_path / "png"),
                      "--table"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "png" / "join_s.png") in out and "| figure | unit |" in out
    (tmp_path / "other.json").write_text(json.dumps({"schema": "x"}))
    with pytest.raises(SystemExit):
        plot_main([str(tmp_path / "other.json")])


# ------------------------------------------------------- command options --

def test_scale_options_refuse_what_cannot_run() -> None:
    opts = scale.parse_args(["--nodes", "50", "--tasks", "500", "--steady", "0"])
    assert plan(opts.nodes, opts.tasks) == [Step(50, (500,))]
    for bad in (["--nodes", "1"], ["--steady", "-1"], ["--calls", "0"],
                ["--per-process", "0"], ["--victim-fraction", "0.6"]):
        with pytest.raises(SystemExit):
            scale.parse_args(bad)


# -------------------------------------------------------------- trackers --

class ScriptedWatch(watch_pb2_grpc.WatchServicer):
    """A Watch server that sends its headers, then what the test puts in `queue` (None ends
    the stream)."""

    def __init__(self) -> None:
        self.queue: "queue.Queue[Optional[wpb.WatchMessage]]" = queue.Queue()
        self.requests: list[wpb.WatchRequest] = []

    def Watch(self, request, context):  # noqa: N802 (the gRPC method's name)
        self.requests.append(request)
        context.send_initial_metadata(())
        while (message := self.queue.get()) is not None:
            yield message


@pytest.fixture
def watch_server(tmp_path: Path) -> Iterator[tuple[ScriptedWatch, grpc.Channel]]:
    servicer = ScriptedWatch()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    watch_pb2_grpc.add_WatchServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix://{tmp_path}/watch.sock")
    server.start()
    channel = grpc.insecure_channel(f"unix://{tmp_path}/watch.sock")
    try:
        yield servicer, channel
    finally:
        servicer.queue.put(None)
        channel.close()
        server.stop(0)


def _stamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def task_event(task_id: str, state: pb.TaskState, at: float, node: str = "",
               created: float = 100.0, service: str = "big",
               desired: pb.TaskState = pb.RUNNING,
               action: wpb.WatchEvent.Action = wpb.WatchEvent.UPDATE
               ) -> wpb.WatchEvent:
    task = pb.Task(id=task_id, service_name=service, node_id=node, desired_state=desired)
    task.status.state = state
    task.meta.created_at.CopyFrom(_stamp(created))
    task.meta.updated_at.CopyFrom(_stamp(at))
    event = wpb.WatchEvent(action=action, committed_at=_stamp(at))
    event.object.task.CopyFrom(task)
    return event


def message(*events: wpb.WatchEvent) -> wpb.WatchMessage:
    return wpb.WatchMessage(events=list(events))


def test_task_tracker_times_assignment_and_running_from_commit_times(
        watch_server: tuple[ScriptedWatch, grpc.Channel]) -> None:
    servicer, channel = watch_server
    tracker = TaskTracker(channel, "manager2", "big")
    tracker.start(timeout=10)
    request = servicer.requests[0]
    assert not request.progress and [s.kind for s in request.selectors] == ["task"]
    tracker.expect(2)
    create = wpb.WatchEvent.CREATE
    servicer.queue.put(message(task_event("t1", pb.NEW, 100.0, action=create),
                               task_event("t2", pb.NEW, 100.0, action=create),
                               task_event("x1", pb.RUNNING, 100.0, "a", service="other")))
    servicer.queue.put(message(task_event("t1", pb.ASSIGNED, 100.2, "a"),
                               task_event("t2", pb.ASSIGNED, 100.3, "b")))
    servicer.queue.put(message(task_event("t1", pb.RUNNING, 101.0, "a")))
    servicer.queue.put(message(task_event("t2", pb.RUNNING, 101.5, "b")))
    assert tracker.wait(10) == pytest.approx(101.5)
    assigned, running = tracker.delays(100.0)  # the service was asked for at 100.0
    assert sorted(assigned) == pytest.approx([0.2, 0.3])
    assert sorted(running) == pytest.approx([1.0, 1.5])
    assert tracker.running_on({"a"}) == 1 and tracker.active() == 2
    assert tracker.summary() == "RUNNING 2"

    # node a fails: done again once a replacement runs elsewhere
    tracker.expect(2, excluded={"a"})
    with pytest.raises(TimeoutError, match="1 of 2 tasks of big"):
        tracker.wait(0.05)
    servicer.queue.put(message(task_event("t1", pb.ORPHANED, 110.0, "a", desired=pb.SHUTDOWN),
                               task_event("t3", pb.ASSIGNED, 110.1, "c", created=110.0)))
    servicer.queue.put(message(task_event("t3", pb.RUNNING, 111.0, "c", created=110.0)))
    assert tracker.wait(10) == pytest.approx(111.0)
    servicer.queue.put(message(task_event("t1", pb.ORPHANED, 112.0, "a",
                                          action=wpb.WatchEvent.REMOVE)))
    servicer.queue.put(message(task_event("t2", pb.SHUTDOWN, 113.0, "b",
                                          desired=pb.SHUTDOWN)))
    servicer.queue.put(None)   # the server ends the stream: waiting fails at once
    deadline = time.monotonic() + 10
    while tracker.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tracker.error == "the stream ended"
    assert tracker.active() == 1          # t3 runs; t1 removed, t2 ended
    tracker.expect(3)
    with pytest.raises(RuntimeError, match="the stream ended"):
        tracker.wait(10)
    tracker.stop()


def test_session_monitor_waits_for_the_leader_to_hold_the_sessions() -> None:
    answers: Iterator[OSError | dict[str, float]] = iter([OSError("refused"),
                    {"shoal_raft_leader": 0.0, "shoal_dispatcher_sessions": 0.0},
                    {"shoal_raft_leader": 1.0, "shoal_dispatcher_sessions": 40.0,
                     "shoal_dispatcher_sessions_opened_total": 40.0},
                    {"shoal_raft_leader": 1.0, "shoal_dispatcher_sessions": 102.0,
                     "shoal_dispatcher_sessions_opened_total": 102.0}])

    def scrape(name: str) -> dict[str, float]:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monitor = SessionMonitor(scrape, ["manager2"], expected=102, interval=0.01)
    monitor.start()
    done = monitor.wait(10)
    assert done is not None and done >= monitor.started
    assert monitor.failures == 1 and len(monitor.samples) == 3
    last = monitor.last()
    assert last is not None and last.leader and last.sessions == 102 and last.opened == 102


def test_proc_window_and_tree_bytes(tmp_path: Path) -> None:
    window = ProcWindow({"me": os.getpid()})
    window.start()
    end = time.process_time() + 0.2
    while time.process_time() < end:   # CPU to measure
        pass
    cpu, rss = window.finish()["me"]
    assert cpu > 0 and rss > 10 * 1024 * 1024
    (tmp_path / "raft").mkdir()
    (tmp_path / "raft" / "journal").write_bytes(b"x" * 1000)
    (tmp_path / "raft" / "snapshot").write_bytes(b"y" * 24)
    assert tree_bytes(tmp_path / "raft") == 1024


def test_the_benchmark_emits_exactly_the_catalogued_figures() -> None:
    """Every figure scale.py emits is in FIGURES (an unknown one would fail its phase in a
    lab run), and every catalogued figure is emitted somewhere."""
    source = Path(scale.__file__).read_text()
    emitted = set(re.findall(r'emit\("([a-z0-9_]+)"', source))
    for prefix in re.findall(r'\("(api|cli)", \w+_samples\)', source):
        for key in re.findall(r'"(\w+_(?:ls|ps))": ', source):
            emitted |= {f"{prefix}_{key}_p50_ms", f"{prefix}_{key}_p99_ms"}
    assert emitted == set(FIGURES)
