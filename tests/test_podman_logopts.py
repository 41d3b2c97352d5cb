"""The max-size log option on real podman: what the task's container keeps of its output.

A task goes through the agent's own path (taskspec.container_config, Runtime.create,
start, wait, logs); the log file podman keeps is looked at through the podman CLI,
independent of the code under test. With max-size 1k, 100 KiB of output leave one
file of at most 1 KiB holding the newest lines (conmon starts the file afresh when a
write would pass the limit, and keeps no rotated files); without the option the whole
output is kept, as before.
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from proto import model
from tests.podmanfixtures import RUN_LABEL, podman, podman_fixtures
from tests.test_worker_fakes import make_task
from worker import taskspec
from worker.podman import PodmanRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

NODE = "logoptsnode"
LINES = 800
LINE_BYTES = 128              # "line-NNNN-" + 117 x + newline: 800 lines = 100 KiB
SCRIPT = ("pad=$(printf '%117s' '' | tr ' ' x); i=0; "
          f"while [ $i -lt {LINES} ]; do printf 'line-%04d-%s\\n' $i \"$pad\"; "
          "i=$((i+1)); done")


service_dir, runtime, run_id = podman_fixtures(NODE, "podman-logopts")


async def run_chatty_task(rt: PodmanRuntime, run_id: str, image: str,
                          options: dict[str, str]) -> tuple[list[str], dict[str, Any]]:
    """Runs a task printing 100 KiB with these log options; its log lines (through the
    runtime) and its container's LogConfig (through the podman CLI)."""
    task = make_task(model.new_id(), node_id=NODE, image=image)
    task.spec.container.labels[RUN_LABEL] = run_id
    task.spec.container.command.extend(["sh", "-c", SCRIPT])
    task.spec.log_driver_options.update(options)
    config = taskspec.container_config(task, NODE)
    await rt.ensure_image(config.image)
    cid = await rt.create(config)
    await rt.start(cid)
    state = await asyncio.wait_for(rt.wait(cid), 60)
    assert state.exit_code == 0
    lines = [line.data.decode() async for line in rt.logs(cid)]
    inspected = json.loads(podman("container", "inspect", cid).stdout)[0]
    return lines, inspected["HostConfig"]["LogConfig"]


def expected_line(i: int) -> str:
    return f"line-{i:04d}-" + "x" * 117


async def test_max_size_keeps_one_file_of_at_most_that_size_with_the_newest_lines(
        runtime: PodmanRuntime, run_id: str, demo_image: str) -> None:
    lines, log_config = await run_chatty_task(runtime, run_id, demo_image,
                                              {"max-size": "1k", "max-file": "1"})
    path = Path(log_config["Path"])
    assert log_config["Type"] == "k8s-file"
    assert 0 < os.path.getsize(path) <= 1024
    # one file, no rotated ones beside it
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name)) \
        == [path.name]
    # what is kept is the newest output, whole lines, in order
    assert 0 < len(lines) < 1024 // LINE_BYTES + 1
    first = LINES - len(lines)
    assert [line.rstrip("\n") for line in lines] == [expected_line(i)
                                                     for i in range(first, LINES)]


async def test_without_options_the_whole_output_is_kept(
        runtime: PodmanRuntime, run_id: str, demo_image: str) -> None:
    lines, log_config = await run_chatty_task(runtime, run_id, demo_image, {})
    assert os.path.getsize(log_config["Path"]) > LINES * LINE_BYTES
    assert [line.rstrip("\n") for line in lines] == [expected_line(i) for i in range(LINES)]
