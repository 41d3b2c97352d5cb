"""cli/node_commands.py and cli/environment.py: the node config built from flags and
the environment (no daemon is started)."""
from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pytest

from cli import environment, node_commands
from cli.main import build_parser
from cli.parsing import UsageError
from node import bootstrap
from node.config import ClusterSettings, PodmanOptions
from node.state import NodeState


def _ns(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_the_config_comes_from_the_flags_and_the_given_environment() -> None:
    ns = _ns("init", "--data-dir", "/srv/n1", "--listen-addr", "10.0.0.1:2377",
             "--foreground")
    env = {"SHOAL_PODMAN_ROOT": "/s/root", "SHOAL_PODMAN_HOME": "/s/home",
           "SHOAL_MIN_CERT_EXPIRY": "30s", "SHOAL_RAFT_SNAPSHOT_ENTRIES": "50",
           "SWARM_DEBUG": "1", "SHOAL_OTHER": "ignored"}
    config = node_commands.node_config(ns, env)
    assert config.data_dir == Path("/srv/n1")
    assert (config.listen_addr, config.advertise_addr, config.foreground) == \
        ("10.0.0.1:2377", None, True)
    assert config.podman == PodmanOptions(root="/s/root", home="/s/home")
    assert config.min_cert_expiry == dt.timedelta(seconds=30)
    assert (config.raft_snapshot_entries, config.debug) == (50, True)
    assert config.daemon_command[-4:] == ("daemon", "--foreground", "--data-dir", "/srv/n1")


def test_an_empty_environment_gives_the_defaults() -> None:
    config = node_commands.node_config(_ns("daemon"), {})
    assert config.data_dir == Path("/var/lib/shoal")
    assert config.podman == PodmanOptions()
    assert config.min_cert_expiry == dt.timedelta(hours=1)
    assert (config.raft_snapshot_entries, config.debug) == (0, False)


def test_a_relative_podman_path_is_refused_with_the_variable_named() -> None:
    with pytest.raises(ValueError, match="SHOAL_PODMAN_RUNROOT"):
        node_commands.node_config(_ns("daemon"), {"SHOAL_PODMAN_RUNROOT": "run"})


def test_only_positive_snapshot_thresholds_count() -> None:
    for raw in ("0", "-3", "many", ""):
        assert environment.raft_snapshot_entries({"SHOAL_RAFT_SNAPSHOT_ENTRIES": raw}) == 0


def test_init_flags_become_cluster_settings() -> None:
    ns = _ns("init", "--dispatcher-heartbeat", "2s", "--task-history-limit", "3",
             "--default-addr-pool", "10.20.0.0/16", "--autolock")
    settings = node_commands.cluster_settings(ns)
    assert settings == ClusterSettings(task_history_limit=3,
                                       dispatcher_heartbeat_ns=2_000_000_000,
                                       default_addr_pool=["10.20.0.0/16"], autolock=True)
    assert settings.as_init() == {"task_history_limit": 3,
                                  "dispatcher_heartbeat_ns": 2_000_000_000,
                                  "default_addr_pool": ["10.20.0.0/16"], "autolock": True}
    assert node_commands.cluster_settings(_ns("init")).as_init() == {}
    with pytest.raises(UsageError, match="--dispatcher-heartbeat"):
        node_commands.cluster_settings(_ns("init", "--dispatcher-heartbeat", "soon"))


@pytest.mark.parametrize("argv,message", [
    # init took what `swarm update` refuses (found by the fuzz tests): a 1ns heartbeat
    # made the new cluster's agents heartbeat without pause, and a limit past int64 made
    # the first daemon fail when it created the cluster object
    (["--dispatcher-heartbeat", "1ns"],
     'invalid value "1ns" for --dispatcher-heartbeat: the period must be at least 100ms'),
    (["--dispatcher-heartbeat", "99ms"], "at least 100ms"),
    (["--task-history-limit", "18446744073709551615"],
     'invalid value "18446744073709551615" for --task-history-limit: out of range'),
])
def test_init_refuses_what_swarm_update_refuses(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        node_commands.cluster_settings(_ns("init", *argv))
    assert node_commands.cluster_settings(
        _ns("init", "--dispatcher-heartbeat", "100ms", "--task-history-limit",
            str(2**63 - 1))).task_history_limit == 2**63 - 1


def test_init_refuses_a_second_cluster_in_the_same_directory(tmp_path: Path, capsys) -> None:
    (tmp_path / "node.json").write_text("{}")
    assert node_commands.cmd_init(_ns("init", "--data-dir", str(tmp_path))) == 1
    assert "already part of a swarm" in capsys.readouterr().err


def test_leave_outside_a_swarm_says_so(tmp_path: Path, capsys) -> None:
    assert node_commands.cmd_leave(_ns("leave", "--data-dir", str(tmp_path))) == 1
    assert capsys.readouterr().err == "Error: This node is not part of a swarm\n"


def test_metrics_flags_reach_the_config() -> None:
    config = node_commands.node_config(
        _ns("daemon", "--metrics-addr", "10.0.0.1:9323", "--metrics-tls"), {})
    assert (config.metrics_addr, config.metrics_tls) == ("10.0.0.1:9323", True)
    config = node_commands.node_config(_ns("join", "--token", "t", "--metrics-addr", "9323",
                                           "10.0.0.2:2377"), {})
    assert (config.metrics_addr, config.metrics_tls) == ("9323", None)
    config = node_commands.node_config(_ns("daemon"), {})
    assert (config.metrics_addr, config.metrics_tls) == (None, None)   # keep node.json's


def test_init_refuses_public_metrics_without_tls_before_making_anything(
        tmp_path: Path, capsys) -> None:
    data_dir = tmp_path / "node"
    ns = _ns("init", "--data-dir", str(data_dir), "--listen-addr", "10.0.0.1:2377",
             "--metrics-addr", "0.0.0.0:9323")
    assert node_commands.cmd_init(ns) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: refusing to serve metrics on 0.0.0.0:9323 without TLS")
    assert "--metrics-tls" in err and "127.0.0.1:9323" in err
    assert not data_dir.exists()


def test_daemon_keeps_new_metrics_flags_in_node_json(tmp_path: Path, capsys) -> None:
    state = NodeState(node_id="n", role="worker", advertise_addr="10.0.0.1:2377",
                      listen_addr="10.0.0.1:2377", raft_addr="10.0.0.1:2378")
    state.save(tmp_path)
    ns = _ns("daemon", "--data-dir", str(tmp_path), "--foreground", "--metrics-addr",
             "10.0.0.1:9323")
    assert node_commands.cmd_daemon(ns) == 1                       # refused: no TLS
    assert "without TLS" in capsys.readouterr().err
    assert NodeState.load(tmp_path).metrics_addr == ""
    config = node_commands.node_config(_ns("daemon", "--data-dir", str(tmp_path), "--foreground",
                                           "--metrics-addr", "9323"), {})
    bootstrap.prepare_resume(config)
    assert (NodeState.load(tmp_path).metrics_addr, NodeState.load(tmp_path).metrics_tls) == \
        ("127.0.0.1:9323", False)
    bootstrap.prepare_resume(node_commands.node_config(
        _ns("daemon", "--data-dir", str(tmp_path), "--foreground"), {}))
    assert NodeState.load(tmp_path).metrics_addr == "127.0.0.1:9323"   # kept
