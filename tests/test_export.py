"""fgssl-export: the ONNX and TorchScript files against PyTorch on the same images, the
preprocessing written beside them, the command on a trained run, and the refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fgssl.cli import export as export_cli
from fgssl.data.io import read_rgb
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.export import CLASS_NAMES_KEY, ExportedModel, ProbabilityNet, export_run
from fgssl.evaluation.predict import eval_transform, images_from_folder, predict_images
from helpers import one_thread, tiny_net

pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")

single_thread = pytest.fixture(autouse=True)(one_thread)
CLASSES = ["a", "b", "c"]
TOLERANCE = 1e-5
"""Max abs difference of float32 probabilities, ONNX Runtime or TorchScript against PyTorch
(measured: about 1e-7 on the tiny network)."""


def test_exported_models_predict_real_images_as_pytorch(aptos_root: Path, tmp_path: Path):
    net = tiny_net().eval()
    exported = export_run(net, None, CLASSES, tmp_path / "out", image_size=32, source="test")
    assert set(exported["files"]) == {"onnx", "torchscript"}
    assert all(d <= TOLERANCE for d in exported["max_abs_difference"].values())
    model = ExportedModel.load(tmp_path / "out" / "model.onnx")
    meta = json.loads((tmp_path / "out" / "model.preprocessing.json").read_text())
    assert meta["class_names"] == CLASSES == model.class_names
    assert (meta["image_size"], meta["resize_size"]) == (32, 37)
    assert meta["input"]["shape"] == ["batch", 3, 32, 32]
    # the preprocessing as written gives fgssl's own evaluation transform, to the bit
    images = sorted((aptos_root / "test_images").iterdir())[:5]
    ours = eval_transform(None, image_size=32)
    theirs = model.transform()
    batch = torch.stack([theirs(read_rgb(path)) for path in images])
    assert torch.equal(batch, torch.stack([ours(read_rgb(path)) for path in images]))
    # fgssl-predict's probabilities against ONNX Runtime's and TorchScript's on the images
    table = predict_images(net, images_from_folder(aptos_root / "test_images"), ours, CLASSES).table
    expected = table.set_index("id").loc[[p.stem for p in images], [f"prob_{c}" for c in CLASSES]]
    onnx = model(batch)
    scripted = torch.jit.load(str(tmp_path / "out" / "model.pt"))(batch).detach().numpy()
    assert onnx.shape == (5, 3)  # a batch size other than the export's example (2)
    assert np.abs(onnx - expected.to_numpy()).max() <= TOLERANCE
    assert np.abs(scripted - expected.to_numpy()).max() <= TOLERANCE
    np.testing.assert_allclose(onnx.sum(axis=1), 1.0, atol=1e-6)
    # each model file carries its class names itself, in output order
    recorded = model.session.get_modelmeta().custom_metadata_map[CLASS_NAMES_KEY]
    extra = {CLASS_NAMES_KEY: ""}
    torch.jit.load(str(tmp_path / "out" / "model.pt"), _extra_files=extra)
    assert json.loads(recorded) == json.loads(extra[CLASS_NAMES_KEY]) == CLASSES
    # a model beside the JSON of another export (other class names) is refused
    meta["class_names"] = ["c", "b", "a"]
    (tmp_path / "out" / "model.preprocessing.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"\['a', 'b', 'c'\].*\['c', 'b', 'a'\]"):
        ExportedModel.load(tmp_path / "out" / "model.onnx")


def test_export_refusals(tmp_path: Path, monkeypatch):
    net = tiny_net()
    with pytest.raises(ConfigError, match="choose from"):
        export_run(net, None, CLASSES, tmp_path, image_size=32, formats=["tflite"])
    with pytest.raises(ConfigError, match="--image-size"):
        export_run(net, None, CLASSES, tmp_path, formats=["torchscript"])
    with pytest.raises(ConfigError, match=r"2 class names \['a', 'b'\] for a network of 3"):
        export_run(net, None, CLASSES[:2], tmp_path, image_size=32, formats=["torchscript"])
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"fgssl\[export\]"):
        export_run(net, None, CLASSES, tmp_path, image_size=32, formats=["onnx"])


@pytest.mark.slow
def test_fgssl_export_of_a_run(tiny_run: Path, tmp_path: Path, capsys):
    out = tmp_path / "exported"
    assert export_cli.main([str(tiny_run), "-o", str(out), "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    assert "max abs difference of the probabilities to PyTorch" in printed
    assert not (out / "model.pt").exists()
    meta = json.loads((out / "model.preprocessing.json").read_text())
    assert meta["class_names"] == ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]
    assert meta["source"].endswith("best.ckpt")
    model = ExportedModel.load(out / "model.onnx")
    size = meta["image_size"]
    images = torch.rand(3, 3, size, size)
    from fgssl.run.loading import load_run

    with torch.no_grad():
        expected = ProbabilityNet(load_run(tiny_run).module.net.eval())(images).numpy()
    assert np.abs(model(images) - expected).max() <= TOLERANCE
    # a missing model: one line naming the file
    assert export_cli.main([str(tmp_path / "none.ckpt")]) == 2
    assert "none.ckpt" in capsys.readouterr().err


@pytest.mark.slow
def test_fgssl_predict_runs_the_exported_model_and_calibrates(
    tiny_run: Path, aptos_root: Path, tmp_path: Path, capsys, monkeypatch
):
    import pandas as pd

    from fgssl.cli import predict as predict_cli
    from fgssl.evaluation.temperature import apply_temperature

    out = tmp_path / "exported"
    assert export_cli.main([str(tiny_run), "-o", str(out), "--format", "onnx"]) == 0
    images = str(aptos_root / "test_images")
    common = ["--device", "cpu"]
    assert predict_cli.main([str(out / "model.onnx"), images, "-o", str(tmp_path / "o.csv")]) == 0
    assert predict_cli.main([str(tiny_run), images, "-o", str(tmp_path / "t.csv"), *common]) == 0
    onnx, torch_table = pd.read_csv(tmp_path / "o.csv"), pd.read_csv(tmp_path / "t.csv")
    columns = [c for c in torch_table.columns if c.startswith("prob_")]
    assert onnx["id"].tolist() == torch_table["id"].tolist()
    assert np.abs(onnx[columns].to_numpy() - torch_table[columns].to_numpy()).max() <= TOLERANCE
    assert onnx["prediction"].tolist() == torch_table["prediction"].tolist()
    # the tiny run is no better than uniform on its validation split: refused in one line
    capsys.readouterr()
    calibrated_csv = str(tmp_path / "c.csv")
    argv = [str(tiny_run), images, "-o", calibrated_csv, "--calibrate", *common]
    assert predict_cli.main(argv) == 2
    assert "no better than uniform" in capsys.readouterr().err
    assert not Path(calibrated_csv).exists()
    # with a temperature found, the table's probabilities are scaled by it
    monkeypatch.setattr(predict_cli, "fit_temperature", lambda logits, labels: 2.5)
    assert predict_cli.main(argv) == 0
    assert "T = 2.5000" in capsys.readouterr().out
    calibrated = pd.read_csv(calibrated_csv)
    expected = apply_temperature(torch_table[columns].to_numpy(), 2.5)
    assert np.abs(calibrated[columns].to_numpy() - expected).max() < 1e-6  # CSV digits
    assert calibrated["prediction"].tolist() == torch_table["prediction"].tolist()
    assert predict_cli.main([str(out / "model.onnx"), images, "--calibrate"]) == 2
    assert "--calibrate needs the run" in capsys.readouterr().err
