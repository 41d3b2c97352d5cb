"""The worker's image pull with registry credentials, on real podman (worker/podman.py).

A private registry (lab/privateregistry.py: htpasswd logins, TLS) on loopback holds a
tiny image; a PodmanRuntime on a storage of its own (so nothing is cached from the
host) pulls it: without credentials, and with wrong ones, the pull fails with the
registry's reason; with the right ones (Docker's X-Registry-Auth value, as
`--with-registry-auth` stores it) the image is there. An X-Registry-Auth value that
carries no credentials is not sent at all.
"""
from __future__ import annotations

import io
import secrets
import subprocess
import tarfile
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from cli.dockerconfig import Login, registry_auth
from lab.podstore import NodeStorage
from lab.privateregistry import PrivateRegistry
from tests.podmanfixtures import kill_service, podman
from worker.podman import PodmanRuntime
from worker.runtime import ImagePullError

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

USER, PASSWORD = "puller", "pw-" + secrets.token_hex(8)
PORT = 5445


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """A one-file image in the private registry; the registry goes after the module."""
    with PrivateRegistry.running("127.0.0.1", USER, PASSWORD, port=PORT) as registry:
        local = f"localhost/shoal-authtest:{secrets.token_hex(4)}"
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            info = tarfile.TarInfo("authtest")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"shoal\n"))
        subprocess.run(["podman", "import", "-", local], input=layer.getvalue(), check=True,
                       capture_output=True, timeout=60)
        try:
            yield registry.push(local, "private/authtest", "v1")
        finally:
            podman("rmi", local, check=False)


@pytest_asyncio.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[PodmanRuntime]:
    storage = NodeStorage(tmp_path / "podstore")
    storage.prepare("127.0.0.1:5000")
    rt = PodmanRuntime(str(tmp_path / "state"), node_id="authtest", options=storage.options)
    try:
        yield rt
    finally:
        await rt.close()
        kill_service(tmp_path / "state")
        storage.remove()


async def test_without_credentials_the_pull_fails_with_the_registrys_reason(
        runtime: PodmanRuntime, image: str) -> None:
    for auth in ("", registry_auth(None, f"127.0.0.1:{PORT}")):
        with pytest.raises(ImagePullError) as caught:
            await runtime.ensure_image(image, auth)
        assert "authentication required" in str(caught.value) or \
            "unauthorized" in str(caught.value), caught.value
    with pytest.raises(ImagePullError) as caught:
        await runtime.ensure_image(image, registry_auth(Login(USER, "wrong"), f"127.0.0.1:{PORT}"))
    assert "unauthorized" in str(caught.value) or "authentication" in str(caught.value)
    assert not await runtime.image_present(image)


async def test_with_credentials_the_image_is_pulled(runtime: PodmanRuntime, image: str) -> None:
    await runtime.ensure_image(image, registry_auth(Login(USER, PASSWORD), f"127.0.0.1:{PORT}"))
    assert await runtime.image_present(image)
    log = Path(runtime.log_path).read_text(errors="replace") if Path(runtime.log_path).exists() \
        else ""
    assert PASSWORD not in log
