"""Evaluating trained checkpoints: loading a checkpoint file, scoring, prediction on new
images, and the self-supervised protocols (linear probe, k-NN) on frozen features."""

from fgssl.evaluation.checkpoints import LoadedRun, load_checkpoint
from fgssl.evaluation.evaluate import Evaluation, evaluate_split, write_evaluation
from fgssl.evaluation.features import extract_features
from fgssl.evaluation.inference import predict_probabilities
from fgssl.evaluation.knn import knn_predict
from fgssl.evaluation.predict import (
    images_from_csv,
    images_from_folder,
    predict_images,
    write_kaggle_submission,
)
from fgssl.evaluation.probe import linear_probe_predict
from fgssl.evaluation.scoring import confusion_matrix, per_class_report, score
from fgssl.evaluation.ssl import evaluate_frozen

__all__ = [
    "Evaluation",
    "LoadedRun",
    "confusion_matrix",
    "evaluate_frozen",
    "evaluate_split",
    "extract_features",
    "images_from_csv",
    "images_from_folder",
    "knn_predict",
    "linear_probe_predict",
    "load_checkpoint",
    "per_class_report",
    "predict_images",
    "predict_probabilities",
    "score",
    "write_evaluation",
    "write_kaggle_submission",
]
