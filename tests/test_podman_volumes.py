"""PodmanRuntime's volume calls against real podman: the list, a removal podman refuses
while a container uses the volume (naming it), a removal, a missing volume.

The test's volume and container carry this run's name and are removed through the
podman CLI (independent of the code under test) whatever happens."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.podmanfixtures import kill_service, podman
from worker.podman import PodmanRuntime
from worker.runtime import VolumeInUse, VolumeNotFound

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def service_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    kill_service(tmp_path)


@pytest_asyncio.fixture
async def runtime(service_dir: Path) -> AsyncIterator[PodmanRuntime]:
    rt = PodmanRuntime(str(service_dir), node_id="test")
    yield rt
    await rt.close()


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """(volume, container) names of this run; both removed afterwards."""
    run = uuid.uuid4().hex[:12]
    volume, container = f"shoaltest-vol-{run}", f"shoaltest-ctr-{run}"
    yield volume, container
    podman("rm", "-f", "-t", "0", container, check=False)
    podman("volume", "rm", "-f", volume, check=False)


async def test_list_and_remove_volumes(runtime: PodmanRuntime, names: tuple[str, str],
                                       demo_image: str) -> None:
    volume, container = names
    podman("volume", "create", "--label", "team=db", "--opt", "type=tmpfs", "--opt",
           "device=tmpfs", volume)
    found = {v.name: v for v in await runtime.list_volumes()}
    assert volume in found
    info = found[volume]
    assert info.driver == "local" and info.labels == {"team": "db"}
    assert info.options == {"type": "tmpfs", "device": "tmpfs"}
    assert info.mountpoint.endswith(f"/volumes/{volume}/_data") and info.created_at > 0

    podman("pull", "--tls-verify=false", demo_image)
    ctr_id = podman("create", "--name", container, "-v", f"{volume}:/data", demo_image,
                    "true").stdout.strip()
    with pytest.raises(VolumeInUse) as info_in_use:
        await runtime.remove_volume(volume)
    assert str(info_in_use.value) == f"remove {volume}: volume is in use - [{ctr_id}]"
    assert podman("volume", "exists", volume, check=False).returncode == 0

    podman("rm", "-f", "-t", "0", container)
    await runtime.remove_volume(volume)
    assert podman("volume", "exists", volume, check=False).returncode == 1
    assert volume not in {v.name for v in await runtime.list_volumes()}
    with pytest.raises(VolumeNotFound, match=f"no such volume: {volume}"):
        await runtime.remove_volume(volume)

