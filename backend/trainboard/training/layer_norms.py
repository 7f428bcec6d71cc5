"""Per-layer gradient norms: one `layer_grad_norm/<parameter>` point per parameter every
`log_every_steps`, so an exploding layer shows before the NaN. A model with more than
`MAX_ROWS` parameter tensors is reported per module instead, at the deepest module level
that has at most `MAX_ROWS` modules (the norm of a module is that of all its gradients), and
beyond that per run of consecutive top-level modules (`3..7`)."""

from __future__ import annotations

import torch
from torch import nn

MAX_ROWS = 64
PREFIX = "layer_grad_norm/"


def group_names(names: list[str], limit: int = MAX_ROWS) -> tuple[list[str], list[int]]:
    """The row names and, for each of `names`, the index of its row."""
    depth = max((n.count(".") + 1 for n in names), default=1)
    while True:
        prefixes = [".".join(n.split(".")[:depth]) for n in names]
        rows = list(dict.fromkeys(prefixes))
        if len(rows) <= limit or depth == 1:
            break
        depth -= 1
    if len(rows) > limit:  # too many top-level modules: consecutive runs of them share a row
        size = -(-len(rows) // limit)
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        merged = {row: f"{c[0]}..{c[-1]}" if len(c) > 1 else c[0] for c in chunks for row in c}
        prefixes = [merged[p] for p in prefixes]
        rows = list(dict.fromkeys(prefixes))
    index = {row: i for i, row in enumerate(rows)}
    return rows, [index[p] for p in prefixes]


class LayerNorms:
    """Measures the gradient norm of each row (a parameter, or a module of many) in one
    batched kernel; reading the values back is left to the loop's sync."""

    def __init__(self, model: nn.Module) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.rows, index = group_names([n for n, _ in named])
        self.keys = [PREFIX + row for row in self.rows]
        self.grouped = len(self.rows) < len(self.params)
        self.index = torch.tensor(index, dtype=torch.long)

    def measure(self) -> torch.Tensor | None:
        """Each row's gradient norm, on the device (None for a model without gradients)."""
        present = [(i, p.grad) for i, p in enumerate(self.params) if p.grad is not None]
        if not present:
            return None
        grads = [g for _, g in present]
        norms = torch.stack([n.float() for n in torch._foreach_norm(grads)])
        if len(present) < len(self.params):  # a parameter the loss did not reach: norm 0
            full = norms.new_zeros(len(self.params))
            full[torch.tensor([i for i, _ in present], device=norms.device)] = norms
            norms = full
        if not self.grouped:
            return norms
        squares = norms.new_zeros(len(self.rows))
        squares.index_add_(0, self.index.to(norms.device), norms.square())
        return squares.sqrt()

    def as_metrics(self, norms: torch.Tensor | None) -> dict[str, float]:
        if norms is None:
            return {}
        return dict(zip(self.keys, norms.tolist(), strict=True))
