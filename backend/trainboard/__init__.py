"""trainboard: an experiment tracker and training-job runner for PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from trainboard.client import Client
    from trainboard.inference import load_model
    from trainboard.sweeps.run import run_sweep as sweep

__all__ = ["Client", "__version__", "load_model", "sweep"]


def __getattr__(name: str) -> Any:
    # Lazy: `import trainboard` must not pay for torch unless these are used.
    if name == "load_model":
        from trainboard.inference import load_model

        return load_model
    if name == "sweep":
        from trainboard.sweeps.run import run_sweep

        return run_sweep
    if name == "Client":
        from trainboard.client import Client

        return Client
    raise AttributeError(name)
