"""fgssl-predict: the class of every image of a folder or a CSV, from a trained checkpoint."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fgssl.atomic import write_csv_atomically
from fgssl.cli.common import (
    MODELS_HELP,
    add_common_options,
    add_precision_option,
    add_preprocess_option,
    add_tta_option,
    resolve_device,
    resolve_precision,
    run_command,
)
from fgssl.cli.members import Members
from fgssl.cli.predict_failures import report_failures, require_some
from fgssl.cli.predict_model import load_model
from fgssl.errors import ConfigError
from fgssl.evaluation.classes import match_classes
from fgssl.evaluation.inference import predict_probabilities
from fgssl.evaluation.predict import (
    EXCLUDED_BY_DEFAULT,
    ID_COLUMNS,
    IMAGE_EXTENSIONS,
    Predictions,
    predict_images,
    read_inputs,
    submitted_column,
    write_kaggle_submission,
)
from fgssl.evaluation.temperature import (
    apply_temperature,
    fit_temperature,
    logits_from_probabilities,
)
from fgssl.run.loading import build_eval_datamodule

PROG = "fgssl-predict"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Predict new images with a trained fgssl checkpoint. Writes a CSV with one row per "
            "image: id, path, prediction (class index), class (its name) and prob_<class> for "
            "every class (the combined prediction's probabilities; a graded run adds the grade "
            "cut by its ordinal thresholds: docs/metrics.md). Images that cannot be "
            "read are listed (and written to <output>_failed.csv); the others are still "
            "predicted, and the exit status is then 1. Several checkpoints are an ensemble: "
            "their probabilities are averaged (refused when their classes or preprocessing "
            "differ; no member's ordinal thresholds are applied), and <output>_ensemble.json "
            "names the members."
        ),
        epilog=(
            "examples:\n"
            "  fgssl-predict outputs/aptos/2024-05-01_10-00-00 new_photos/ -o predictions.csv\n"
            "  fgssl-predict RUN aptos/test.csv --image-dir aptos/test_images --tta \\\n"
            "      --submission submission.csv\n"
            "  fgssl-predict model.ckpt images/ --image-size 224   # no run config at hand\n"
            "  fgssl-predict exported/model.onnx images/   # fgssl-export's file (onnxruntime)\n"
            "  fgssl-predict RUN images/ --calibrate   # temperature-scaled probabilities\n"
            "  fgssl-predict RUN1 RUN2 RUN3 images/ --tta-views d4   # an ensemble of three\n"
            "  fgssl-predict multirun/aptos/2024-05-01_10-00-00 images/   # a fold sweep's folds"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help=MODELS_HELP)
    _add_input_arguments(parser)
    add_tta_option(parser)
    add_precision_option(parser)
    _add_model_options(parser)
    add_common_options(parser)
    return parser


def _add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The images to predict and the files to write."""
    parser.add_argument(
        "input",
        help=f"a folder of images ({', '.join(IMAGE_EXTENSIONS)}), or a CSV with a 'path' "
        f"column or an id column ({', '.join(ID_COLUMNS)}) naming files in --image-dir; "
        "each image listed once, each id (file name without extension) naming one image",
    )
    parser.add_argument(
        "-o", "--output", default="predictions.csv", help="CSV to write (default: %(default)s)"
    )
    parser.add_argument("--image-dir", help="folder of the images a CSV lists by id")
    parser.add_argument("--id-column", help="the CSV's id column (default: found by name)")
    parser.add_argument(
        "--submission",
        help="also write an APTOS 2019 Kaggle submission (id_code,diagnosis) to this file",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """Calibration, preprocessing without a run config, batching, the folder filter."""
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="temperature-scale the probabilities with T fitted on the run's validation "
        "split (Guo et al. 2017; the predicted class is unchanged)",
    )
    parser.add_argument(
        "--config",
        help="the run's config.yaml, for its image size and transforms (default: the one in "
        "the checkpoint's run directory)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="without a run config: resize the short side to 8/7 of this, centre-crop it",
    )
    parser.add_argument(
        "--bits-stored",
        type=int,
        help="significant bits of 16-bit images, e.g. 12 (default: the run config's "
        "data.bits_stored, else 16)",
    )
    add_preprocess_option(parser)
    parser.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    parser.add_argument(
        "--num-workers", type=int, default=0, help="image-decoding processes (default: 0)"
    )
    parser.add_argument(
        "--include-all",
        action="store_true",
        help=f"do not skip files named {', '.join(EXCLUDED_BY_DEFAULT)} in a folder "
        "(ISIC 2017's superpixel maps)",
    )


def _predict(args: argparse.Namespace) -> int:
    # The inputs first: a bad listing (e.g. an id twice) fails before the checkpoint loads.
    inputs = read_inputs(
        args.input, image_dir=args.image_dir, id_column=args.id_column, include_all=args.include_all
    )
    device = resolve_device(args.device)
    resolve_precision(args.precision, None, PROG)  # a bad option before anything loads
    model = load_model(args, device)
    members, class_names = model.members, model.class_names
    fitted = _fit_temperature(members, model.device, model.views) if args.calibrate else None
    predictions = predict_images(
        model.net,
        inputs,
        model.transform,
        class_names,
        device=model.device,
        tta=list(model.views),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        reader=model.reader,
        precision=model.precision,
        columns=model.columns,
        thresholds=model.thresholds,
    )
    output = Path(args.output)
    require_some(predictions, output)
    if fitted is not None:
        _calibrate(predictions.table, fitted, class_names)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomically(output, predictions.table, exact=True)
    print(f"{len(predictions.table)} of {len(inputs.ids)} images predicted: {output}")
    if members is not None and members.is_ensemble:
        facts = members.write_facts(output.with_name(f"{output.stem}_ensemble.json"))
        print(f"{members.describe()}\nits members and settings: {facts}")
    _write_submission(args.submission, predictions, class_names)
    return report_failures(predictions, output)


def _write_submission(path: str | None, predictions: Predictions, class_names: list[str]) -> None:
    """The Kaggle submission at ``path`` (None: none), refused when an image failed."""
    if path and predictions.failures:
        print(
            f"{PROG}: the Kaggle submission {path} is not written: it must hold "
            "every image, and some could not be read (below)",
            file=sys.stderr,
        )
    elif path:
        written = write_kaggle_submission(predictions.table, class_names, path)
        print(f"Kaggle submission (diagnosis = {submitted_column(predictions.table)}): {written}")


def _fit_temperature(
    members: Members | None, device: Any, views: Sequence[str]
) -> tuple[float, int]:
    """T fitted on the run's validation split (:mod:`fgssl.evaluation.temperature`), its
    labels matched to the checkpoint's classes by name, and the number of images it was
    fitted on. Done before the images are predicted, so that a refusal comes first (an
    ensemble: its members have no one validation split)."""
    assert members is not None  # an .onnx model was refused
    if members.is_ensemble:
        raise ConfigError(
            "--calibrate fits T on one run's validation split: an ensemble's members have "
            "no common one (a fold's is another fold's training data); predict without it"
        )
    loaded, precision = members.first, members.precision
    datamodule = build_eval_datamodule(loaded.require_config())
    datamodule.setup()
    assert datamodule.splits is not None
    if "val" not in datamodule.splits:
        raise ConfigError("--calibrate needs the run's validation split: its data has none")
    match = match_classes(
        loaded.recorded_class_names,
        datamodule.class_names,
        checkpoint=str(loaded.checkpoint),
        data=f"validation split of {type(datamodule).__name__} (for --calibrate)",
    )
    outputs = match.to_data_order(
        predict_probabilities(
            loaded.module.net,
            datamodule.eval_dataloader("val"),
            device=device,
            tta=list(views),
            precision=precision,
        )
    )
    temperature = fit_temperature(
        logits_from_probabilities(outputs["combined"].double().numpy()),
        outputs["label"].numpy(),
    )
    return temperature, len(outputs["label"])


def _calibrate(table: pd.DataFrame, fitted: tuple[float, int], class_names: list[str]) -> None:
    """Temperature-scale the table's probabilities (in place) with ``fitted`` (T, images) of
    :func:`_fit_temperature`; the predicted class is kept."""
    temperature, images = fitted
    columns = [f"prob_{name}" for name in class_names]
    if len(table):
        table[columns] = apply_temperature(table[columns].to_numpy(dtype=float), temperature)
    print(
        f"temperature scaling: T = {temperature:.4f}, fitted on the "
        f"{images} validation images (probabilities divided in log space by T)"
    )


main = run_command(PROG, build_parser(), _predict)


def cli(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``fgssl-predict``."""
    sys.exit(main(argv))


if __name__ == "__main__":
    cli()
