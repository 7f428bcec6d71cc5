"""A tracked run of your own script: `log` appends to the sender's queue and returns.

Nothing here raises because the server is slow, down or refusing: the sender spools, and the
problem is said once on stderr. `finish` (or the process's exit) ends the run."""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from trainboard.metric_rules import MAX_STEP, METRIC_KEY_PATTERN
from trainboard.tracking import hooks
from trainboard.tracking.courier import MAX_QUEUE, say
from trainboard.tracking.sender import Sender
from trainboard.tracking.spool import spool_root
from trainboard.tracking.transport import Refused, Transport, Unreachable
from trainboard.tracking.values import CONFIG_VALUES, Config, as_number, json_safe, plain

KEY = re.compile(METRIC_KEY_PATTERN)
FINISH_SECONDS = float(os.environ.get("TRAINBOARD_FINISH_TIMEOUT", "30"))


def default_url() -> str:
    return os.environ.get("TRAINBOARD_URL") or "http://127.0.0.1:8000"


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
        self.config = Config(plain(config or {}))
        self.summary: dict[str, Any] = {}
        self.step = 0
        self.finished = False
        self.dropped = 0
        self.bad_keys: set[Any] = set()
        self.told: set[str] = set()
        self.detached = False  # in a forked child: the parent's run, not this process's
        self.good_keys: set[str] = set()
        self.watchers: list[Any] = []
        # Called with each point queued (key, step, value): a sweep's pruner reads them.
        self.observers: list[Callable[[str, int, float], None]] = []
        self.logged = False
        # The request carries a JSON-safe copy (a Path as its text, inf as null); `config`
        # keeps the script's own values.
        params: dict[str, Any] = json_safe(dict(self.config), budget=[CONFIG_VALUES])
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
        """The server's id of this run, or None while the server has not created it (at once
        after `init`, or while it is unreachable): never waits."""
        return self.sender.run_id

    @property
    def spool_dir(self) -> Path:
        return self.sender.spool.folder

    def log(
        self, data: dict[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Queue `data`'s numbers at `step` (default: the next step); never blocks or raises."""
        if self.detached:
            return
        try:
            explicit = step is not None
            if step is None:
                step = self.step
                if commit is not False:
                    self.step += 1
            else:
                step = int(step)
            if not 0 <= step <= MAX_STEP:
                self._drop(len(data), "step", f"step {step} is outside 0..2**62")
                return
            if explicit:
                self.step = max(self.step, step + 1)
            if len(self.queue) >= MAX_QUEUE or self.finished:
                why = "queue full" if len(self.queue) >= MAX_QUEUE else "the run has finished"
                self._drop(len(data), why, why)
                return
            now = time.time()
            nested: list[tuple[Any, Any]] = []  # grows while it is read: nesting to any depth
            for key, value in itertools.chain(data.items(), nested):
                if isinstance(value, dict):  # {"train": {"loss": x}} logs train/loss
                    nested.extend((f"{key}/{k}", v) for k, v in value.items())
                elif (number := as_number(value)) is not None and self.put(key, step, number, now):
                    self.summary[key] = number
            if not self.logged:  # the first point is sent at once, not at the next tick
                self.logged = True
                self.sender.wake.set()
            for watcher in self.watchers:
                watcher.log(self, step)
        except Exception as exc:  # a tracker must never break the training it tracks
            count = len(data) if isinstance(data, dict) else 1
            self._drop(count, "error", f"{type(exc).__name__}: {exc}")

    def put(self, key: Any, step: int, value: float, timestamp: float) -> bool:
        """Queue one point whose key the server will take (else said once); True if queued."""
        if key not in self.good_keys and not self._check_key(key):
            return False
        self.queue.append((key, step, value, timestamp))
        for observe in self.observers:
            observe(key, step, value)
        return True

    def _check_key(self, key: Any) -> bool:
        if isinstance(key, str) and KEY.match(key):
            self.good_keys.add(key)
            return True
        if key not in self.bad_keys:
            self.bad_keys.add(key)
            say(f"metric key {key!r} is not logged: keys are 1-200 of A-Z a-z 0-9 _ . - /")
        return False

    def _drop(self, count: int, topic: str, why: str) -> None:
        """Count dropped points; the first drop of each kind is said."""
        if topic not in self.told:
            self.told.add(topic)
            say(f"points dropped ({why}); further drops like it are counted, not said")
        self.dropped += count

    def detach(self) -> None:
        """Make this run inert in a forked child: the parent logs and finishes it."""
        self.detached = self.finished = True

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
        self.sender.created.wait(FINISH_SECONDS)
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
            "params": json_safe(dict(self.config), budget=[CONFIG_VALUES]),
            "summary": json_safe(self.summary, budget=[CONFIG_VALUES]),
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
