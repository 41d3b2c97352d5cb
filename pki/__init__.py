"""Shoal's public key infrastructure (DESIGN §4).

- ``pki.ca``: the root CA; issues node certificates (O = cluster ID,
  OU = swarm-manager|swarm-worker, CN = node ID) and cross-signs a new root.
- ``pki.node``: a node's key, CSR, certificate and trusted roots on disk
  (``<data-dir>/certificates/``), its identity, and when to renew.
- ``pki.tokens``: join tokens ``SWMTKN-1-…``, unlock keys ``SWMKEY-1-…``,
  DEK wrapping under a KEK, and the store's payload cipher.
- ``pki.tls``: gRPC credentials, CA pinning from a join token, and the
  caller's identity from its verified client certificate.

Imports only ``proto``, the standard library, ``cryptography`` and ``grpc``.
"""
