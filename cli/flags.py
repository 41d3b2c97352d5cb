"""Option sets several commands share, declared once.

Owns the options of every `ls` and `ps`, the raft snapshot flags of `swarm init`
and `swarm update`, and the argparse declarations that
`service create` and `service update` share (Docker's flag names, short forms
and help texts) and the few that differ: create takes lists
(`--env`, `--publish`, ...), update takes `--*-add`/`--*-rm` pairs. Values are
kept as typed; `cli.specs` parses and validates them, so every mistake is
reported the same way (one line, exit 1).
"""
from __future__ import annotations

import argparse
import re
from typing import Sequence

from cli.parsing import UsageError, parse_bool

# Boolean flags that Docker also accepts as --flag=false.
BOOL_FLAGS = ("tty", "read-only", "init", "no-healthcheck", "detach", "force", "rollback",
              "autolock", "no-resolve-image",
              "with-registry-auth")   # cli/registryauth.py
_BOOL_ASSIGN = re.compile(r"^--(" + "|".join(map(re.escape, BOOL_FLAGS)) + r")=(.*)$")

# Value flags whose value can look like an option ("-1s"), joined as --flag=-1s.
# Every parser (cli.lazyparse.LazyParser) now reads such a word as a value for any
# flag, so the parser that explains what is wrong with it gets it; the join is kept
# for these flags as it was.
DASH_VALUE_FLAGS = ("--health-interval", "--health-timeout", "--health-start-period",
                    "--health-start-interval", "--health-retries", "--replicas",
                    "--max-concurrent", "--limit-pids", "--oom-score-adj")
_DASH_VALUE = re.compile(r"^-\d")

# (flag, short, help) for single-valued options both commands take.
_COMMON_VALUE_FLAGS: tuple[tuple[str, str | None, str], ...] = (
    ("--replicas", None, "Number of tasks (of completions for a replicated job)"),
    ("--max-concurrent", None, "Number of job tasks to run concurrently (default equal to --replicas)"),
    ("--user", "-u", "Username or UID (format: <name|uid>[:<group|gid>])"),
    ("--workdir", "-w", "Working directory inside the container"),
    ("--hostname", None, "Container hostname"),
    ("--entrypoint", None, "Overwrite the default ENTRYPOINT of the image"),
    ("--stop-signal", None, "Signal to stop the container"),
    ("--stop-grace-period", None, "Time to wait before force killing a container (ns|us|ms|s|m|h)"),
    ("--limit-cpu", None, "Limit CPUs"),
    ("--limit-memory", None, "Limit Memory"),
    ("--limit-pids", None, "Limit maximum number of processes (default 0 = unlimited)"),
    ("--reserve-cpu", None, "Reserve CPUs"),
    ("--reserve-memory", None, "Reserve Memory"),
    ("--restart-condition", None, 'Restart when condition is met ("none"|"on-failure"|"any")'),
    ("--restart-delay", None, "Delay between restart attempts (ns|us|ms|s|m|h)"),
    ("--restart-max-attempts", None, "Maximum number of restarts before giving up"),
    ("--restart-window", None, "Window used to evaluate the restart policy (ns|us|ms|s|m|h)"),
    ("--replicas-max-per-node", None, "Maximum number of tasks per node (default 0 = unlimited)"),
    ("--update-parallelism", None, "Maximum number of tasks updated simultaneously (0 to update all at once)"),
    ("--update-delay", None, "Delay between updates (ns|us|ms|s|m|h)"),
    ("--update-failure-action", None, 'Action on update failure ("pause"|"continue"|"rollback")'),
    ("--update-monitor", None, "Duration after each task update to monitor for failure (ns|us|ms|s|m|h)"),
    ("--update-max-failure-ratio", None, "Failure rate to tolerate during an update"),
    ("--update-order", None, 'Update order ("start-first"|"stop-first")'),
    ("--rollback-parallelism", None, "Maximum number of tasks rolled back simultaneously (0 to roll back all at once)"),
    ("--rollback-delay", None, "Delay between task rollbacks (ns|us|ms|s|m|h)"),
    ("--rollback-failure-action", None, 'Action on rollback failure ("pause"|"continue")'),
    ("--rollback-monitor", None, "Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h)"),
    ("--rollback-max-failure-ratio", None, "Failure rate to tolerate during a rollback"),
    ("--rollback-order", None, 'Rollback order ("start-first"|"stop-first")'),
    ("--endpoint-mode", None, "Endpoint mode (vip or dnsrr)"),
    ("--log-driver", None, 'Logging driver for service ("json-file", "local", "journald" '
                           'or "none")'),
    ("--oom-score-adj", None, "Tune host's OOM preferences (-1000 to 1000)"),
    ("--health-cmd", None, "Command to run to check health"),
    ("--health-interval", None, "Time between running the check (ms|s|m|h)"),
    ("--health-retries", None, "Consecutive failures needed to report unhealthy"),
    ("--health-timeout", None, "Maximum time to allow one check to run (ms|s|m|h)"),
    ("--health-start-period", None, "Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)"),
    ("--health-start-interval", None, "Time between running the check during the start period (ms|s|m|h)"),
)

# Repeatable options: create name, update add/rm names, help.
_LIST_FLAGS: tuple[tuple[str, str | None, str], ...] = (
    ("env", "-e", "Set environment variables"),
    ("label", "-l", "Service labels"),
    ("container-label", None, "Container labels"),
    ("constraint", None, "Placement constraints"),
    ("placement-pref", None, "Add a placement preference"),
    ("publish", "-p", "Publish a port as a node port"),
    ("network", None, "Network attachments"),
    ("dns", None, "Set custom DNS servers"),
    ("dns-search", None, "Set custom DNS search domains"),
    ("dns-option", None, "Set DNS options"),
    ("secret", None, "Specify secrets to expose to the service"),
    ("config", None, "Specify configurations to expose to the service"),
    ("mount", None, "Attach a filesystem mount to the service "
                    "(type=volume|bind|tmpfs,source=...,target=/PATH,...)"),
    ("group", None, "Set one or more supplementary user groups for the container"),
    ("host", None, "Set one or more custom host-to-IP mappings (host:ip)"),
    ("sysctl", None, "Sysctl options (key=value)"),
    ("ulimit", None, "Ulimit options (name=soft[:hard])"),
)

# The create name of a list option whose dest differs from its name: the global
# -H/--host keeps dest "host", so `service create --host` lands in "hosts".
_LIST_DESTS = {"host": "hosts"}
# Help of the update --*-rm options that remove by a key rather than by value.
_RM_HELP = {"mount": "Remove a mount by its target path",
            "host": 'Remove a custom host-to-IP mapping ("host" or "host:ip")',
            "sysctl": "Remove a Sysctl option (by key)",
            "ulimit": "Remove a ulimit option (by name)",
            "group": "Remove a previously added supplementary user group from the container"}


def bool_flag(parser: argparse.ArgumentParser, name: str, short: str | None,
              help_text: str) -> None:
    """Declares a boolean flag that takes `--name`, `-s` and `--name=false` (dest holds
    None when absent, else the text "true"/"false"; read it with `is_on`)."""
    dest = name.lstrip("-").replace("-", "_")
    names = [name] + ([short] if short else [])
    parser.add_argument(*names, dest=dest, action="store_const", const="true", default=None,
                        help=help_text)
    parser.add_argument(f"{name}-value", dest=dest, default=None, help=argparse.SUPPRESS)


def list_flags(parser: argparse.ArgumentParser, quiet_help: str) -> None:
    """Declares the options every `ls` takes: -q, -f/--filter (repeatable), --format."""
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="Filter output based on conditions provided (key=value)")
    parser.add_argument("--format", default=None,
                        help='Format output: "table" (default), "json", or a Go template')


def task_list_flags(parser: argparse.ArgumentParser) -> None:
    """Declares the options of `service ps` and `node ps`."""
    list_flags(parser, "Only display task IDs")
    parser.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    parser.add_argument("--no-resolve", action="store_true",
                        help="Do not map IDs to Names")


def add_service_flags(parser: argparse.ArgumentParser, update: bool) -> None:
    """Declares the options of `service create` (update=False) or `service update`."""
    for flag, short, help_text in _COMMON_VALUE_FLAGS:
        names = [flag] + ([short] if short else [])
        parser.add_argument(*names, default=None, help=help_text)
    bool_flag(parser, "--init", None, "Use an init inside each service container")
    bool_flag(parser, "--tty", "-t", "Allocate a pseudo-TTY")
    bool_flag(parser, "--read-only", None, "Mount the container's root filesystem as read only")
    bool_flag(parser, "--no-healthcheck", None, "Disable any container-specified HEALTHCHECK")
    bool_flag(parser, "--detach", "-d", "Exit immediately instead of waiting for the service to converge")
    bool_flag(parser, "--quiet", "-q", "Suppress progress output")
    bool_flag(parser, "--no-resolve-image", None, "Do not query the registry to resolve the "
              "image's tag to a digest" + (" (with --image)" if update else ""))
    parser.add_argument("--log-opt", dest="log_opt", action="append", default=[],
                        help="Logging driver options (json-file and local: max-size=SIZE, "
                             "max-file=1; journald: tag=TAG); on update they replace the "
                             "previous ones")
    if not update:
        parser.add_argument("--name", default=None, help="Service name")
        parser.add_argument("--mode", default=None, help='Service mode ("replicated", "global", "replicated-job" or "global-job")')
        parser.add_argument("--env-file", dest="env_file", action="append", default=[],
                            help="Read in a file of environment variables")
        for name, short, help_text in _LIST_FLAGS:
            names = [f"--{name}"] + ([short] if short else [])
            parser.add_argument(*names, dest=_LIST_DESTS.get(name, name.replace("-", "_")),
                                action="append", default=[], help=help_text)
        _capability_flags(parser)
        parser.add_argument("--generic-resource", dest="generic_resource", action="append",
                            default=[], metavar="KIND=COUNT",
                            help="User defined resources (repeatable): reserve COUNT of the "
                                 "KIND nodes advertise (swarm daemon --node-generic-resource)")
        parser.add_argument("image", metavar="IMAGE")
        parser.add_argument("command", metavar="COMMAND", nargs=argparse.REMAINDER,
                            help="Command and arguments (given to the image's entrypoint)")
        return
    for name, _short, help_text in _LIST_FLAGS:
        base = name.replace("-", "_")
        parser.add_argument(f"--{name}-add", dest=f"{base}_add", action="append", default=[],
                            help=f"{help_text}: add or update")
        parser.add_argument(f"--{name}-rm", dest=f"{base}_rm", action="append", default=[],
                            help=_RM_HELP.get(name, f"{help_text}: remove"))
    _capability_flags(parser)
    parser.add_argument("--generic-resource-add", dest="generic_resource_add", action="append",
                        default=[], metavar="KIND=COUNT",
                        help="Add a Generic resource (or change its count)")
    parser.add_argument("--generic-resource-rm", dest="generic_resource_rm", action="append",
                        default=[], metavar="KIND", help="Remove a Generic resource")
    parser.add_argument("--image", default=None, help="Service image tag")
    parser.add_argument("--args", default=None, help="Service command args")
    bool_flag(parser, "--force", None, "Force update even if no changes require it")
    bool_flag(parser, "--rollback", None, "Rollback to previous specification")
    parser.add_argument("service", metavar="SERVICE")


def _capability_flags(parser: argparse.ArgumentParser) -> None:
    """--cap-add/--cap-drop: the same names on create and update (Docker's)."""
    parser.add_argument("--cap-add", dest="cap_add", action="append", default=[],
                        help="Add Linux capabilities (NAME, CAP_NAME or ALL"
                             "; on update RESET clears the list)")
    parser.add_argument("--cap-drop", dest="cap_drop", action="append", default=[],
                        help="Drop Linux capabilities (NAME, CAP_NAME or ALL"
                             "; on update RESET clears the list)")


def is_on(value: str | None, flag: str = "flag") -> bool:
    """True when a `bool_flag` was given and not set to false."""
    return value is not None and parse_bool(value, flag)


def check_utf8(argv: Sequence[str]) -> None:
    """UsageError for an argument that is not UTF-8 text.

    Python hands bytes that do not decode as lone surrogates ("\\udcff"); no spec,
    name or label can hold them, and the manager speaks UTF-8 only.
    """
    for token in argv:
        try:
            token.encode("utf-8")
        except UnicodeEncodeError:
            shown = token.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raise UsageError(f'the argument "{shown}" is not valid UTF-8 text: give names and '
                             "values in UTF-8 (check the encoding of the terminal or of the "
                             "script that runs swarm)") from None


def rewrite_bool_assignments(argv: Sequence[str]) -> list[str]:
    """Turns Docker's `--tty=false` spelling into the hidden `--tty-value false`, and
    `--health-interval -1s` (a value starting with a dash) into `--health-interval=-1s`.

    Stops at `--`, after which everything belongs to the container command.
    """
    out: list[str] = []
    joined = False
    for index, token in enumerate(argv):
        if joined:
            joined = False
            continue
        if token == "--":
            out.extend(argv[index:])
            break
        m = _BOOL_ASSIGN.match(token)
        if m:
            out.extend([f"--{m.group(1)}-value", m.group(2)])
        elif (token in DASH_VALUE_FLAGS and index + 1 < len(argv)
              and _DASH_VALUE.match(argv[index + 1])):
            out.append(f"{token}={argv[index + 1]}")
            joined = True
        else:
            out.append(token)
    return out


def declare_snapshot_flags(parser: argparse.ArgumentParser) -> None:
    """--max-snapshots and --snapshot-interval (`swarm init` and `swarm update`)."""
    parser.add_argument("--max-snapshots", default=None, metavar="uint",
                        help="Number of additional Raft snapshots to retain (kept as "
                             "raft/snapshot.1, .2, ... in each manager's data directory)")
    parser.add_argument("--snapshot-interval", default=None, metavar="uint",
                        help="Number of log entries between Raft snapshots (default 10000; "
                             "a manager also takes one 5 minutes after the last if entries "
                             "were added since)")

