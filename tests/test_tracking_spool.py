"""The client's spool and its offline runs, in process: no server involved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trainboard.tracking.run import Run
from trainboard.tracking.spool import Spool, spool_folders

URL = "http://127.0.0.1:9"


def test_the_spool_reads_back_whole_lines_from_where_sending_stopped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "run", url=URL, create={"kind": "external", "name": "x"})
    spool.append([("loss", 0, 1.0, 10.0), ("loss", 1, None, 11.0)])
    spool.append([("loss", 2, 0.5, 12.0)])
    spool.close()
    with (tmp_path / "run" / "points.jsonl").open("ab") as handle:
        handle.write(b'[["loss",3,0.2')  # the process died mid-line
    again = Spool.open(tmp_path / "run")
    points, offset = again.unsent(URL, limit=10)
    assert points == [("loss", 0, 1.0, 10.0), ("loss", 1, None, 11.0), ("loss", 2, 0.5, 12.0)]
    assert again.pending(URL) == 3
    again.upload(URL)["sent_bytes"] = offset
    again.save()
    assert Spool.open(tmp_path / "run").pending(URL) == 0
    assert Spool.open(tmp_path / "run").pending("http://elsewhere:1") == 3  # per server
    assert spool_folders(tmp_path) == [tmp_path / "run"]
    assert spool_folders(tmp_path / "run") == [tmp_path / "run"]


def test_an_offline_run_spools_everything_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAINBOARD_SPOOL_DIR", str(tmp_path))
    run = Run("offline", {"lr": 0.1}, mode="offline", capture_console=False, record_system=False)
    run.log({"loss": 1.0, "bad key!": 2.0, "text": "skipped", "nested": {"a": 3}})
    run.log({"loss": float("nan")}, step=5)
    run.log({"loss": 0.5}, step=-1)  # refused with a sentence, not an exception
    run.log("not a dict")  # type: ignore[arg-type]
    run.finish()
    assert run.id is None
    [folder] = spool_folders(tmp_path)
    meta = json.loads((folder / "run.json").read_text())
    assert meta["create"]["params"]["lr"] == 0.1 and meta["finish"]["status"] == "completed"
    points, _ = Spool.open(folder).unsent(URL, limit=100)
    assert sorted((k, s) for k, s, _, _ in points) == [("loss", 0), ("loss", 5), ("nested/a", 0)]
    err = capsys.readouterr().err
    assert "'bad key!' is not logged" in err and "trainboard sync" in err


def test_a_large_batch_is_spooled_in_lines_a_request_can_carry(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "run", url=URL, create={"kind": "external"})
    spool.append([("x", step, 1.0, 0.0) for step in range(12_000)])
    spool.close()
    sent, offset = [], 0
    while True:
        points, offset = spool.unsent(URL, limit=5000)
        if not points:
            break
        assert len(points) <= 6000  # whole lines of at most 1,000 past the limit
        sent += points
        spool.upload(URL)["sent_bytes"] = offset
    assert [p[1] for p in sent] == list(range(12_000)) and offset == spool.size


def test_the_finish_is_in_the_spool_before_the_wait_for_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from tests.helpers import free_port, wait_until

    monkeypatch.setenv("TRAINBOARD_SPOOL_DIR", str(tmp_path))
    nowhere = f"http://127.0.0.1:{free_port()}"
    run = Run("early", url=nowhere, capture_console=False, record_system=False, record_code=False)
    run.log({"loss": 1.0})
    run.flush(5)  # spooled: nobody answers
    finishing = threading.Thread(target=run.finish)
    finishing.start()
    [folder] = spool_folders(tmp_path)

    def finish_saved() -> bool:
        return "finish" in json.loads((folder / "run.json").read_text())

    # Saved at once, while `finish` still waits (3 s) for a server that never answered.
    wait_until(finish_saved, timeout=2, what="the finish in run.json")
    assert finishing.is_alive()
    finishing.join()


def test_flush_spools_instead_of_waiting_for_a_server_that_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import time

    monkeypatch.setenv("TRAINBOARD_SPOOL_DIR", str(tmp_path))
    with socket.socket() as silent:  # connections wait in its backlog, never answered
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        run = Run("slow", url=url, capture_console=False, record_system=False, record_code=False)
        for step in range(10):
            run.log({"loss": float(step)})
        started = time.monotonic()
        run.flush()
        took = time.monotonic() - started
        run.detach()  # no finish: it would wait for the silent server
    assert took < 2, took
    [folder] = spool_folders(tmp_path)
    assert Spool.open(folder).pending(url) == 10
