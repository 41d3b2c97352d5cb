"""cli/imagepin.py and its plumbing: images pinned to digests as Docker pins them.

Pure parts first (the display form, Docker's warning, stack deploy's
--resolve-image decisions), then `pin` against the lab's real registry and
against a resolver that fails, then the flags through the real CLI talking to
the Control API in process (tests/cliserver.py) with the real lab registry:
`service create` pins, `--no-resolve-image` does not, `service update` re-resolves
only with `--image`, a rollback restores the pinned spec, and `stack deploy
--resolve-image always|changed|never` writes what Docker's stack deploy writes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from cli import imagepin, registry
from cli.imagepin import StackChoice, display_image, stack_choice
from cli.parsing import UsageError
from cli.registry import Credentials, RegistryError
from lab import images
from tests.cliserver import InProcessClient, run, serve

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


# ---- display ----

@pytest.mark.parametrize("image,shown", [
    (f"busybox:latest@{D1}", "busybox:latest"),
    ("busybox:latest", "busybox:latest"),
    ("busybox", "busybox"),
    (f"busybox@{D1}", f"busybox@{D1}"),           # no tag: shown whole, as Docker
    ("docker.io/library/redis:7", "redis:7"),
    ("registry-1.docker.io/library/redis:7", "redis:7"),     # as cli.registry reads it
    (f"registry-1.docker.io/user/app:2@{D1}", "user/app:2"),
    (f"docker.io/library/redis:7@{D1}", "redis:7"),
    ("index.docker.io/user/app:v2", "user/app:v2"),
    (f"user/app:v2@{D1}", "user/app:v2"),
    (f"127.0.0.1:5000/shoal/busybox:latest@{D1}", "127.0.0.1:5000/shoal/busybox:latest"),
    ("127.0.0.1:5000/shoal/busybox", "127.0.0.1:5000/shoal/busybox"),
    (f"localhost/app:1@{D1}", "localhost/app:1"),
    ("docker.io/library/a/b:1", "library/a/b:1"),
    ("Not A Reference:x", "Not A Reference:x"),   # not a reference: as it is
    ("UPPER/app:1", "UPPER/app:1"),
])
def test_tables_show_the_tag_without_the_digest(image: str, shown: str) -> None:
    assert display_image(image) == shown


def test_service_ls_and_ps_rows_use_the_display_form() -> None:
    from cli import format as fmt
    from proto import objects_pb2 as pb
    service = pb.Service(id="x" * 25)
    service.spec.annotations.name = "web"
    service.spec.replicated.replicas = 1
    service.spec.task.container.image = f"busybox:latest@{D1}"
    assert fmt.service_row(service, [])["Image"] == "busybox:latest"
    task = pb.Task(id="t" * 25, service_id=service.id, slot=1, service_name="web")
    task.spec.CopyFrom(service.spec.task)
    assert fmt.task_rows([task], {})[0]["Image"] == "busybox:latest"
    assert fmt.task_rows([task], {}, trunc=False)[0]["Image"] == f"busybox:latest@{D1}"


def test_docker_warning_keeps_dockers_words_and_adds_the_reason() -> None:
    text = imagepin.digest_warning("redis:alpine", "manifest unknown")
    assert text.splitlines() == [
        "image redis:alpine could not be accessed on a registry to record",
        "its digest. Each node will access redis:alpine independently,",
        "possibly leading to different nodes running different",
        "versions of the image.",
        "(manifest unknown)"]


# ---- stack deploy --resolve-image, pure ----

PINNED = f"app:v1@{D1}"


@pytest.mark.parametrize("mode,label,expected", [
    # a new service: resolved unless never
    ("always", None, StackChoice("app:v1", True)),
    ("changed", None, StackChoice("app:v1", True)),
    ("never", None, StackChoice("app:v1", False)),
    # the file names the same image as the last deploy
    ("always", "app:v1", StackChoice("app:v1", True, PINNED)),
    ("changed", "app:v1", StackChoice(PINNED, False)),
    ("never", "app:v1", StackChoice(PINNED, False)),
    # the file names another image
    ("always", "app:v0", StackChoice("app:v1", True)),
    ("changed", "app:v0", StackChoice("app:v1", True)),
    ("never", "app:v0", StackChoice("app:v1", False)),
])
def test_stack_resolve_modes_decide_as_docker(mode: str, label: Optional[str],
                                              expected: StackChoice) -> None:
    deployed = PINNED if label == "app:v1" else (f"app:v0@{D2}" if label else "")
    assert stack_choice(mode, "app:v1", label, deployed) == expected


def test_resolve_mode_values() -> None:
    assert imagepin.check_mode("Changed") == "changed"
    with pytest.raises(ValueError, match='invalid value "sometimes" for --resolve-image'):
        imagepin.check_mode("sometimes")


# ---- pin ----

def _fails(image: str, creds: Optional[Credentials]) -> str:
    raise RegistryError("unauthorized: authentication required")


def test_a_refusal_keeps_the_tag_with_the_warning() -> None:
    pinned = imagepin.pin("127.0.0.1:5000/private/app:1", resolve=_fails)
    assert pinned.image == "127.0.0.1:5000/private/app:1"
    assert "could not be accessed on a registry" in pinned.warning
    assert pinned.warning.endswith("(unauthorized: authentication required)")


def test_an_image_with_a_digest_is_not_resolved() -> None:
    image = f"busybox:1@{D1}"
    assert imagepin.pin(image, resolve=_fails) == (image, "")


def test_credentials_reach_the_resolver() -> None:
    seen = []

    def resolver(image: str, creds: Optional[Credentials]) -> str:
        seen.append((image, creds))
        return D2
    creds = Credentials("u", "p")
    assert imagepin.pin("redis", creds, resolver).image == f"redis:latest@{D2}"
    assert imagepin.pin_all(["a:1", "b:1", "a:1"], lambda i: creds, resolver) == {
        "a:1": (f"a:1@{D2}", ""), "b:1": (f"b:1@{D2}", "")}
    assert sorted(seen) == [("a:1", creds), ("b:1", creds), ("redis", creds)]


def test_an_unreachable_registry_fails_fast_with_the_reason() -> None:
    pinned = imagepin.pin("127.0.0.1:9/nothing/here:1")   # discard port: refused at once
    assert pinned.image == "127.0.0.1:9/nothing/here:1"
    assert "cannot reach registry 127.0.0.1:9" in pinned.warning


@pytest.fixture(scope="module")
def demo() -> tuple[str, str]:
    """The lab's demo image and the digest its tag names in the real registry."""
    image = images.ensure_demo_image()
    return image, images.manifest_digest(images.DEMO_REPO, images.DEMO_TAG)


def test_the_lab_registry_pins_the_demo_image(demo: tuple[str, str]) -> None:
    image, digest = demo
    assert imagepin.pin(image) == (f"{image}@{digest}", "")


# ---- the CLI's flags, against the Control API in process ----

@pytest.fixture
def control(monkeypatch: pytest.MonkeyPatch) -> InProcessClient:
    return serve(monkeypatch)


def _image(capsys: pytest.CaptureFixture[str], service: str) -> str:
    code, out, _ = run(capsys, "service", "inspect", service, "--format",
                       "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
    assert code == 0
    return out.strip()


def test_create_pins_and_no_resolve_image_does_not(control: InProcessClient,
                                                   capsys: pytest.CaptureFixture[str],
                                                   demo: tuple[str, str]) -> None:
    image, digest = demo
    code, _, err = run(capsys, "service", "create", "-d", "--name", "pinned", image)
    assert (code, err) == (0, "")
    assert _image(capsys, "pinned") == f"{image}@{digest}"
    code, out, _ = run(capsys, "service", "ls", "--filter", "name=pinned", "--format",
                       "{{.Image}}")
    assert out.strip() == image                 # ls shows the tag, as Docker
    code, out, _ = run(capsys, "service", "inspect", "--pretty", "pinned")
    assert f"Image:\t\t{image}@{digest}" in out or f"{image}@{digest}" in out

    for spelling in (["--no-resolve-image"], ["--no-resolve-image=true"]):
        name = f"bare{len(spelling[0])}"
        code, _, err = run(capsys, "service", "create", "-d", "--name", name, *spelling, image)
        assert (code, err) == (0, "")
        assert _image(capsys, name) == image
    code, _, _ = run(capsys, "service", "create", "-d", "--name", "back",
                     "--no-resolve-image=false", image)
    assert _image(capsys, "back") == f"{image}@{digest}"


def test_create_warns_and_goes_on_when_the_registry_cannot_say(
        control: InProcessClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "service", "create", "-d", "--name", "lost",
                         "127.0.0.1:5000/shoal/no-such-image:1")
    assert code == 0 and out.strip()
    assert err.startswith("image 127.0.0.1:5000/shoal/no-such-image:1 could not be "
                          "accessed on a registry to record\n"), err
    assert _image(capsys, "lost") == "127.0.0.1:5000/shoal/no-such-image:1"


def test_update_resolves_only_a_given_image(control: InProcessClient,
                                            capsys: pytest.CaptureFixture[str],
                                            demo: tuple[str, str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    image, digest = demo
    assert run(capsys, "service", "create", "-d", "--name", "up", image)[0] == 0
    calls: list[str] = []
    real = imagepin._default_resolver

    def counting(name: str, creds: Optional[Credentials]) -> str:
        calls.append(name)
        return real(name, creds)
    monkeypatch.setattr(imagepin, "_default_resolver", counting)
    # another change keeps the pinned image and asks no registry
    assert run(capsys, "service", "update", "-d", "--env-add", "A=1", "up")[0] == 0
    assert _image(capsys, "up") == f"{image}@{digest}" and calls == []
    # the same tag again is resolved again (how a moved tag is picked up)
    assert run(capsys, "service", "update", "-d", "--image", image, "up")[0] == 0
    assert calls == [image] and _image(capsys, "up") == f"{image}@{digest}"
    # --no-resolve-image with --image: the tag as given
    assert run(capsys, "service", "update", "-d", "--no-resolve-image", "--image", image,
               "up")[0] == 0
    assert calls == [image] and _image(capsys, "up") == image
    # rollback restores the previous, pinned, spec
    assert run(capsys, "service", "rollback", "-d", "up")[0] == 0
    assert _image(capsys, "up") == f"{image}@{digest}"


STACK = """\
services:
  web:
    image: {image}
"""


def _deploy(capsys: pytest.CaptureFixture[str], tmp: Path, image: str,
            *flags: str) -> tuple[int, str, str]:
    path = tmp / "stack.yml"
    path.write_text(STACK.format(image=image))
    return run(capsys, "stack", "deploy", "-d", "-c", str(path), *flags, "pin")


def test_stack_deploy_resolve_image_modes(control: InProcessClient, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          demo: tuple[str, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    image, digest = demo
    code, _, err = _deploy(capsys, tmp_path, image, "--resolve-image", "never")
    assert (code, err) == (0, "")
    assert _image(capsys, "pin_web") == image
    code, _, err = _deploy(capsys, tmp_path, image)               # always (the default)
    assert (code, err) == (0, "")
    assert _image(capsys, "pin_web") == f"{image}@{digest}"
    # never and changed keep the deployed pin when the file names the same image
    moved = "sha256:" + "9" * 64
    monkeypatch.setattr(imagepin, "_default_resolver", lambda name, creds: moved)
    for mode in ("never", "changed"):
        assert _deploy(capsys, tmp_path, image, "--resolve-image", mode)[0] == 0
        assert _image(capsys, "pin_web") == f"{image}@{digest}"
    # always resolves again: the tag moved
    assert _deploy(capsys, tmp_path, image, "--resolve-image", "always")[0] == 0
    assert _image(capsys, "pin_web") == f"{image}@{moved}"
    # changed resolves a changed image
    other = image.rsplit(":", 1)[0] + ":other"
    assert _deploy(capsys, tmp_path, other, "--resolve-image", "changed")[0] == 0
    assert _image(capsys, "pin_web") == f"{other}@{moved}"
    # a registry that cannot say: the deployed pin stays for the same image, warned
    monkeypatch.setattr(imagepin, "_default_resolver", _fails)
    code, _, err = _deploy(capsys, tmp_path, other)
    assert code == 0 and "could not be accessed on a registry" in err
    assert _image(capsys, "pin_web") == f"{other}@{moved}"


def test_stack_deploy_refuses_a_bad_resolve_mode(control: InProcessClient, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _deploy(capsys, tmp_path, "busybox", "--resolve-image", "sometimes")
    assert code != 0
    assert 'invalid value "sometimes" for --resolve-image: expected "always", "changed" ' \
        'or "never"' in err.strip().splitlines()[-1], err
    assert "pin_web" not in run(capsys, "service", "ls")[1]


# ---- an invalid reference is refused, never sent with a warning ----

def test_pin_refuses_an_invalid_reference_before_any_resolution() -> None:
    asked = []
    with pytest.raises(UsageError, match="^invalid reference format: .*Foo/bar"):
        imagepin.pin("Foo/bar", resolve=lambda i, c: asked.append(i) or D1)
    assert asked == []


@pytest.mark.parametrize("flags", [[], ["--no-resolve-image"]])
def test_create_and_update_refuse_an_invalid_reference(
        control: InProcessClient, capsys: pytest.CaptureFixture[str], flags: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imagepin, "_default_resolver", lambda image, creds: D1)
    code, out, err = run(capsys, "service", "create", "-d", "--name", "bad", *flags, "Foo/bar")
    assert (code, out) == (1, "")
    assert err.strip() == ("Error: invalid reference format: repository name in 'Foo/bar' "
                           "must be lowercase letters, digits and separators"), err
    assert "could not be accessed" not in err
    assert "bad" not in run(capsys, "service", "ls")[1]
    assert run(capsys, "service", "create", "-d", "--name", "good", "busybox:1")[0] == 0
    code, _, err = run(capsys, "service", "update", "-d", *flags, "--image", "busybox:Bad tag",
                       "good")
    assert code == 1 and err.startswith("Error: invalid reference format: "), err
    assert _image(capsys, "good") in ("busybox:1", f"busybox:1@{D1}")


def test_stack_deploy_refuses_an_invalid_reference(control: InProcessClient, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _deploy(capsys, tmp_path, "Foo/bar")
    assert code == 1 and "invalid image reference for service web" in err, err
    assert "could not be accessed" not in err
    assert "pin_web" not in run(capsys, "service", "ls")[1]


# ---- a registry name that DNS never answers ----

def test_a_silent_dns_is_given_up_on_after_its_timeout() -> None:
    import threading
    import time
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(RegistryError, match="no answer from DNS for registry.example "
                                            "within 0.2s"):
        registry.check_dns("registry.example:5000", 0.2, lambda name: release.wait(30))
    assert time.monotonic() - started < 5
    release.set()
    # an answer, or a quick failure (reported by the request that follows), returns
    registry.check_dns("registry.example", 5, lambda name: None)

    def refused(name: str) -> None:
        raise OSError("Name or service not known")
    registry.check_dns("registry.example", 5, refused)


@pytest.mark.parametrize("host,name", [
    ("registry-1.docker.io", "registry-1.docker.io"), ("reg.example:5000", "reg.example"),
    ("127.0.0.1:5000", ""), ("localhost:5000", ""), ("[::1]:5000", ""), ("10.0.0.2", ""),
])
def test_only_names_are_looked_up(host: str, name: str) -> None:
    assert registry._host_name(host) == name
