"""Every number, size and duration flag refuses a value its spec field cannot hold (issue 18).

Values too large for a protobuf field (`--replicas 99999999999999999999`,
`--limit-memory 99999999999999999999999g`, ...) must never end in a traceback
when the spec is built: each flag's parser (cli/parsing.py, one per kind: uint64,
uint32, int32, int64 counts, sizes, CPUs, durations) refuses them with the range,
exits 1, and does so before any call to the node (`service update` checks its
values before it reads the service). Table-driven over every such flag of
`service create|update|scale|logs`, `swarm init|update|ca`; and the largest value
of each field still builds a spec that serializes.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from cli import specs
from cli.main import main, parse_command_line
from proto import objects_pb2 as pb

NOWHERE = ["-H", "unix:///nonexistent/dir/swarm.sock"]
U64, I64, U32, I32 = 2**64 - 1, 2**63 - 1, 2**32 - 1, 2**31 - 1
LONGEST = "2562047h47m16.854775807s"     # int64 nanoseconds
TOO_LONG = "2562048h"
DURATION_FLAGS = ("--stop-grace-period", "--restart-delay", "--restart-window",
                  "--update-delay", "--update-monitor", "--rollback-delay", "--rollback-monitor",
                  "--health-interval", "--health-timeout", "--health-start-period",
                  "--health-start-interval")
COUNT_FLAGS = {   # flag -> (the largest value, the name in the message)
    "--restart-max-attempts": (U64, "max attempts"),
    "--replicas-max-per-node": (U64, "value"),
    "--update-parallelism": (U64, "parallelism"),
    "--rollback-parallelism": (U64, "parallelism"),
    "--health-retries": (I32, "retries"),
}

# (the values given to `service create` and to `service update`, what the refusal says)
SERVICE_CASES: list[tuple[list[str], str]] = [
    (["--replicas", str(U64 + 1)], f"invalid replicas value {U64 + 1}: too large; at most {U64}"),
    (["--replicas", "9" * 20], f"too large; at most {U64}"),
    (["--mode", "replicated-job", "--max-concurrent", str(U64 + 1)],
     f"invalid max-concurrent value {U64 + 1} for --max-concurrent: too large; at most {U64}"),
    *[([flag, str(top + 1)], f"invalid {what} {top + 1} for {flag}: too large; at most {top}")
      for flag, (top, what) in COUNT_FLAGS.items()],
    *[([flag, TOO_LONG], f'invalid duration "{TOO_LONG}" for {flag}: too long; the longest '
                         f"duration is {LONGEST}") for flag in DURATION_FLAGS],
    *[([flag, "99999999999999999999999g"],
       f'invalid size "99999999999999999999999g" for {flag}: too large; the largest size is '
       f"{I64} bytes") for flag in ("--limit-memory", "--reserve-memory")],
    *[([flag, "1e10"], f'invalid CPU value "1e10" for {flag}: too large; at most 9223372036 '
                       "CPUs") for flag in ("--limit-cpu", "--reserve-cpu")],
    *[([flag, "1.5"], f'invalid value "1.5" for {flag}: expected a number between 0 and 1')
      for flag in ("--update-max-failure-ratio", "--rollback-max-failure-ratio")],
    (["--log-opt", "max-size=" + "9" * 30], "is too large"),
    (["--limit-pids", str(I64 + 1)], f'invalid value "{I64 + 1}" for --limit-pids: the range '
                                     f"is 0 to {I64}; 0 = unlimited"),
    (["--oom-score-adj", "1001"], 'invalid value "1001" for --oom-score-adj: the range is '
                                  "-1000 to 1000"),
    (["--oom-score-adj", "-1001"], 'invalid value "-1001" for --oom-score-adj: the range is '
                                   "-1000 to 1000"),
]
# the repeatable values: create's flag, update's flag, the value, what the refusal says
LIST_CASES: list[tuple[str, str, str, str]] = [
    ("--secret", "--secret-add", f"source=s,uid={U32 + 1}",
     f'invalid uid {U32 + 1} for --secret "source=s,uid={U32 + 1}": too large; at most {U32}'),
    ("--secret", "--secret-add", "source=s,gid=-1",
     'invalid gid -1 for --secret "source=s,gid=-1": must be a non-negative integer'),
    ("--config", "--config-add", f"source=c,gid={U32 + 1}", f"too large; at most {U32}"),
    ("--config", "--config-add", "source=c,mode=17777",
     'invalid mode 17777 for --config "source=c,mode=17777": expected octal permission bits '
     "from 0 to 7777"),
    ("--mount", "--mount-add", "type=tmpfs,target=/t,tmpfs-size=99999999999999999999999g",
     f"invalid value for tmpfs-size: 99999999999999999999999g (expected a size such as 64k, "
     f"1m or 1g; at most {I64} bytes)"),
    ("--mount", "--mount-add", "type=tmpfs,target=/t,tmpfs-mode=17777",
     "invalid value for tmpfs-mode: 17777"),
    ("--ulimit", "--ulimit-add", f"nofile=1:{I64 + 1}",
     f"{I64 + 1} is too large; limits are at most {I64}, or -1 for unlimited"),
    ("--publish", "--publish-add", "65536:80", "ports are 1-65535"),
]


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Runs `swarm ARGV` in process against no node: exit 1, one line, no call made."""
    assert main([*NOWHERE, *argv]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err and "Cannot connect" not in err, err
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("values,message", SERVICE_CASES)
def test_service_create_refuses_values_beyond_their_field(
        values: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in _refused(["service", "create", *values, "busybox"], capsys)


@pytest.mark.parametrize("values,message", [(v, m) for v, m in SERVICE_CASES
                                            if "--mode" not in v])
def test_service_update_refuses_them_before_reading_the_service(
        values: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in _refused(["service", "update", *values, "web"], capsys)


@pytest.mark.parametrize("create_flag,update_flag,value,message", LIST_CASES)
def test_repeatable_values_beyond_their_field_are_refused(
        create_flag: str, update_flag: str, value: str, message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert message in _refused(["service", "create", create_flag, value, "busybox"], capsys)
    assert message in _refused(["service", "update", update_flag, value, "web"], capsys)


@pytest.mark.parametrize("argv,message", [
    (["service", "scale", f"web={U64 + 1}"], f"too large; at most {U64}"),
    (["service", "logs", "--tail", str(I64 + 1), "web"],
     f'invalid --tail "{I64 + 1}": too large; at most {I64} lines, or "all"'),
    (["update", "--task-history-limit", str(I64 + 1)],
     f'invalid value "{I64 + 1}" for --task-history-limit: out of range'),
    (["update", "--task-history-limit", str(-I64 - 2)], "out of range"),
    (["update", "--dispatcher-heartbeat", TOO_LONG], f"the longest duration is {LONGEST}"),
    (["update", "--cert-expiry", TOO_LONG], f"the longest duration is {LONGEST}"),
    (["ca", "--cert-expiry", TOO_LONG], f"the longest duration is {LONGEST}"),
])
def test_cluster_and_log_flags_refuse_values_beyond_their_field(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in _refused(argv, capsys)


@pytest.mark.parametrize("values,message", [
    (["--task-history-limit", str(I64 + 1)], "for --task-history-limit: out of range"),
    (["--dispatcher-heartbeat", TOO_LONG], f"the longest duration is {LONGEST}"),
    (["--default-addr-pool-mask-length", str(U64 + 1)],
     f"invalid subnet size /{U64 + 1}: expected 8 to 29"),
])
def test_swarm_init_refuses_them_before_making_anything(
        values: list[str], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "node"
    assert main(["init", "--data-dir", str(data_dir), *values]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (data_dir / "node.json").exists()


def test_the_largest_value_of_every_field_builds_a_spec() -> None:
    argv = ["service", "create", "--replicas", str(U64), "--limit-memory", str(I64),
            "--reserve-cpu", "9223372036", "--update-max-failure-ratio", "1",
            "--secret", f"source=s,uid={U32},gid={U32},mode=7777",
            "--mount", f"type=tmpfs,target=/t,tmpfs-size={I64},tmpfs-mode=7777",
            "--ulimit", f"nofile={I64}", "--publish", "65535:65535"]
    for flag in DURATION_FLAGS:
        argv += [flag, LONGEST]
    for flag, (top, _what) in COUNT_FLAGS.items():
        argv += [flag, str(top)]
    spec = specs.create_spec(parse_command_line([*argv, "busybox"]))
    spec = pb.ServiceSpec.FromString(spec.SerializeToString())
    assert spec.replicated.replicas == U64
    assert spec.task.restart.max_attempts == U64 and spec.update.parallelism == U64
    assert spec.task.restart.delay.nanos == I64 and spec.rollback.monitor.nanos == I64
    assert spec.task.container.healthcheck.retries == I32
    assert (spec.task.container.secrets[0].uid, spec.task.container.secrets[0].mode) == \
        (U32, 0o7777)
    assert spec.task.container.mounts[0].tmpfs_options.size_bytes == I64
    job = specs.create_spec(parse_command_line(
        ["service", "create", "--mode", "replicated-job", "--max-concurrent", str(U64),
         "busybox"]))
    assert job.replicated_job.max_concurrent == U64


def test_every_number_flag_of_service_create_is_in_the_table() -> None:
    """A number, size or duration flag added later is parsed through specs.SCALARS."""
    table = {"--" + attr.replace("_", "-") for attr in specs.SCALARS}
    covered = ({"--replicas", "--max-concurrent", "--limit-memory", "--reserve-memory",
                "--limit-cpu", "--reserve-cpu", "--update-max-failure-ratio",
                "--rollback-max-failure-ratio", "--limit-pids", "--oom-score-adj"}
               | set(DURATION_FLAGS) | set(COUNT_FLAGS))
    assert table == covered
