"""The scikit-learn estimators: Pipeline and GridSearchCV drive the shared loop."""

from __future__ import annotations

import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from trainboard.sklearn import TrainboardClassifier, TrainboardRegressor


@pytest.mark.slow
def test_classifier_in_a_pipeline_in_grid_search() -> None:
    x, y = load_iris(return_X_y=True)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), TrainboardClassifier(epochs=30, batch_size=16)),
        {"trainboardclassifier__lr": [1e-4, 1e-2]},
        cv=3,
    )
    search.fit(x, y)
    assert search.best_params_ == {"trainboardclassifier__lr": 1e-2}
    assert search.best_score_ > 0.9
    proba = search.predict_proba(x[:4])
    assert proba.shape == (4, 3) and proba.sum(axis=1) == pytest.approx(1.0, abs=1e-5)
    assert set(search.predict(x)) <= {0, 1, 2}


def test_params_round_trip_and_clone() -> None:
    estimator = TrainboardClassifier(lr=0.5, model_params={"hidden_sizes": [8]})
    assert estimator.get_params()["lr"] == 0.5
    estimator.set_params(epochs=3)
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()


def test_classifier_keeps_original_labels() -> None:
    x, y = load_iris(return_X_y=True)
    names = load_iris().target_names[y]
    model = TrainboardClassifier(epochs=20, lr=1e-2, batch_size=16).fit(x, names)
    assert set(model.predict(x)) <= set(names)
    assert model.score(x, names) > 0.85


def test_regressor_scores_r2() -> None:
    x, y = load_diabetes(return_X_y=True)
    model = make_pipeline(
        StandardScaler(), TrainboardRegressor(epochs=40, lr=3e-3, batch_size=32)
    ).fit(x, y)
    assert model.score(x, y) > 0.4
    assert abs(model.predict(x).mean() - y.mean()) < 0.2 * y.std()  # back on the target's scale


def test_diverging_fit_says_it_diverged() -> None:
    # No checkpoint is written before the last epoch (every_epochs 0), and a diverged run
    # never reaches it: the error must be the divergence, not the missing file.
    x, y = load_iris(return_X_y=True)
    estimator = TrainboardClassifier(
        optimizer="sgd", lr=10.0, grad_clip_norm=None, epochs=2, batch_size=16
    )
    with pytest.raises(ValueError, match=r"diverged at epoch \d+.*lower learning rate"):
        estimator.fit(x, y)
    assert not hasattr(estimator, "model_")
