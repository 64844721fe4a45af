"""A loaded LightGBM model scores single rows through the C API's one-row path: the same scores as the trained
model's ``Booster.predict``, missing values included; its batches give them too."""

from __future__ import annotations

import numpy as np
import pytest

from ml.tabular.lightgbm_model import LightGBMModel
from schemas.tabular import LightGBMParams


@pytest.fixture(scope="module")
def trained() -> LightGBMModel:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=2000) > 1).astype(int)
    return LightGBMModel(LightGBMParams(n_estimators=40), num_threads=1).fit(X, y)


@pytest.fixture(scope="module")
def loaded(trained: LightGBMModel) -> LightGBMModel:
    return LightGBMModel.from_bytes(trained.to_bytes())


def test_single_rows_score_as_booster_predict(trained: LightGBMModel, loaded: LightGBMModel) -> None:
    assert loaded._one_row is not None and trained.booster is not None  # noqa: SLF001 - the path under test
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(200, 6))
    rows[::7, 2] = np.nan  # missing values take the trees' default branches on both paths
    # the trained model in memory (no one-row path) is the reference for both paths of the loaded one
    expected = trained.booster.predict(rows, num_threads=1)
    one_by_one = np.concatenate([loaded.predict_scores(rows[i : i + 1]) for i in range(len(rows))])
    np.testing.assert_allclose(one_by_one, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.predict_scores(rows), expected, rtol=0, atol=1e-12)


def test_a_row_of_the_wrong_width_is_refused(loaded: LightGBMModel) -> None:
    assert loaded._one_row is not None  # noqa: SLF001
    with pytest.raises(ValueError, match="expected 6 features"):
        loaded._one_row(np.zeros(5))  # noqa: SLF001
