"""The arguments of `swarm init`, `join`, `daemon` and `leave`.

Owns the declarations of the commands that start or stop this host's node.
They run in cli/node_commands.py (the runner `cli.main` names for them),
which imports `node/` and so the manager, worker and store code; declaring
their arguments here keeps that code out of every other command's start-up.
Each parser records the name of the `cmd_*` function that runs it in the
namespace attribute `bootstrap`.
"""
from __future__ import annotations

import argparse

from cli.flags import bool_flag, declare_snapshot_flags

_DATA_DIR_HELP = "Node data directory (default /var/lib/shoal)"
_FOREGROUND_HELP = "Run the node in this process instead of detaching"
_AVAILABILITY_HELP = 'Availability of the node ("active"|"pause"|"drain") (default "active")'
_DATA_PATH_ADDR_HELP = ("Address or interface to use for data path traffic (format: "
                        "<ip|interface>): the node's end of the overlays' VXLAN and "
                        "encrypted tunnels (default: the advertise address)")


def _metrics_flags(parser: argparse.ArgumentParser) -> None:
    """--metrics-addr and --metrics-tls, kept in node.json (a restart serves them again)."""
    parser.add_argument("--metrics-addr", default=None, metavar="IP:PORT",
                        help="Serve Prometheus metrics at http://IP:PORT/metrics (PORT alone: "
                             "127.0.0.1:PORT; loopback only unless --metrics-tls; \"\" turns "
                             "them off) (default: kept, else off)")
    parser.add_argument("--metrics-tls", action="store_const", const=True, default=None,
                        help="Serve metrics over HTTPS with the node's certificate, to clients "
                             "with a certificate from the cluster's CA (allows any IP)")


def _generic_flag(parser: argparse.ArgumentParser) -> None:
    """--node-generic-resource (dockerd's), kept in node.json (a restart offers them again)."""
    parser.add_argument("--node-generic-resource", action="append", default=None,
                        metavar="KIND=VALUE",
                        help="Advertise a generic resource of this node to the scheduler "
                             "(repeatable): KIND=ID names one instance (gpu=GPU-1, "
                             "gpu=GPU-2), KIND=N a count (ssd=3); services reserve them with "
                             "--generic-resource. Given, they replace the kept ones (\"\" "
                             "alone clears them) (default: kept, else none)")


def declare_init(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm init`'s options on `parser`."""
    p = parser
    p.add_argument("--advertise-addr", help="Advertised address (format: <ip|interface>[:port])")
    p.add_argument("--listen-addr", help="Listen address (format: <ip|interface>[:port]) "
                                         "(default 0.0.0.0:2377)")
    p.add_argument("--data-dir", help=_DATA_DIR_HELP)
    p.add_argument("--foreground", action="store_true", help=_FOREGROUND_HELP)
    p.add_argument("--default-addr-pool", action="append", default=None,
                   help="Default address pool in CIDR format (repeatable) (default 10.0.0.0/8)")
    p.add_argument("--default-addr-pool-mask-length", type=int, default=None,
                   help="Subnet mask length for default address pool (default 24)")
    p.add_argument("--task-history-limit", type=int, default=None,
                   help="Task history retention limit (default 5)")
    p.add_argument("--dispatcher-heartbeat", default=None,
                   help="Dispatcher heartbeat period (ns|us|ms|s|m|h) (default 5s)")
    bool_flag(p, "--autolock", None, "Enable manager autolocking (requiring an unlock key "
                                     "to start a stopped manager)")
    p.add_argument("--availability", default=None, help=_AVAILABILITY_HELP)
    p.add_argument("--cert-expiry", default=None,
                   help="Validity period for node certificates (ns|us|ms|s|m|h) "
                        "(default 2160h0m0s)")
    p.add_argument("--data-path-addr", default=None, help=_DATA_PATH_ADDR_HELP)
    p.add_argument("--data-path-port", default=None, metavar="uint32",
                   help="Port number to use for data path traffic (1024 - 49151). If no value "
                        "is set or is set to 0, the default port (4789) is used: the UDP port "
                        "of the overlays' VXLAN traffic on every node (encrypted overlays use "
                        "their own tunnel, UDP 4790)")
    p.add_argument("--external-ca", action="append", default=None, metavar="external-ca",
                   help="Specifications of one or more certificate signing endpoints "
                        "(protocol=cfssl,url=https://...[,cacert=FILE]; repeatable)")
    declare_snapshot_flags(p)
    p.add_argument("--force-new-cluster", action="store_true",
                   help="Force create a new cluster from current state: a one-manager cluster "
                        "from this (stopped) manager's data directory, every object kept")
    _metrics_flags(p)
    _generic_flag(p)
    p.set_defaults(bootstrap="cmd_init")


def declare_join(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm join --token T HOST:PORT`'s arguments on `parser`."""
    p = parser
    p.add_argument("--token", required=True, help="Token for entry into the swarm")
    p.add_argument("--advertise-addr", help="Advertised address (format: <ip|interface>[:port])")
    p.add_argument("--listen-addr", help="Listen address (format: <ip|interface>[:port])")
    p.add_argument("--data-dir", help=_DATA_DIR_HELP)
    p.add_argument("--availability", default=None, help=_AVAILABILITY_HELP)
    p.add_argument("--data-path-addr", default=None, help=_DATA_PATH_ADDR_HELP)
    p.add_argument("--foreground", action="store_true", help=_FOREGROUND_HELP)
    p.add_argument("remote", metavar="HOST:PORT", help="Address of a manager")
    _metrics_flags(p)
    _generic_flag(p)
    p.set_defaults(bootstrap="cmd_join")


def declare_daemon(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm daemon [--data-dir DIR] [--foreground]` on `parser`."""
    parser.add_argument("--data-dir", help=_DATA_DIR_HELP)
    parser.add_argument("--foreground", action="store_true", help=_FOREGROUND_HELP)
    _metrics_flags(parser)
    _generic_flag(parser)
    parser.set_defaults(bootstrap="cmd_daemon")


def declare_leave(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm leave [-f] [--data-dir DIR]` on `parser`."""
    parser.add_argument("-f", "--force", action="store_true",
                        help="Force this node to leave the swarm, ignoring warnings")
    parser.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    parser.set_defaults(bootstrap="cmd_leave")
