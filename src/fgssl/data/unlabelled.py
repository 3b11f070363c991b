"""Unlabelled images for the pretrain phase: the ``unlabelled`` split of the extra sources
(``data.unlabelled``, read by :mod:`fgssl.data.unlabelled_sources`) and the dataset's own
unlabelled set, checked never to hold the run's validation or test images."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import pandas as pd

from fgssl.data.duplicates import content_keys
from fgssl.data.unlabelled_sources import UnlabelledSource, parse_sources, read_sources
from fgssl.errors import ConfigError, DataLayoutError

__all__ = [
    "HELD_OUT_SPLITS",
    "UNLABELLED_SPLIT",
    "UnlabelledSource",
    "add_unlabelled",
    "check_held_out_overlap",
    "exclude_overlap",
    "parse_sources",
    "pretrain_images",
    "read_sources",
]

log = logging.getLogger(__name__)

UNLABELLED_SPLIT = "unlabelled"
"""The split name of the extra pretraining images (in the split tables and ``split.csv``)."""
OWN_SPLIT = "predict"
"""The split of the dataset's own unlabelled images (APTOS ``test.csv``, EyePACS ``test/``
without its solution file, ISIC 2019/2020 test images without ground truth)."""
HELD_OUT_SPLITS = ("val", "test")
"""Splits whose images may never be pretrained on."""
SHOWN = 3


def check_held_out_overlap(
    pool: pd.DataFrame,
    splits: Mapping[str, pd.DataFrame],
    *,
    what: str = "data.unlabelled image(s)",
    remedy: str = "remove them from the unlabelled sources",
    drop_training_images: bool = True,
) -> pd.DataFrame:
    """``pool`` without the images the training split already holds, after refusing any
    image of the held-out splits (:data:`HELD_OUT_SPLITS`).

    An image is the same as another when both paths name one file (after resolving links)
    or their files are byte-identical (:func:`fgssl.data.duplicates.content_keys`). A pool
    image that is a validation or test image raises :class:`DataLayoutError` naming the
    count and the first few pairs (``what`` names the pool, ``remedy`` the fix); one that is
    a training image is left out of the pool (it is pretrained on as a training image), with
    its count logged, unless ``drop_training_images`` is False (the pool is returned whole).
    """
    if pool.empty:
        return pool
    pool_paths = [str(p) for p in pool["path"]]
    pool_ids = pool["id"].astype(str).tolist()
    pool_real = [os.path.realpath(p) for p in pool_paths]
    others = [
        (name, str(i), str(p))
        for name, table in splits.items()
        if name in (*HELD_OUT_SPLITS, "train")
        for i, p in zip(table["id"], table["path"], strict=True)
    ]
    keys = content_keys(pool_paths + [p for _, _, p in others])
    pool_keys, other_keys = keys[: len(pool_paths)], keys[len(pool_paths) :]
    by_real: dict[str, tuple[str, str]] = {}
    by_key: dict[str, tuple[str, str]] = {}
    for (name, image_id, path), key in zip(others, other_keys, strict=True):
        # the first split naming a file wins: val before a test split that repeats it
        by_real.setdefault(os.path.realpath(path), (name, image_id))
        if key is not None:
            by_key.setdefault(key, (name, image_id))

    held_out: list[str] = []
    in_train: list[int] = []
    for row, (real, key) in enumerate(zip(pool_real, pool_keys, strict=True)):
        match = by_real.get(real)
        how = "is"
        if match is None and key is not None and key in by_key:
            match, how = by_key[key], "is byte-identical to"
        if match is None:
            continue
        if match[0] in HELD_OUT_SPLITS:
            held_out.append(f"{pool_paths[row]!r} {how} {match[0]} image {match[1]!r}")
        else:
            in_train.append(row)
    _refuse_held_out(held_out, what, remedy)
    if in_train and drop_training_images:
        example = pool_ids[in_train[0]]
        log.info(
            "%d %s are training images (e.g. %r): pretrained on once", len(in_train), what, example
        )
        pool = pool.drop(index=pool.index[in_train])
    return pool.reset_index(drop=True)


def _refuse_held_out(held_out: list[str], what: str, remedy: str) -> None:
    if held_out:
        raise DataLayoutError(
            f"{len(held_out)} {what} are validation or test images of this run, e.g. "
            f"{'; '.join(held_out[:SHOWN])}: pretraining on them would leak the held-out "
            f"images into training; {remedy}"
        )


def add_unlabelled(
    splits: Mapping[str, pd.DataFrame],
    sources: Sequence[UnlabelledSource],
    *,
    own: bool,
    missing_images: str,
    dataset: str = "the dataset",
) -> dict[str, pd.DataFrame]:
    """``splits`` with the images of ``sources`` as the :data:`UNLABELLED_SPLIT` split (none:
    unchanged). With ``own``, the dataset must have unlabelled images of its own (the
    :data:`OWN_SPLIT` split), else :class:`ConfigError` naming ``dataset``."""
    result = dict(splits)
    if own and (OWN_SPLIT not in result or result[OWN_SPLIT].empty):
        raise ConfigError(
            f"data.unlabelled_own=true, but {dataset} has no unlabelled images of its own "
            "(APTOS: test.csv with test_images/; EyePACS: test/ without "
            "retinopathy_solution.csv; ISIC 2019 and 2020: test images without ground "
            "truth): set it to false, or list the images in data.unlabelled"
        )
    if sources:
        result[UNLABELLED_SPLIT] = read_sources(sources, missing_images=missing_images)
    return result


def exclude_overlap(splits: Mapping[str, pd.DataFrame], *, own: bool) -> dict[str, pd.DataFrame]:
    """:func:`check_held_out_overlap` applied to the pretraining images that are not
    training images: the :data:`UNLABELLED_SPLIT` split and, with ``own``, the
    :data:`OWN_SPLIT` split (checked, never trimmed: its images stay to be predicted)."""
    result = dict(splits)
    if UNLABELLED_SPLIT in result:
        result[UNLABELLED_SPLIT] = check_held_out_overlap(result[UNLABELLED_SPLIT], result)
    if own and OWN_SPLIT in result:
        kept = check_held_out_overlap(result[OWN_SPLIT], result)
        if len(kept) < len(result[OWN_SPLIT]):
            result[OWN_SPLIT] = result[OWN_SPLIT].assign(
                pretrain=result[OWN_SPLIT]["path"].isin(kept["path"])
            )
    return result


def pretrain_images(splits: Mapping[str, pd.DataFrame], *, own: bool) -> pd.DataFrame:
    """The images of the pretrain phase: every training image (whatever ``label_fraction``
    keeps for finetuning), the :data:`UNLABELLED_SPLIT` split and, with ``own``, the
    dataset's own unlabelled images (:data:`OWN_SPLIT`). Columns ``id``, ``path``, ``label``
    (-1 for the unlabelled)."""
    tables = [splits["train"]]
    if UNLABELLED_SPLIT in splits:
        tables.append(splits[UNLABELLED_SPLIT])
    if own and OWN_SPLIT in splits:
        table = splits[OWN_SPLIT]
        tables.append(table[table["pretrain"]] if "pretrain" in table else table)
    columns = ["id", "path", "label"]
    return pd.concat([t[columns] for t in tables], ignore_index=True)
