"""CSV files written through fgssl.atomic: rounded for reading, exact where metrics are
recomputed from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from fgssl.atomic import write_csv_atomically


def test_exact_csvs_read_back_the_same_floats_and_the_same_auroc(tmp_path: Path) -> None:
    # a confident network: referable-DR scores 1 - p(no DR) that differ below 6 digits
    scores = np.array([1 - 1e-7, 1 - 2e-7, 1 - 3e-7, 1 - 4e-7], dtype=np.float64)
    labels = np.array([1, 0, 1, 0])
    table = pd.DataFrame({"label": labels, "score": scores, "tiny": [1e-30, 2e-30, 3e-30, 0.0]})
    exact = pd.read_csv(write_csv_atomically(tmp_path / "exact.csv", table, exact=True))
    rounded = pd.read_csv(write_csv_atomically(tmp_path / "rounded.csv", table))
    assert np.array_equal(exact["score"].to_numpy(), scores)
    assert np.array_equal(exact["tiny"].to_numpy(), table["tiny"].to_numpy())
    expected = roc_auc_score(labels, scores)  # 0.75 by hand: pairs (0,1) (0,3) (2,3) won
    assert expected == 0.75
    assert roc_auc_score(exact["label"], exact["score"]) == expected
    assert roc_auc_score(rounded["label"], rounded["score"]) == 0.5  # all tied at 1
    assert list(rounded.columns) == ["label", "score", "tiny"]
