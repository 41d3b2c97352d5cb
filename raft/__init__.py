"""raft package: the replicated, encrypted object store on pysyncobj.

Importing pysyncobj replaces `socket.inet_ntop` for the whole process with a
Windows-only version (pysyncobj/win_inet_pton.py assigns it outside its
`os.name == 'nt'` check), which then fails on every call; pyroute2, for one,
falls back to raw bytes for every address it decodes. This package imports
pysyncobj first thing and puts the real function back, so any process that
uses the store keeps a working socket module.
"""
import socket as _socket

_inet_ntop = _socket.inet_ntop
import pysyncobj.tcp_connection  # noqa: E402,F401  (the import that patches socket)

_socket.inet_ntop = _inet_ntop
