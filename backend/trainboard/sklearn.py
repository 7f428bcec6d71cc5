"""scikit-learn estimators that train through the shared loop, for Pipeline and GridSearchCV.

search = GridSearchCV(
    make_pipeline(StandardScaler(), TrainboardClassifier(epochs=20)),
    {"trainboardclassifier__lr": [1e-3, 1e-2]},
)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

from trainboard.inference import load_model_state
from trainboard.training.data.types import RawData
from trainboard.training.exits import Exit
from trainboard.training.loop import train
from trainboard.training.runnable import validate_names
from trainboard.training.sinks import MemorySink
from trainboard.training.spec import RunSpec

# The name the spec gives the arrays of fit(); they reach the loop directly, not by this name.
_FIT_DATASET = "fit-arrays"


class _TrainboardEstimator(BaseEstimator):
    _task = "classification"

    def __init__(
        self,
        model: str = "mlp",
        model_params: dict[str, Any] | None = None,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        epochs: int = 20,
        batch_size: int = 64,
        grad_clip_norm: float | None = 1.0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.model_params = model_params
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.grad_clip_norm = grad_clip_norm
        self.val_fraction = val_fraction
        self.seed = seed

    def _spec(self) -> RunSpec:
        """The estimator's settings as a spec; SpecProblem (a ValueError) naming a bad one."""
        spec = RunSpec.model_validate(
            {
                "dataset": {"name": _FIT_DATASET, "val_fraction": self.val_fraction},
                "model": {"name": self.model, "params": self.model_params or {}},
                "optimizer": {
                    "name": self.optimizer,
                    "lr": self.lr,
                    "weight_decay": self.weight_decay,
                },
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "grad_clip_norm": self.grad_clip_norm,
                "seed": self.seed,
                "checkpoint": {"every_epochs": 0, "keep_last": 1, "keep_best": 0},
                "device": "cpu",
            }
        )
        return validate_names(spec)

    def _fit(self, features: np.ndarray, target: np.ndarray, classes: list[str] | None) -> Any:
        raw = RawData(features.astype(np.float32), target, self._task, classes=classes)
        sink = MemorySink()
        with tempfile.TemporaryDirectory(prefix="trainboard-fit-") as folder:
            outcome = train(self._spec(), run_dir=Path(folder), sink=sink, raw_data=raw)
            # A diverged run returns before its epoch is checkpointed: there is no file to read.
            if outcome.exit is Exit.diverged:
                raise ValueError(outcome.message)
            state = torch.load(
                Path(folder) / "checkpoints" / f"epoch-{outcome.epoch:04d}.pt", weights_only=True
            )
        self.model_ = load_model_state(state)
        self.history_ = sink.epochs
        self.n_features_in_ = features.shape[1]
        return self


class TrainboardClassifier(ClassifierMixin, _TrainboardEstimator):
    """A PyTorch classifier trained by trainboard's loop."""

    _task = "classification"

    def fit(self, X: Any, y: Any) -> TrainboardClassifier:
        X, y = check_X_y(X, y)
        self.classes_ = unique_labels(y)
        encoded = np.searchsorted(self.classes_, y).astype(np.int64)
        return self._fit(X, encoded, [str(c) for c in self.classes_])

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False)
        return self.model_.predict_proba(X.astype(np.float32))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class TrainboardRegressor(RegressorMixin, _TrainboardEstimator):
    """A PyTorch regressor trained by trainboard's loop."""

    _task = "regression"

    def fit(self, X: Any, y: Any) -> TrainboardRegressor:
        X, y = check_X_y(X, y, y_numeric=True)
        return self._fit(X, y.astype(np.float32), None)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False)
        return self.model_.predict(X.astype(np.float32))
