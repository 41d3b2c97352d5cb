"""The demo: a one-node Shoal cluster running a web service you can reach.

`python -m lab.demo up` starts a node in /var/lib/shoal-demo (replacing an
earlier demo), creates `web` — 3 replicas of busybox httpd from the lab
registry — waits for it, shows `service ls` / `service ps`, and fetches the
page from inside each task's network namespace. `python -m lab.demo down`
removes everything the demo made.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lab.images import ensure_demo_image
from lab.localnode import SingleNode, wait_for

DEMO_DIR = Path(os.environ.get("SHOAL_DEMO_DIR", "/var/lib/shoal-demo"))
PAGE_CMD = ('mkdir -p /www && echo "hello from $(hostname), task $TASK" > /www/index.html '
            '&& exec httpd -f -p 8080 -h /www')


def _node() -> SingleNode:
    node = SingleNode(DEMO_DIR)
    state = DEMO_DIR / "node" / "node.json"
    if state.exists():
        node.node_id = json.loads(state.read_text())["node_id"]
    return node


def down() -> None:
    node = _node()
    node.destroy()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)


def _fetch(pid: int) -> str:
    res = subprocess.run(["nsenter", "-t", str(pid), "-n", "busybox", "wget", "-qO-",
                          "http://127.0.0.1:8080/"], capture_output=True, text=True, timeout=10)
    return (res.stdout or res.stderr).strip()


def up() -> int:
    image = ensure_demo_image()
    down()
    node = _node()
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    print(node.init().stdout.strip())
    print(f"\n$ export SWARM_HOST={node.env['SWARM_HOST']}")
    steps = [
        ["service", "create", "--name", "web", "--replicas", "3", "--env", "TASK={{.Task.Slot}}",
         image, "sh", "-c", PAGE_CMD],
        ["service", "ls"],
        ["service", "ps", "web"],
    ]
    for args in steps:
        print(f"\n$ swarm {' '.join(args)}")
        print(node.swarm(*args).stdout.rstrip())
    wait_for(lambda: len(node.running("web")) == 3, 30, "3 running tasks")
    print("\nThe web service answering, fetched inside each task's network namespace:")
    for task in sorted(node.running("web"), key=lambda t: t.slot):
        pid = task.status.container_status.pid
        print(f"  {task.annotations.name} (pid {pid}): {_fetch(pid)}")
    print(f"\nTry: SWARM_HOST={node.env['SWARM_HOST']} swarm service scale web=5")
    print("Remove the demo with: python -m lab.demo down")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"], nargs="?", default="up")
    opts = parser.parse_args(argv)
    if opts.action == "down":
        down()
        return 0
    return up()


if __name__ == "__main__":
    sys.exit(main())
