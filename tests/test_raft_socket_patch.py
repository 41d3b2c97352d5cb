"""Importing the store leaves the socket module working (pysyncobj patches inet_ntop)."""
from __future__ import annotations

import socket
import subprocess
import sys


def test_inet_ntop_still_works_after_importing_the_store() -> None:
    import raft.store  # noqa: F401

    assert socket.inet_ntop(socket.AF_INET, b"\x0a\xc8\x01\x03") == "10.200.1.3"


def test_pysyncobj_alone_breaks_it_which_is_why_raft_restores_it() -> None:
    # In a fresh interpreter, so this process's socket module is not involved.
    code = ("import socket, pysyncobj.tcp_connection\n"
            "try:\n    socket.inet_ntop(socket.AF_INET, b'\\x0a\\x00\\x00\\x01')\n"
            "except Exception as exc:\n    print(type(exc).__name__)\n"
            "else:\n    print('works')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out != "works", "pysyncobj no longer patches socket; raft/__init__.py can go"
