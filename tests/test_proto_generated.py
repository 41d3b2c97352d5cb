"""The committed generated modules must match the `.proto` files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_generated_modules_match_protos() -> None:
    res = subprocess.run([sys.executable, "-m", "proto.gen", "--check"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "match their .proto files" in res.stdout


def test_check_notices_a_stale_module(tmp_path: Path) -> None:
    """The check is not a rubber stamp: an edited module makes it fail."""
    import shutil
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "proto", copy / "proto")
    target = copy / "proto" / "objects_pb2.py"
    target.write_text(target.read_text() + "\n# edited by hand\n")
    res = subprocess.run([sys.executable, "-m", "proto.gen", "--check"], cwd=copy,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "objects_pb2.py" in res.stderr
