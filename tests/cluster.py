"""Re-exports the lab's single-node harness for the end-to-end tests."""
from lab.localnode import LABEL_NODE, SingleNode, free_port, podman, wait_for

__all__ = ["LABEL_NODE", "SingleNode", "free_port", "podman", "wait_for"]
