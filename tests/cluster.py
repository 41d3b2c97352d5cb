"""Re-exports the lab's single-node harness for the end-to-end tests (waiting for a
condition is tests/helpers.py's `wait`)."""
from lab.localnode import LABEL_NODE, SingleNode, free_port, podman

__all__ = ["LABEL_NODE", "SingleNode", "free_port", "podman"]
