"""A tracked run of your own script: `log` appends to the sender's queue and returns.

Nothing here raises because the server is slow, down or refusing: the sender spools, and the
problem is said once on stderr. `finish` (or the process's exit) ends the run."""

from __future__ import annotations

import itertools
import math
import os
import re
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from trainboard.tracking import hooks
from trainboard.tracking.sender import MAX_QUEUE, Sender, say
from trainboard.tracking.spool import spool_root
from trainboard.tracking.transport import Refused, Transport, Unreachable

KEY = re.compile(r"^[A-Za-z0-9_.\-/]{1,200}$")  # as the server's METRIC_KEY_PATTERN
ID_WAIT_SECONDS = 10.0  # `run.id` waits this long for the server to create the run
FINISH_SECONDS = float(os.environ.get("TRAINBOARD_FINISH_TIMEOUT", "30"))


def default_url() -> str:
    return os.environ.get("TRAINBOARD_URL") or "http://127.0.0.1:8000"


class Config(dict[str, Any]):
    """A run's config: a dict whose keys read and write as attributes too (`config.lr`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """As dict.update; `allow_val_change` (wandb's) is accepted and ignored."""
        kwargs.pop("allow_val_change", None)
        super().update(*args, **kwargs)


class Run:
    """One external run on the server at `url` (default `$TRAINBOARD_URL`)."""

    def __init__(
        self,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        url: str | None = None,
        token: str | None = None,
        *,
        notes: str = "",
        mode: str | None = None,
        record_system: bool = True,
        capture_console: bool = True,
        record_code: bool = True,
    ) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.name = name or Path(sys.argv[0] or "script").stem or "script"
        self.config = Config(_plain(config or {}))
        self.summary: dict[str, Any] = {}
        self.step = 0
        self.finished = False
        self.dropped = 0
        self.bad_keys: set[str] = set()
        self.good_keys: set[str] = set()
        self.watchers: list[Any] = []
        self.logged = False
        params: dict[str, Any] = dict(self.config)
        if record_code:
            from trainboard.tracking.environment import describe_environment

            params["_code"] = describe_environment()
        create = {
            "kind": "external",
            "name": self.name[:200],
            "params": params,
            "tags": list(tags or []),
            "notes": notes,
        }
        offline = (mode or os.environ.get("TRAINBOARD_MODE", "online")) == "offline"
        self.token = token or os.environ.get("TRAINBOARD_TOKEN")
        self.sender = Sender(
            url=self.url, token=self.token, create=create, offline=offline, spool_dir=spool_root()
        )
        self.queue = self.sender.queue
        if record_system:
            from trainboard.tracking.system import SystemSampler

            sampler = SystemSampler()
            self.sender.every(sampler.period, sampler.sample)
        self.console = None
        if capture_console:
            from trainboard.tracking.console import Console

            self.console = Console(self.sender.lines)
        hooks.track(self)

    @property
    def id(self) -> int | None:
        """The server's id of this run; None while it could not be created (spooled)."""
        self.sender.created.wait(ID_WAIT_SECONDS)
        return self.sender.run_id

    @property
    def spool_dir(self) -> Path:
        return self.sender.spool.folder

    def log(
        self, data: dict[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Queue `data`'s numbers at `step` (default: the next step); never blocks or raises."""
        try:
            if step is None:
                step = self.step
                if commit is not False:
                    self.step += 1
            else:
                step = int(step)
                self.step = max(self.step, step + 1)
            if step < 0 or len(self.queue) >= MAX_QUEUE or self.finished:
                why = "queue full" if len(self.queue) >= MAX_QUEUE else "the run has finished"
                self._drop(len(data), f"step {step} is below 0" if step < 0 else why)
                return
            now = time.time()
            put = self.queue.append
            nested: list[tuple[Any, Any]] = []  # grows while it is read: nesting to any depth
            for key, value in itertools.chain(data.items(), nested):
                if isinstance(value, dict):  # {"train": {"loss": x}} logs train/loss
                    nested.extend((f"{key}/{k}", v) for k, v in value.items())
                    continue
                if key not in self.good_keys and not self._check_key(key):
                    continue
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue  # images, strings, tables: not a metric; ignored
                put((key, step, number, now))
                self.summary[key] = number
            if not self.logged:  # the first point is sent at once, not at the next tick
                self.logged = True
                self.sender.wake.set()
            for watcher in self.watchers:
                watcher.log(self, step)
        except Exception as exc:  # a tracker must never break the training it tracks
            self._drop(len(data) if isinstance(data, dict) else 1, f"{type(exc).__name__}: {exc}")

    def _check_key(self, key: Any) -> bool:
        if isinstance(key, str) and KEY.match(key):
            self.good_keys.add(key)
            return True
        if key not in self.bad_keys:
            self.bad_keys.add(key)
            say(f"metric key {key!r} is not logged: keys are 1-200 of A-Z a-z 0-9 _ . - /")
        return False

    def _drop(self, count: int, why: str) -> None:
        if not self.dropped:
            say(f"points dropped ({why}); further drops are counted, not said")
        self.dropped += count

    def define_metric(self, *_args: Any, **_kwargs: Any) -> None:
        """Accepted for wandb's sake; every metric is charted against its step already."""

    def watch(self, model: Any, *_args: Any, log_freq: int = 100, **_kwargs: Any) -> None:
        """Log `grad_norm/<parameter>` of `model` at every `log_freq`-th logged step."""
        from trainboard.tracking.watch import GradientWatcher

        self.watchers.append(GradientWatcher(model, every=log_freq))

    def flush(self, timeout: float = FINISH_SECONDS) -> None:
        """Wait (at most `timeout` seconds) until everything logged so far is sent or spooled."""
        self.sender.flush(timeout)

    def log_checkpoint(self, path: str | Path, epoch: int = 0) -> dict[str, Any] | None:
        """Upload a checkpoint file now; None (and a sentence on stderr) if that fails."""
        self.flush()
        if self.id is None:
            say(f"checkpoint {path} not uploaded: the run is not on the server yet")
            return None
        transport = Transport(self.url, self.token)
        try:
            with Path(path).open("rb") as handle:
                return transport.request(  # type: ignore[no-any-return]
                    "POST",
                    f"/runs/{self.id}/checkpoints",
                    files={"file": (Path(path).name, handle)},
                    data={"epoch": str(epoch)},
                )
        except (OSError, Unreachable, Refused) as exc:
            say(f"checkpoint {path} not uploaded: {exc}")
            return None
        finally:
            transport.close()

    def finish(
        self, status: str = "completed", error: str | None = None, exit_code: int | None = None
    ) -> None:
        """Send what is left and end the run (`failed` for a non-zero `exit_code`); waits at
        most TRAINBOARD_FINISH_TIMEOUT seconds (30), then says what stayed in the spool."""
        if self.finished:
            return
        self.finished = True
        if exit_code:
            status, error = "failed", error or f"the script exited with {exit_code}"
        if self.console is not None:
            self.console.close()
        request: dict[str, Any] = {
            "status": status,
            "error": error,
            "params": json_safe(dict(self.config)),
            "summary": json_safe(self.summary),
        }
        left = self.sender.finish(request, FINISH_SECONDS)
        if self.sender.transport is None:
            say(
                f"offline run spooled in {self.spool_dir}; "
                f"send it with: trainboard sync {self.spool_dir} --url URL"
            )
        elif not self.sender.finished and "disk" in self.sender.told:
            say(f"{left} points of run {self.name!r} could not be sent nor spooled, and are lost")
        elif not self.sender.finished:
            why = f" ({self.sender.refused})" if self.sender.refused else ""
            say(
                f"{left} points of run {self.name!r} remain spooled in {self.spool_dir}{why}; "
                f"send them with: trainboard sync {self.spool_dir}"
            )

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.finish("completed")
        else:
            self.finish("failed", f"{exc_type.__name__ if exc_type else 'error'}: {exc}")


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON: non-finite numbers as null, anything else unknown as its text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth < 8 and isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if depth < 8 and isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value]
    try:
        return json_safe(float(value))  # numpy and torch scalars
    except (TypeError, ValueError, RuntimeError):
        return str(value)[:1000]


def _plain(config: Any) -> dict[str, Any]:
    """A config as a dict: a dict, an argparse Namespace, or anything with `__dict__`."""
    if isinstance(config, dict):
        return dict(config)
    return dict(vars(config))
