"""``data.preprocess`` wherever images are read: the image cache (its key names the
preprocessing), the data modules' reader without a cache, fgssl-predict (the same tensors as
training), and the exported models (their metadata names it, fgssl-predict model.onnx
applies it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY_RUN_OVERRIDES
from fgssl.data import APTOS2019DataModule, ImageCache, read_rgb
from fgssl.data.cache import downsize
from fgssl.data.preprocess import Preprocessing
from fgssl.data.retina import ben_graham
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.predict import (
    ImageInputs,
    _TolerantImages,
    eval_transform,
    image_reader,
    images_from_folder,
    predict_images,
)
from fgssl.run.factory import build_datamodule
from helpers import one_thread, tiny_net

single_thread = pytest.fixture(autouse=True)(one_thread)
BEN = Preprocessing("ben_graham", 32)
CLASSES = ["a", "b", "c"]


def test_the_cache_key_names_the_preprocessing(aptos_root: Path, tmp_path: Path) -> None:
    source = sorted((aptos_root / "train_images").iterdir())[0]
    folder = tmp_path / "cache"
    caches = [
        ImageCache(folder, 64),
        ImageCache(folder, 64, preprocess=BEN),
        ImageCache(folder, 64, preprocess=Preprocessing("ben_graham", 40)),
        ImageCache(folder, 64, preprocess=Preprocessing("fundus_crop", 32)),
        ImageCache(folder, 64, preprocess=Preprocessing("shades_of_gray")),
    ]
    assert len({cache.entry(source) for cache in caches}) == len(caches)
    assert ImageCache(folder, 64, preprocess=None).entry(source) == caches[0].entry(source)
    # the entry holds the preprocessed image (2R = 64: nothing to downsize), read back after
    expected = ben_graham(read_rgb(source), 32)
    image, built = caches[1].load(source)
    assert built and np.array_equal(image, expected)
    again, built = caches[1].load(source)
    assert not built and np.array_equal(again, expected)
    smaller, _ = ImageCache(folder, 48, preprocess=BEN).load(source)  # preprocessed, then resized
    assert np.array_equal(smaller, downsize(expected, 48))


def test_the_data_module_preprocesses_with_and_without_a_cache(
    aptos_root: Path, tmp_path: Path
) -> None:
    options: dict = dict(image_size=32, resize_size=36, num_workers=0, preprocess="ben_graham")
    plain = APTOS2019DataModule(aptos_root, **options)
    cached = APTOS2019DataModule(aptos_root, cache_dir=tmp_path / "cache", **options)
    assert plain.cache is None and cached.cache is not None and plain.preprocess == BEN
    source = sorted((aptos_root / "train_images").iterdir())[3]
    expected = ben_graham(read_rgb(source), 32)
    assert np.array_equal(plain.reader(source), expected)
    assert np.array_equal(cached.reader(source), expected)  # cache_size 64 = 2R: as it is
    with pytest.raises(ConfigError, match=r"data\.preprocess must be null or one of"):
        APTOS2019DataModule(aptos_root / "nowhere", preprocess="ben-graham")


@pytest.mark.parametrize("cache", [False, True])
def test_predict_feeds_the_network_what_training_fed_it(
    aptos_root: Path, tmp_path: Path, compose_config, cache: bool
) -> None:
    """The validation images through the training path (the data module's dataset, with or
    without the image cache) and through fgssl-predict's (the run config's reader and
    evaluation transform): identical tensors, and not those of unpreprocessed images."""
    cfg = compose_config(
        *TINY_RUN_OVERRIDES,
        f"data.root={aptos_root}",
        "data.preprocess=ben_graham",
        f"data.cache_dir={tmp_path / 'cache' if cache else 'null'}",
    )
    datamodule = build_datamodule(cfg)
    assert (datamodule.cache is not None) == cache
    val = datamodule.dataset("val")
    paths = [Path(p) for p in val.paths]
    inputs = ImageInputs([p.stem for p in paths], list(paths))
    predicted = _TolerantImages(inputs, eval_transform(cfg), image_reader(cfg))
    plain = _TolerantImages(inputs, eval_transform(cfg), image_reader(None))
    for index in range(len(val)):
        trained_on = val[index]["image"]
        assert torch.equal(predicted[index]["image"], trained_on)
        assert not torch.equal(plain[index]["image"], trained_on)


def test_predict_refuses_another_preprocessing() -> None:
    run = OmegaConf.create({"data": {"image_size": 32, "preprocess": "ben_graham"}})
    assert image_reader(run).preprocess == BEN
    assert image_reader(run, preprocess="ben_graham").preprocess == BEN
    with pytest.raises(ConfigError, match=r"--preprocess none: .* trained with .* ben_graham"):
        image_reader(run, preprocess="none")
    assert image_reader(None, preprocess="ben_graham", image_size=32).preprocess == BEN
    assert image_reader(None, preprocess="none").preprocess is None
    with pytest.raises(ConfigError, match="needs --image-size"):
        image_reader(None, preprocess="shades_of_gray")


@pytest.mark.slow
def test_an_exported_model_names_its_preprocessing_and_predict_applies_it(
    aptos_root: Path, tmp_path: Path, capsys
) -> None:
    pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
    from fgssl.cli import predict as predict_cli
    from fgssl.evaluation.export import (
        PREPROCESS_KEY,
        ExportedModel,
        export_run,
        export_torchscript,
    )

    net = tiny_net().eval()
    run = OmegaConf.create({"data": {"image_size": 32, "preprocess": "ben_graham"}})
    out = tmp_path / "out"
    export_run(net, run, CLASSES, out, formats=["onnx"], source="test")
    meta_path = out / "model.preprocessing.json"
    meta = json.loads(meta_path.read_text())
    assert meta["preprocess"] == {"name": "ben_graham", "version": 1, "radius": 32}
    assert any("GaussianBlur(image, sigma=32/30)" in step for step in meta["steps"])
    model = ExportedModel.load(out / "model.onnx")
    assert model.preprocess == BEN
    recorded = model.session.get_modelmeta().custom_metadata_map[PREPROCESS_KEY]
    export_torchscript(net, out / "model.pt", 32, CLASSES, BEN)
    extra = {PREPROCESS_KEY: ""}
    torch.jit.load(str(out / "model.pt"), _extra_files=extra)
    assert json.loads(recorded) == json.loads(extra[PREPROCESS_KEY]) == meta["preprocess"]
    # fgssl-predict model.onnx preprocesses as the run's reader does
    images = aptos_root / "test_images"
    csv = tmp_path / "onnx.csv"
    assert predict_cli.main([str(out / "model.onnx"), str(images), "-o", str(csv)]) == 0
    columns = [f"prob_{c}" for c in CLASSES]
    got = pd.read_csv(csv)[columns].to_numpy()
    inputs, transform = images_from_folder(images), eval_transform(run)
    expected = predict_images(net, inputs, transform, CLASSES, reader=image_reader(run)).table
    unprocessed = predict_images(net, inputs, transform, CLASSES).table
    assert np.abs(got - expected[columns].to_numpy()).max() <= 1e-5
    assert np.abs(got - unprocessed[columns].to_numpy()).max() > 1e-4
    capsys.readouterr()
    argv = [str(out / "model.onnx"), str(images), "--preprocess", "none"]
    assert predict_cli.main(argv) == 2
    assert "trained with the preprocessing ben_graham" in capsys.readouterr().err
    # a JSON of another export (another radius) beside the model is refused
    meta["preprocess"]["radius"] = 40
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"preprocessing of .* different exports"):
        ExportedModel.load(out / "model.onnx")
    # a JSON written before preprocess existed means none
    del meta["preprocess"]
    assert ExportedModel(out / "model.onnx", meta, session=None).preprocess is None
