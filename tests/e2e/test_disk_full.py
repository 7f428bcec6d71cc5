"""A full disk, on a real server: uploads answer 507 and leave nothing half-written behind.

The full disk is a real one: a small tmpfs mounted over the folder the server writes to (the
tests run as root, as CI does)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server

pytestmark = pytest.mark.slow


@contextmanager
def small_disk(folder: Path, size: str = "256k") -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def weights(count: int) -> bytes:
    """A checkpoint of `count` float32 zeros: uploads must load with weights_only=True."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(count)}, buffer)
    return buffer.getvalue()


def test_a_data_set_upload_on_a_full_disk_is_507_and_leaves_nothing(
    shared_server: Server,
) -> None:
    uploads = shared_server.home / "uploads"
    csv = b"a,b,y\n" + b"".join(b"%d,%d,%d\n" % (i, i * 2, i % 2) for i in range(60_000))
    with small_disk(uploads), httpx.Client(base_url=shared_server.url, timeout=60) as http:
        response = http.post(
            "/api/datasets",
            files={"file": ("big.csv", csv, "text/csv")},
            data={"target": "y", "name": "too-big"},
        )
        assert response.status_code == 507, response.text
        assert "disk is full" in response.json()["detail"]
        assert leftovers(uploads) == []
        names = {d["name"] for d in http.get("/api/catalog").json()["datasets"]}
        assert "too-big" not in names
        # What fits is still stored.
        small = http.post(
            "/api/datasets",
            files={"file": ("small.csv", b"a,y\n1,0\n2,1\n3,0\n4,1\n", "text/csv")},
            data={"target": "y", "name": "fits"},
        )
        assert small.status_code == 201, small.text
        assert leftovers(uploads) == ["fits.csv", "fits.json"]


def test_a_checkpoint_upload_on_a_full_disk_is_507_and_leaves_nothing(
    shared_server: Server,
) -> None:
    with httpx.Client(base_url=shared_server.url, timeout=60) as http:
        run_id = http.post("/api/runs", json={"kind": "external"}).json()["id"]
        folder = shared_server.home / "runs" / str(run_id) / "checkpoints"
        with small_disk(folder):
            response = http.post(
                f"/api/runs/{run_id}/checkpoints",
                files={"file": ("model.pt", weights(100_000))},
                data={"epoch": "1"},
            )
            assert response.status_code == 507, response.text
            assert leftovers(folder) == []
            assert http.get(f"/api/runs/{run_id}/checkpoints").json() == []
