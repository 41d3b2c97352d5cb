"""The demo: a lab cluster (3 managers, 2 workers) with a web service you can reach.

`python -m lab.demo up` brings up a `swarm-lab` cluster on this host (one
network namespace per node on an underlay bridge), creates `web` — a global
busybox httpd service on each node's network (`--network host`) that names the
node it runs on — and `mesh`, two replicas published with `-p 8081:8080` on the
ingress routing mesh; then deploys the stack `vote` from the Compose file
lab/demo-stack.yml with `swarm stack deploy` (its Docker Hub images served by lab
stand-ins, `vote` published on port 8082), and fetches all three from the host at
every node's underlay IP (`mesh` and `vote` answer on all five nodes though they
run on two). `python -m lab.demo down` removes everything.
"""
from __future__ import annotations

import argparse
import re
import sys
import urllib.request
from pathlib import Path

from lab.cluster import Lab
from lab.images import ensure_demo_image, ensure_stand_in

PAGE_CMD = ('mkdir -p /www && echo "hello from $NODE (task $TASK)" > /www/index.html '
            '&& exec httpd -f -p 8080 -h /www')
STACK_FILE = Path(__file__).resolve().with_name("demo-stack.yml")
STACK = "vote"
STACK_PORT = 8082
# the stack file's images and the ports their stand-ins serve
STAND_INS = {"dockersamples/examplevotingapp_vote:before": 80, "redis:alpine": 6379}


def down() -> None:
    lab = Lab()
    if lab.is_up():
        lab.down()


def _fetch(ip: str, port: int = 8080) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=5) as resp:
        return resp.read().decode().strip()


def _text(page: str) -> str:
    """A page's text on one line (the stand-ins answer with a little HTML)."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def up(managers: int, workers: int) -> int:
    image = ensure_demo_image()
    for name, port in STAND_INS.items():
        ensure_stand_in(name, port)
    down()
    lab = Lab()
    print(f"$ swarm-lab up --managers {managers} --workers {workers}")
    for info in lab.up(managers, workers):
        print(f"  {info.name:<10} {info.role:<8} {info.ip}")
    lab.wait_ready()
    steps = [
        ["node", "ls"],
        ["service", "create", "--name", "web", "--mode", "global", "--network", "host",
         "--env", "NODE={{.Node.Hostname}}", "--env", "TASK={{.Task.ID}}",
         "--stop-grace-period", "1s", image, "sh", "-c", PAGE_CMD],
        ["service", "create", "--name", "mesh", "--replicas", "2", "-p", "8081:8080",
         "--env", "NODE={{.Node.Hostname}} via the routing mesh", "--env", "TASK={{.Task.ID}}",
         "--stop-grace-period", "1s", image, "sh", "-c", PAGE_CMD],
        ["stack", "deploy", "-c", str(STACK_FILE.relative_to(STACK_FILE.parents[1])), STACK],
        ["service", "ls"],
        ["service", "ps", "web"],
        ["service", "ps", "mesh"],
        ["stack", "ls"],
        ["stack", "ps", STACK],
    ]
    for args in steps:
        print(f"\n$ swarm-lab exec manager1 -- swarm {' '.join(args)}")
        print(lab.swarm("manager1", *args, registry_view=True).stdout.rstrip())
    print("\nThe web service answering the host on every node's underlay address:")
    for name in lab.names():
        ip = lab.ip(name)
        text = lab.wait_for(lambda: _try(ip), 30, f"{name} answering")
        print(f"  http://{ip}:8080/  ->  {text}")
    print("\nThe mesh service (2 tasks) answering on every node's port 8081:")
    for name in lab.names():
        ip = lab.ip(name)
        text = lab.wait_for(lambda: _try(ip, 8081), 30, f"{name} answering on 8081")
        print(f"  http://{ip}:8081/  ->  {text}")
    print(f"\nThe {STACK} stack (lab/demo-stack.yml; vote: 2 tasks) answering on every node's "
          f"port {STACK_PORT}:")
    for name in lab.names():
        ip = lab.ip(name)
        text = lab.wait_for(lambda: _try(ip, STACK_PORT), 60,
                            f"{name} answering on {STACK_PORT}")
        print(f"  http://{ip}:{STACK_PORT}/  ->  {_text(text)}")
    print("\nTry: swarm-lab exec manager1 -- swarm service ps web ; swarm-lab kill worker1")
    print(f"     swarm-lab exec manager1 -- swarm stack services {STACK}")
    print("Remove the demo with: python -m lab.demo down   (or: swarm-lab down)")
    return 0


def _try(ip: str, port: int = 8080) -> str:
    try:
        return _fetch(ip, port)
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.demo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"], nargs="?", default="up")
    parser.add_argument("--managers", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args(argv)
    if opts.action == "down":
        down()
        return 0
    return up(opts.managers, opts.workers)


if __name__ == "__main__":
    sys.exit(main())
