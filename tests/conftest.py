"""Shared pytest fixtures. Each section belongs to the module named in its heading;
add new fixtures in a section of your own."""
from __future__ import annotations

import pytest


# ---------------------------------------------------------------------------
# Demo image in the lab registry (owner: lab/images.py, worker/podman.py)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def demo_image() -> str:
    """Reference of the busybox demo image, pushed to the lab registry on 127.0.0.1:5000.

    Starts the registry and builds the image the first time; cheap afterwards.
    """
    from lab.images import ensure_demo_image
    return ensure_demo_image()
