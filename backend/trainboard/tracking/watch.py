"""`run.watch(model)`: per-layer gradient norms, read when the script logs, as the run page's
`layer_grad_norm/<parameter>` heatmap shows them for queued runs."""

from __future__ import annotations

import time
from typing import Any, Protocol

MAX_LAYERS = 256  # beyond this many parameter tensors, only the first are charted


class Logger(Protocol):
    def put(self, key: Any, step: int, value: float, timestamp: float) -> bool: ...


class GradientWatcher:
    """Every `every`-th logged step, the L2 norm of each parameter's gradient."""

    def __init__(self, model: Any, every: int = 100) -> None:
        self.parameters = [(name, p) for name, p in model.named_parameters() if p.requires_grad][
            :MAX_LAYERS
        ]
        self.every = max(1, int(every))
        self.calls = 0

    def log(self, run: Logger, step: int) -> None:
        self.calls += 1
        if (self.calls - 1) % self.every:
            return
        import torch

        named = [(n, p.grad) for n, p in self.parameters if p.grad is not None]
        if not named:
            return
        # One stack and one transfer: a `.item()` per layer would sync the device each time.
        norms = torch.stack([torch.linalg.vector_norm(g.detach().float()) for _, g in named])
        now = time.time()
        for (name, _), norm in zip(named, norms.cpu().tolist(), strict=True):
            # Through the run's key check: a parameter's name may hold what a key cannot.
            run.put(f"layer_grad_norm/{name}", step, float(norm), now)
