"""Linear probe: a logistic-regression classifier trained on frozen features."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fgssl.errors import ConfigError

__all__ = ["linear_probe_predict"]


def linear_probe_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    num_classes: int,
    *,
    c: float = 1.0,
    max_iter: int = 2000,
) -> torch.Tensor:
    """Class probabilities (N_test, C) of an L2-regularised multinomial logistic regression
    (L-BFGS, inverse regularisation strength ``c``) fitted on standardised training features.

    Classes absent from the training labels get probability 0.
    """
    if train_labels.unique().numel() < 2:
        raise ConfigError("a linear probe needs training images of at least two classes")
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=0)
    )
    model.fit(train_features.double().numpy(), train_labels.numpy())
    known = model.predict_proba(test_features.double().numpy())
    probabilities = np.zeros((known.shape[0], num_classes))
    probabilities[:, model.classes_] = known
    return torch.from_numpy(probabilities).float()
