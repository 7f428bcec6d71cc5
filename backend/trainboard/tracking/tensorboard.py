"""`trainboard.tensorboard.SummaryWriter`: TensorBoard's writer, logging into a trainboard run.

    from trainboard.tensorboard import SummaryWriter   # was: from torch.utils.tensorboard ...
    writer = SummaryWriter("runs/exp1")
    writer.add_scalar("loss/train", loss, step)
    writer.close()

Tags become metric keys (characters a key cannot hold become `_`). A call without
`global_step` takes the tag's next step. Methods of TensorBoard's writer not listed here
(images, text, graphs, ...) are accepted and ignored."""

from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType
from typing import Any

from trainboard.tracking.courier import say
from trainboard.tracking.run import Run

NOT_IN_KEY = re.compile(r"[^A-Za-z0-9_.\-/]")


def metric_key(tag: str) -> str:
    """A TensorBoard tag as a metric key: `loss (train)` → `loss__train_`."""
    return NOT_IN_KEY.sub("_", str(tag))[:200] or "_"


def histogram_stats(values: Any) -> dict[str, float] | None:
    """mean, std (population), min and max of a tensor, an array or numbers; None if empty."""
    if hasattr(values, "detach"):  # a tensor: reduced where it lives, one transfer
        import torch

        flat = values.detach().reshape(-1).double()
        if flat.numel() == 0:
            return None
        stats = torch.stack([flat.mean(), flat.std(unbiased=False), flat.min(), flat.max()])
        return dict(zip(("mean", "std", "min", "max"), stats.tolist(), strict=True))
    import numpy as np

    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        return None
    return {
        "mean": float(array.mean()),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
    }


class SummaryWriter:
    """A trainboard run named `name`, else after `log_dir`'s folder (else after the script)."""

    def __init__(
        self,
        log_dir: str | Path | None = None,
        *,
        name: str | None = None,
        url: str | None = None,
        token: str | None = None,
        **_tensorboard_options: Any,
    ) -> None:
        self.log_dir = str(log_dir) if log_dir is not None else None
        run_name = name or (Path(self.log_dir).name if self.log_dir else None)
        notes = f"TensorBoard log_dir: {self.log_dir}" if self.log_dir else ""
        self.run = Run(run_name, None, None, url, token, notes=notes)
        self.steps: dict[str, int] = {}

    def _step(self, key: str, global_step: int | None) -> int:
        step = self.steps.get(key, 0) if global_step is None else int(global_step)
        self.steps[key] = step + 1
        return step

    def add_scalar(
        self, tag: str, scalar_value: Any, global_step: int | None = None, *_: Any, **__: Any
    ) -> None:
        """Log one value of `tag`."""
        key = metric_key(tag)
        self.run.log({key: scalar_value}, step=self._step(key, global_step))

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: dict[str, Any],
        global_step: int | None = None,
        *_: Any,
        **__: Any,
    ) -> None:
        """Log `main_tag/<tag>` for each tag of the dict, at one step."""
        for tag, value in tag_scalar_dict.items():
            self.add_scalar(f"{main_tag}/{tag}", value, global_step)

    def add_hparams(
        self,
        hparam_dict: dict[str, Any],
        metric_dict: dict[str, Any],
        *_: Any,
        global_step: int | None = None,
        **__: Any,
    ) -> None:
        """Hyperparameters into the run's config (sent with its finish), metrics as scalars."""
        self.run.config.update(hparam_dict)
        for tag, value in metric_dict.items():
            self.add_scalar(tag, value, global_step if global_step is not None else 0)

    def add_histogram(
        self, tag: str, values: Any, global_step: int | None = None, *_: Any, **__: Any
    ) -> None:
        """Summary statistics of `values`: `tag/mean`, `tag/std`, `tag/min`, `tag/max`."""
        try:
            stats = histogram_stats(values)
        except (TypeError, ValueError, RuntimeError) as exc:
            say(f"histogram {tag!r} not logged: {exc}")
            return
        if stats is None:
            return
        key = metric_key(tag)
        self.run.log({f"{key}/{k}": v for k, v in stats.items()}, self._step(key, global_step))

    def flush(self) -> None:
        """Wait until what was added so far is sent (or spooled)."""
        self.run.flush()

    def close(self) -> None:
        """Send what is left and finish the run."""
        self.run.finish()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("add_"):
            return lambda *args, **kwargs: None  # images, text, graphs: not metrics
        raise AttributeError(name)

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
