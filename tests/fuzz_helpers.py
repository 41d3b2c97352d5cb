"""Shared pieces of the property-based (hypothesis) tests of the input surfaces.

Owns the settings every fuzz module uses (a fixed number of examples,
derandomized so that CI runs the same examples each time), the strategies of
values people could type (edge cases: empty, huge, negative, unicode, '=' and
',' inside, undecodable bytes as argv holds them) and the generation of
command lines from a real argparse parser: the flags are read from the
parser, so a flag added to the CLI is fuzzed without touching the tests.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
from typing import Any, Iterator, Optional

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from cli.lazyparse import LazyParser
from cli.main import build_parser, parse_command_line
from cli.parsing import UsageError


def fuzz_settings(examples: int) -> Any:
    """`examples` examples, derandomized (the same ones every run), no deadline.

    A longer search by hand: SHOAL_FUZZ_SCALE=N runs N times as many examples, new
    ones each run (random, not derandomized).
    """
    scale = int(os.environ.get("SHOAL_FUZZ_SCALE", "1") or 1)
    return settings(max_examples=examples * scale, deadline=None, derandomize=scale == 1,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# Text a person can put in argv: no NUL (the kernel cannot pass it); lone surrogates
# stand for undecodable bytes (Python decodes argv with surrogateescape).
ARGV_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
                    max_size=12)
EDGE_VALUES = ("", " ", "0", "-1", "-0", "1", "00", "+5", "1.5", ".5", "5.", "1e3", "1e309",
               "nan", "inf", "-inf", "9" * 25, "-" + "9" * 25, "18446744073709551616",
               "9223372036854775808", "4294967296", "2147483648", "=", "a=b", "a=b=c", "a=",
               "=b", ",", "a,b", "a=1,b=2", ",,=", ":", "a:b", "a:b:c", "/", "/a/b", "..",
               "ü", "日本", "\u200b", "²", "٣", "a b", "\t", "\n", "'", '"', "\\", "{{", "}}",
               "{{.Node.Hostname}}", "--", "-x", "true", "false", "yes", "ALL", "RESET",
               "node.role==manager", "node.labels.a==b", "spread=node.labels.z", "10s",
               "1m30s", "-1s", "0s", "999999999999h", "1ns", "512M", "1g", "100kb", "1.5t",
               "8080:80", "80/udp", "1-3:1-3", "published=80,target=80,mode=host",
               "type=tmpfs,target=/t", "type=bind,source=/a,target=/b", "nofile=1:2",
               "core=-1", "net.core.somaxconn=1", "db:10.0.0.1", "max-size=10m", "json-file",
               "local", "any", "none", "on-failure", "pause", "continue", "rollback",
               "stop-first", "start-first", "vip", "dnsrr", "global", "replicated",
               "replicated-job", "global-job", "NET_ADMIN", "source=s,target=t,mode=0400",
               "name=n,alias=a", "10.0.0.0/24", "10.0.0.1", "::1/64", "worker", "manager",
               "drain", "active")
VALUES = st.one_of(st.sampled_from(EDGE_VALUES), ARGV_TEXT,
                   st.integers(-2**70, 2**70).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))
# On a command line, also undecodable bytes: `swarm` refuses them before parsing
# (cli/flags.py check_utf8), so only the argv-level tests see them.
ARGV_VALUES = VALUES | st.just("\udcff") | st.just("web\udcff")


def subparser(*names: str) -> argparse.ArgumentParser:
    """The parser of `swarm NAMES...` (e.g. "service", "create"), its arguments declared."""
    parser: argparse.ArgumentParser = build_parser()
    for name in names:
        if isinstance(parser, LazyParser):
            parser.declare()
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    if isinstance(parser, LazyParser):
        parser.declare()
    return parser


def option_strings(parser: argparse.ArgumentParser) -> list[tuple[str, bool]]:
    """Every option of `parser` but --help, with whether it takes a value."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        for name in action.option_strings:
            found.append((name, action.nargs != 0))
    return sorted(found)


# Values that fit what a flag's name says it takes: most generated lines then get
# past the first check and reach the deeper ones.
_HINTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("delay", "period", "interval", "timeout", "monitor", "window", "grace", "heartbeat",
      "expiry"), ("10s", "1m30s", "0", "0s", "1.5h", "500ms", "1ns", "2562047h", "2562048h",
                  "9" * 20 + "h", "1" + "0" * 400 + "s", "-1s", "1x", "1h-1m", "µs")),
    (("memory",), ("512M", "1g", "1.5t", "0", "8e", "9" * 30, "9" * 400 + "k", "16p",
                   "8192p", "1 k", "1kib", "-1m")),
    (("cpu",), ("0.5", "2", "0", "1e9", "1e300", "1e309", "nan", "-0.0", "9" * 400)),
    (("replicas", "parallelism", "retries", "attempts", "limit", "concurrent", "mask-length"),
     ("0", "1", "5", "-1", "2147483647", "2147483648", "4294967296", "9223372036854775807",
      "18446744073709551615", "18446744073709551616", "9" * 40, "1.5", " 3", "٣")),
    (("ratio",), ("0", "0.5", "1", "1.0000001", "nan", "-0", "1e-320")),
    (("publish",), ("8080:80", "80", "1-3:1-3", "0:80", "80/udp", "80/sctp", "65536",
                    "published=80,target=80,mode=host", "target=80,protocol=udp",
                    "1-65535", "published=,target=1", "1:2:3")),
    (("mount",), ("type=tmpfs,target=/t,tmpfs-size=1g,tmpfs-mode=1777",
                  "type=bind,source=/a,target=/b,bind-propagation=rslave",
                  "type=volume,source=v,target=/v,volume-opt=a=b,volume-label=x=y",
                  "type=tmpfs,target=/t,tmpfs-size=" + "9" * 30, "/t", "target=/t",
                  "type=volume,target=/x,volume-nocopy", "type=tmpfs,target=/t,tmpfs-mode=99")),
    (("ulimit",), ("nofile=1:2", "nofile=-1", "core=-1:-1", "nproc=" + "9" * 20,
                   "nofile=2:1", "cpu=0:" + "9" * 19, "x=1", "nofile")),
    (("constraint",), ("node.role==manager", "node.labels.a==b", "engine.labels.x!=y",
                       "node.hostname==", "node.id!=a!=b", "NODE.ROLE==Worker",
                       "node.labels.ü==1", "node.labels.a.b==c", "node.platform.os==linux")),
    (("placement-pref",), ("spread=node.labels.z", "spread=engine.labels.a", "spread=",
                           "spread=node.labels.", "other=x", "spread=node.labels.ü")),
    (("secret", "config"), ("s", "source=s,target=t", "source=s,uid=-1", "source=s,mode=0777",
                            "source=s,mode=9", "src=s,gid=4294967296", "target=t", "s,t")),
    (("network",), ("n", "name=n,alias=a", "alias=a", "host", "name=,alias=")),
    (("env",), ("A=1", "A", "=1", "A==", "PATH", "ü=1", "A B=1")),
    (("label",), ("k=v", "k", "=v", "k==v", "")),
    (("host",), ("db:10.0.0.1", "db:::1", "db:host-gateway", "db", "a b:1.2.3.4", "db:1.2.3")),
    (("sysctl",), ("net.core.somaxconn=1", "kernel.sem=1 2 3 4", "vm.swappiness=1",
                   "net.x=", "=1")),
    (("cap-",), ("NET_ADMIN", "cap_sys_admin", "ALL", "RESET", "bogus", "")),
    (("log-opt",), ("max-size=10m", "max-file=1", "max-file=3", "max-size=0",
                    "max-size=" + "9" * 400, "mode=non-blocking", "max-size")),
    (("log-driver",), ("json-file", "local", "journald", "")),
    (("group",), ("wheel", "100", "a b", "")),
    (("addr",), ("10.0.0.1", "10.0.0.1:2377", ":2377", "0.0.0.0:0", "10.0.0.1:65536", "eth0",
                 "[::1]:2377", "127.0.0.1:9100", "9100", "")),
    (("pool",), ("10.0.0.0/8", "10.20.0.0/16", "10.0.0.1/8", "fd00::/8", "10.0.0.0/30")),
    (("availability", "role"), ("active", "pause", "drain", "manager", "worker", "Drain")),
    (("args", "entrypoint", "health-cmd"), ("sleep 5", "'unclosed", 'a "b c"', "", "\\")),
)


def hinted_value_list(flag: str) -> list[str]:
    """The values the name of `flag` suggests (empty: none)."""
    return [value for words, values in _HINTS if any(w in flag for w in words)
            for value in values]


def hinted_values(flag: str) -> st.SearchStrategy[str]:
    """The values tried for `flag`: three times in four one its name suggests, else any."""
    hints = hinted_value_list(flag)
    if not hints:
        return ARGV_VALUES
    fitting = st.sampled_from(hints)
    return st.integers(0, 3).flatmap(lambda pick: ARGV_VALUES if pick == 0 else fitting)


@st.composite
def argv_for(draw: st.DrawFn, parser: argparse.ArgumentParser, positionals: list[str],
             max_options: int = 8) -> list[str]:
    """A command line for `parser`: some of its options (repeated ones included) with
    values (mostly fitting the flag, often not), in `--flag value` or `--flag=value`
    form; sometimes a value flag without its value or a stray token; then positionals."""
    options = option_strings(parser)
    argv: list[str] = []
    for _ in range(draw(st.integers(0, max_options))):
        name, takes_value = draw(st.sampled_from(options))
        joined = draw(st.booleans())
        if not takes_value and not joined:
            argv.append(name)
            continue
        value = draw(hinted_values(name))
        if joined and name.startswith("--"):
            argv.append(f"{name}={value}")
        else:
            argv.extend([name, value])
    mishap = draw(st.integers(0, 19))
    if mishap == 0:             # a stray token
        argv.insert(draw(st.integers(0, len(argv))), draw(ARGV_VALUES))
    elif mishap == 1 and any(value for _name, value in options):
        argv.insert(draw(st.integers(0, len(argv))),     # a value flag without its value
                    draw(st.sampled_from([name for name, value in options if value])))
    return argv + positionals


@contextlib.contextmanager
def captured_stderr() -> Iterator[io.StringIO]:
    """Collects what argparse writes to stderr (usage errors)."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer), contextlib.redirect_stdout(io.StringIO()):
        yield buffer


def parse_or_usage(argv: list[str]) -> Optional[argparse.Namespace]:
    """`swarm ARGV` parsed as `cli.main.main` parses it, or None when the line was
    refused: argparse's usage error (exit code 2, a message on stderr) or UsageError
    (`main` prints it and exits 1)."""
    with captured_stderr() as err:
        try:
            return parse_command_line(argv)
        except UsageError as exc:
            assert str(exc)
            return None
        except SystemExit as exc:
            assert exc.code == 2, f"argparse exited {exc.code} for {argv!r}"
            assert "error:" in err.getvalue(), f"no message on stderr for {argv!r}"
            return None
