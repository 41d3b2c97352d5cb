"""Records the flags of Docker 20.10's swarm commands, read from the real Docker CLI.

Writes tests/fixtures/docker-20.10-flags.json, the fixture `tests/test_cli_parity.py`
compares the `swarm` command tree with. It is run by hand (the fixture is committed):

    python scripts/docker_flags.py                       # fetch Debian's docker.io
    python scripts/docker_flags.py --docker /path/to/docker

Without `--docker` it fetches Debian's `docker.io` package (20.10) with
`apt-get download` into a temporary directory and unpacks it with `dpkg-deb -x`:
nothing is installed and no daemon runs. For every subcommand of `docker
swarm|node|service|network|secret|config|stack` (read from the group's `--help`)
it runs `docker GROUP SUB --help` and parses the Options section: long name,
short name, the value's type word (`string`, `list`, `duration`, `bytes`, ...;
null for a boolean) and the help text. Docker's help leaves out hidden and
deprecated flags, and so does the fixture.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

GROUPS = ("swarm", "node", "service", "network", "secret", "config", "stack")
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "docker-20.10-flags.json"
PACKAGE = "docker.io"

# "  -c, --compose-file strings   Path to ..." or "      --prune   Prune ...": a flag
# line starts with two spaces and a short name, or six spaces; continuation lines of
# the help text are indented further and start with no dash.
_FLAG = re.compile(r"^  (?:-(?P<short>\w), |    )--(?P<long>[\w-]+)"
                   r"(?: (?P<type>[^\s]+))?(?:\s{2,}(?P<help>.*))?$")
_COMMAND = re.compile(r"^  (?P<name>[\w-]+)\s{2,}")


def docker_help(docker: str, *args: str) -> str:
    """`docker ARGS --help` (no daemon is needed for help)."""
    env = dict(os.environ, DOCKER_CONFIG=tempfile.mkdtemp(prefix="docker-config-"),
               DOCKER_HOST="unix:///nonexistent/docker.sock")
    res = subprocess.run([docker, *args, "--help"], capture_output=True, text=True, env=env,
                         check=True, timeout=60)
    return res.stdout


def sections(text: str) -> dict[str, list[str]]:
    """The help text split at its headings ("Options:", "Commands:", "Aliases:")."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
            found[current] = []
        elif current is not None and line.strip():
            found[current].append(line)
    return found


def parse_flags(lines: list[str]) -> list[dict[str, Any]]:
    """The flags of an Options section, with their help text joined into one line."""
    flags: list[dict[str, Any]] = []
    for line in lines:
        m = _FLAG.match(line)
        if m:
            flags.append({"long": m.group("long"), "short": m.group("short"),
                          "type": m.group("type"), "help": (m.group("help") or "").strip()})
        elif flags:
            flags[-1]["help"] = (flags[-1]["help"] + " " + line.strip()).strip()
        else:
            raise ValueError(f"cannot read flag line {line!r}")
    return flags


def subcommands(docker: str, group: str) -> list[str]:
    return [m.group("name") for line in sections(docker_help(docker, group)).get("Commands", [])
            if (m := _COMMAND.match(line))]


def describe(docker: str, group: str, sub: str) -> dict[str, Any]:
    parts = sections(docker_help(docker, group, sub))
    usage = " ".join(line.strip() for line in parts.get("Usage", []))
    aliases = [a.strip() for line in parts.get("Aliases", []) for a in line.split(",")]
    return {"usage": usage, "aliases": [a for a in aliases if a and a != sub],
            "flags": parse_flags(parts.get("Options", []))}


def version(docker: str) -> str:
    res = subprocess.run([docker, "--version"], capture_output=True, text=True, check=True)
    return res.stdout.strip()


def record(docker: str) -> dict[str, Any]:
    commands = {f"{group} {sub}": describe(docker, group, sub)
                for group in GROUPS for sub in subcommands(docker, group)}
    return {"docker": version(docker),
            "generated_by": "scripts/docker_flags.py (from `docker GROUP SUB --help`)",
            "commands": commands}


def fetch_docker(workdir: Path) -> str:
    """Downloads Debian's docker.io package and unpacks it; returns the CLI's path."""
    subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, check=True)
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise SystemExit(f"apt-get download {PACKAGE} left no .deb in {workdir}")
    root = workdir / "root"
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    return str(root / "usr" / "bin" / "docker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docker", help="a Docker 20.10 CLI binary (default: fetch docker.io)")
    parser.add_argument("--output", default=str(FIXTURE), help="fixture to write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="docker-flags-") as tmp:
        docker = args.docker or fetch_docker(Path(tmp))
        data = record(docker)
    if " 20.10." not in data["docker"]:
        print(f"warning: expected Docker 20.10, got {data['docker']!r}", file=sys.stderr)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    count = sum(len(c["flags"]) for c in data["commands"].values())
    print(f"{out}: {len(data['commands'])} subcommands, {count} flags ({data['docker']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
