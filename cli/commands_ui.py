"""`swarm ui`: the live cluster page, served from this CLI process.

Owns the command's arguments and its life: check the host is a local socket,
bind the page server (`cli.clusterhttp`) on 127.0.0.1, connect the feed
(`cli.clusterwatch`: the node's Watch API and List calls), print the address
to open, and serve until SIGINT or SIGTERM, then stop the server and the
stream and exit 0.
"""
from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from typing import Any

from cli.client import CLIError
from cli.clusterhttp import ADDRESS, PageServer
from cli.clusterwatch import ClusterFeed
from cli.context import Context
from cli.parsing import UsageError

DEFAULT_PORT = 8090


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a number "
                                         "from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: expected a number "
                                         "from 0 to 65535 (0: any free port)")
    return port


def declare_ui(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm ui [--port PORT]` on `parser`."""
    parser.description = ("Serve a live page of the cluster (nodes, their tasks, services) "
                          f"on {ADDRESS} only, until interrupted. It reads the node's "
                          "socket, so run it on a manager (as root, as the CLI).")
    parser.add_argument("-p", "--port", type=_port, default=DEFAULT_PORT,
                        help=f"Port on {ADDRESS} to serve the page on (default {DEFAULT_PORT}; "
                             "0 picks a free one)")
    parser.set_defaults(handler=serve)


def _bind(feed: ClusterFeed, port: int) -> PageServer:
    try:
        return PageServer(feed.state, port, source=feed.host)
    except OSError as exc:
        why = "it is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise CLIError(f"Error: cannot serve the cluster page on {ADDRESS}:{port}: {why}; "
                       "choose another port with --port") from None


def serve(ctx: Context, ns: argparse.Namespace) -> int:
    if not ctx.client.target.is_unix:
        raise UsageError(f"swarm ui reads the node's local socket, not {ctx.host}: run it on "
                         "a manager, with -H unix:///path/to/swarm.sock if the socket is not "
                         "the default one")
    stop = threading.Event()
    feed = ClusterFeed(ctx.host)
    server = None
    previous: dict[signal.Signals, Any] = {}
    try:
        server = _bind(feed, ns.port)
        feed.on_change = server.changed
        feed.connect()
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
        feed.start()
        server.start()
        ctx.print(f"Serving the cluster page of {ctx.host} on {server.url}")
        ctx.print("Open it in a browser on this machine (or through an SSH tunnel); "
                  "press Ctrl-C to stop.")
        ctx.out.flush()
        stop.wait()
        ctx.warn("Stopping the cluster page.")
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.stop()
        feed.stop()
        sys.stdout.flush()
