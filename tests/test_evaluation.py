"""Checkpoint loading, k-NN and linear probe, prediction on new images, the module's test-time
confusion matrix and ISIC 2017 metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from fgssl import FGSSLModule
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation import (
    evaluate_frozen,
    images_from_csv,
    images_from_folder,
    knn_predict,
    linear_probe_predict,
    load_checkpoint,
    predict_images,
    write_kaggle_submission,
)
from fgssl.evaluation.evaluate import Evaluation, write_evaluation
from fgssl.evaluation.predict import eval_transform
from fgssl.evaluation.scoring import confusion_matrix, per_class_report, score_heads
from fgssl.run.loading import build_eval_datamodule, load_run, resolve_checkpoint
from helpers import RandomDataModule, one_thread, tiny_net, tiny_trainer

# ------------------------------------------------------------------ checkpoint loading

single_thread = pytest.fixture(autouse=True)(one_thread)


def test_load_run_rebuilds_the_trained_network(tiny_run: Path) -> None:
    loaded = load_run(tiny_run)
    assert loaded.checkpoint == tiny_run / "finetune/checkpoints/best.ckpt"
    assert loaded.run_dir == tiny_run
    assert loaded.config is not None and loaded.config.finetune_epochs == 2
    assert loaded.class_names[0] == "No DR" and not loaded.module.training
    saved = torch.load(loaded.checkpoint, weights_only=True)["state_dict"]
    for name, value in loaded.module.state_dict().items():
        torch.testing.assert_close(value, saved[name])
    assert resolve_checkpoint(tiny_run, phase="pretrain") == (
        tiny_run / "pretrain/checkpoints/last.ckpt"
    )
    fresh = load_run(tiny_run, random_init=True).module.state_dict()
    assert fresh.keys() == saved.keys()
    assert not torch.equal(fresh["net.classifiers.0.weight"], saved["net.classifiers.0.weight"])


def test_load_checkpoint_never_downloads_imagenet_weights(tiny_run: Path, tmp_path: Path) -> None:
    """A checkpoint of a run that started from ImageNet weights has pretrained: true in its
    network config; loading it offline must not try to fetch them."""
    checkpoint = torch.load(tiny_run / "finetune/checkpoints/best.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["net"]["pretrained"] = True
    checkpoint["hyper_parameters"]["net"]["pretrained_weights"] = "/nowhere/resnet18.safetensors"
    torch.save(checkpoint, tmp_path / "imagenet.ckpt")
    module = load_checkpoint(tmp_path / "imagenet.ckpt")
    assert isinstance(module, FGSSLModule)


def test_checkpoint_errors_name_the_file(tmp_path: Path, tiny_run: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes\.ckpt' is not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "notes.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "tensors.pt")
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        load_checkpoint(tmp_path / "tensors.pt")
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not an fgssl one"):
        load_checkpoint(tmp_path / "other.ckpt")
    torch.save({"state_dict": {}, "path": Path("x")}, tmp_path / "pickled.ckpt")
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        load_checkpoint(tmp_path / "pickled.ckpt")
    with pytest.raises(CheckpointError, match="folder without a finetune checkpoint"):
        resolve_checkpoint(tmp_path)
    checkpoint = torch.load(tiny_run / "finetune/checkpoints/best.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["net"]["feat_dim"] = 24  # no longer fits the weights
    torch.save(checkpoint, tmp_path / "mismatch.ckpt")
    with pytest.raises(CheckpointError, match="cannot rebuild the network"):
        load_checkpoint(tmp_path / "mismatch.ckpt")


# ----------------------------------------------------------- the module's test metrics


def test_module_test_confusion_matrix_counts_every_prediction() -> None:
    module = FGSSLModule(tiny_net(), schedule=[8, 4, 2], lr=0.01)
    data = RandomDataModule(count=32)
    trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    trainer.test(module, datamodule=data)
    module.eval()
    with torch.no_grad():
        batches = list(data.test_dataloader())
        outputs = [module.net(b["image"]) for b in batches]
    labels = torch.cat([b["label"] for b in batches])
    for head in ("combined", "concat"):
        predicted = torch.cat([getattr(o, head).argmax(dim=1) for o in outputs])
        expected = np.zeros((3, 3), dtype=int)
        np.add.at(expected, (labels.numpy(), predicted.numpy()), 1)
        assert module.test_confusion_matrices[head] == expected.tolist()


def test_module_logs_isic2017_aurocs_for_its_class_names() -> None:
    module = FGSSLModule(
        tiny_net(),
        schedule=[8, 4, 2],
        lr=0.01,
        class_names=["melanoma", "seborrheic_keratosis", "nevus"],
    )
    trainer = tiny_trainer(limit_train_batches=1)
    trainer.fit(module, datamodule=RandomDataModule(count=32))
    for head in ("combined", "concat"):
        for name in ("auroc_melanoma", "auroc_seborrheic_keratosis", "mean_auroc"):
            assert 0.0 <= float(trainer.callback_metrics[f"val/{head}/{name}"]) <= 1.0


# ------------------------------------------------------ undefined values in fgssl-eval's files


def test_eval_files_hold_null_and_empty_cells_for_undefined_values(tmp_path: Path, caplog) -> None:
    """A test split without 'c' and a head that never predicts 'b': the AUROC of 'c' and the
    precision of 'b' are undefined, so empty in per_class.csv; an all-'a' split makes
    kappa and AUROC undefined, so null in results.json."""
    names = ["a", "b", "c"]
    labels = torch.tensor([0, 0, 1, 1, 0])
    probabilities = {
        "combined": torch.tensor(
            [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]]
        ),
        "concat": torch.tensor([[0.6, 0.1, 0.3]] * 5),
    }
    with caplog.at_level("WARNING"):
        metrics = score_heads(probabilities, labels, split="test", ordinal=True, class_names=names)
    assert "the test split holds no image of 'c'" in caplog.text
    per_class = pd.concat(
        [per_class_report(p, labels, names).assign(head=h) for h, p in probabilities.items()]
    )
    one_class = score_heads(
        {"combined": probabilities["combined"], "concat": probabilities["concat"]},
        torch.zeros(5, dtype=torch.long),
        split="test",
        ordinal=True,
        class_names=names,
    )
    evaluation = Evaluation(
        split="test",
        class_names=names,
        official_metric="kappa",
        metrics={"combined": metrics["combined"], "concat": one_class["concat"]},
        confusion={h: confusion_matrix(p, labels) for h, p in probabilities.items()},
        per_class=per_class,
        predictions=pd.DataFrame(
            {
                "id": [str(i) for i in range(5)],
                "label": labels.tolist(),
                **{
                    f"prob_{n}": probabilities["combined"][:, c].tolist()
                    for c, n in enumerate(names)
                },
            }
        ),
    )
    paths = write_evaluation(evaluation, tmp_path)
    results = json.loads(paths["results"].read_text())
    assert results["metrics"]["concat"]["kappa"] is None  # all 'a', all predicted 'a'
    assert results["metrics"]["concat"]["auroc"] is None
    assert results["metrics"]["combined"]["auroc"] == pytest.approx(
        np.mean([roc_auc_score(labels == c, probabilities["combined"][:, c]) for c in (0, 1)])
    )
    table = pd.read_csv(paths["per_class"], keep_default_na=False).set_index(["head", "class"])
    assert table.loc[("combined", "c"), "auroc"] == ""  # no image of 'c'
    assert table.loc[("combined", "c"), "recall"] == ""
    assert float(table.loc[("combined", "c"), "precision"]) == 0.0  # predicted once, wrongly
    assert table.loc[("concat", "b"), "precision"] == ""  # never predicted
    assert float(table.loc[("concat", "b"), "recall"]) == 0.0


# ------------------------------------------------------------------ k-NN, linear probe


def clusters(count: int, num_classes: int, dim: int = 8, seed: int = 0, spread: float = 0.6):
    centres = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(99)) * 2
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % num_classes
    features = centres[labels] + spread * torch.randn(count, dim, generator=generator)
    return features, labels


def test_knn_with_flat_weights_is_sklearns_cosine_knn() -> None:
    train_x, train_y = clusters(120, 4, spread=2.0)
    test_x, _ = clusters(50, 4, seed=1, spread=2.0)
    ours = knn_predict(train_x, train_y, test_x, 4, k=7, temperature=1e6)
    reference = KNeighborsClassifier(n_neighbors=7, metric="cosine", algorithm="brute")
    reference.fit(train_x.numpy(), train_y.numpy())
    np.testing.assert_allclose(ours.numpy(), reference.predict_proba(test_x.numpy()), atol=1e-4)


def test_knn_with_a_low_temperature_follows_the_nearest_neighbour() -> None:
    train_x, train_y = clusters(60, 3, spread=2.0)
    test_x, _ = clusters(30, 3, seed=2, spread=2.0)
    ours = knn_predict(train_x, train_y, test_x, 3, k=20, temperature=1e-4)
    nearest = KNeighborsClassifier(n_neighbors=1, metric="cosine", algorithm="brute")
    nearest.fit(train_x.numpy(), train_y.numpy())
    assert ours.argmax(dim=1).tolist() == nearest.predict(test_x.numpy()).tolist()
    torch.testing.assert_close(ours.sum(dim=1), torch.ones(30))


def test_knn_caps_k_and_checks_its_arguments() -> None:
    train_x, train_y = clusters(5, 2)
    assert knn_predict(train_x, train_y, train_x, 2, k=50).shape == (5, 2)
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(train_x, train_y, train_x, 2, k=0)


def test_linear_probe_separates_clusters_and_returns_probabilities() -> None:
    train_x, train_y = clusters(200, 4)
    test_x, test_y = clusters(80, 4, seed=3)
    probabilities = linear_probe_predict(train_x, train_y, test_x, 5)  # class 4 never seen
    assert probabilities.shape == (80, 5)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(80))
    assert float(probabilities[:, 4].abs().max()) == 0.0
    assert (probabilities.argmax(dim=1) == test_y).float().mean() > 0.95


def test_frozen_feature_protocols_on_a_pretrained_checkpoint(tiny_run: Path) -> None:
    loaded = load_run(tiny_run, phase="pretrain")
    datamodule = build_eval_datamodule(loaded.config, ["data.num_workers=0"])
    split = pd.read_csv(tiny_run / "split.csv")
    # resnet18's pooled last stage (512), or the K+1 heads' embeddings (feat_dim 16 each)
    for features, dim in (("backbone", 512), ("embeddings", 4 * 16)):
        results = evaluate_frozen(loaded.module.net, datamodule, split="test", features=features)
        assert results["train_images"] == (split["split"] == "train").sum()
        assert results["eval_images"] == (split["split"] == "test").sum()
        assert results["features"] == features and results["feature_dim"] == dim
        for protocol in ("linear_probe", "knn"):
            metrics = results[protocol]
            assert 0.0 <= metrics["acc"] <= 1.0 and 0.0 <= metrics["auroc"] <= 1.0
            assert -1.0 <= metrics["kappa"] <= 1.0
    with pytest.raises(ConfigError, match="cannot evaluate frozen features on split 'train'"):
        evaluate_frozen(loaded.module.net, datamodule, split="train")
    with pytest.raises(ConfigError, match="features must be one of"):
        evaluate_frozen(loaded.module.net, datamodule, split="test", features="logits")


def test_pipeline_reports_the_protocols_after_pretraining(tiny_run: Path) -> None:
    results = json.loads((tiny_run / "results.json").read_text())
    assert {"linear_probe", "knn"} <= set(results["ssl_eval"])
    assert 0.0 <= results["ssl_eval"]["knn"]["acc"] <= 1.0
    confusion = np.array(results["confusion_matrix"]["combined"])
    split = pd.read_csv(tiny_run / "split.csv")
    assert confusion.shape == (5, 5) and confusion.sum() == (split["split"] == "test").sum()


# ------------------------------------------------------------------------- prediction


@pytest.fixture
def image_folder(aptos_root: Path, tmp_path: Path) -> Path:
    """APTOS test images, one corrupt PNG and an ISIC 2017-style superpixel map."""
    folder = Path(shutil.copytree(aptos_root / "test_images", tmp_path / "images"))
    (folder / "corrupt.png").write_bytes(b"\x89PNG not really")
    first = sorted(folder.glob("*.png"))[0]
    shutil.copy(first, folder / "ISIC_0000000_superpixels.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_images_from_folder_skips_superpixels_and_other_files(image_folder: Path) -> None:
    inputs = images_from_folder(image_folder)
    assert len(inputs.ids) == 7 and "corrupt" in inputs.ids
    assert not any("superpixels" in i for i in inputs.ids)
    assert inputs.ids == sorted(inputs.ids)
    assert len(images_from_folder(image_folder, exclude=()).ids) == 8


def test_predict_images_reports_unreadable_ones_and_predicts_the_rest(
    tiny_run: Path, image_folder: Path
) -> None:
    loaded = load_run(tiny_run)
    inputs = images_from_folder(image_folder)
    transform = eval_transform(loaded.config)
    plain = predict_images(loaded.module.net, inputs, transform, loaded.class_names, batch_size=4)
    assert [image_id for image_id, _ in plain.failures] == ["corrupt"]
    assert "cannot decode image file" in plain.failures[0][1]
    table = plain.table
    assert len(table) == 6 and "corrupt" not in set(table["id"])
    probabilities = table[[f"prob_{n}" for n in loaded.class_names]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (table["prediction"] == probabilities.argmax(axis=1)).all()
    assert list(table["class"]) == [loaded.class_names[c] for c in table["prediction"]]
    tta = predict_images(loaded.module.net, inputs, transform, loaded.class_names, tta=True)
    assert list(tta.table["id"]) == list(table["id"])
    columns = [f"prob_{n}" for n in loaded.class_names]
    # relative: a confident network's probabilities of the other classes are ~1e-30
    assert not np.allclose(tta.table[columns], table[columns], rtol=1e-6, atol=0)


def test_images_from_csv_by_id_or_by_path(aptos_root: Path, tmp_path: Path) -> None:
    by_id = images_from_csv(aptos_root / "test.csv", image_dir=aptos_root / "test_images")
    expected = pd.read_csv(aptos_root / "test.csv", dtype=str)["id_code"].tolist()
    assert by_id.ids == expected and all(p is not None for p in by_id.paths)
    with pytest.raises(ConfigError, match="--image-dir"):
        images_from_csv(aptos_root / "test.csv")
    listing = tmp_path / "list.csv"
    paths = [str(aptos_root / "test_images" / f"{i}.png") for i in expected[:2]]
    pd.DataFrame({"path": [*paths, "missing.png"]}).to_csv(listing, index=False)
    by_path = images_from_csv(listing)
    assert by_path.ids == [*expected[:2], "missing"] and by_path.paths[2] is None


def test_kaggle_submission_is_written_for_aptos_only(tmp_path: Path) -> None:
    table = pd.DataFrame({"id": ["a1", "b2"], "prediction": [0, 4]})
    aptos = ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]
    path = write_kaggle_submission(table, aptos, tmp_path / "submission.csv")
    assert path.read_text().splitlines() == ["id_code,diagnosis", "a1,0", "b2,4"]
    with pytest.raises(ConfigError, match="APTOS 2019"):
        write_kaggle_submission(table, ["benign", "malignant"], tmp_path / "s.csv")


def test_eval_transform_needs_a_config_or_an_image_size() -> None:
    with pytest.raises(ConfigError, match="--image-size"):
        eval_transform(None)
    image = np.zeros((50, 70, 3), dtype=np.uint8)
    assert tuple(eval_transform(None, image_size=32)(image).shape) == (3, 32, 32)


def test_early_stopping_ends_finetuning(compose_config, aptos_root: Path, tmp_path: Path) -> None:
    """With a min_delta no score can beat, the epoch after the first one stops training."""
    from conftest import TINY_RUN_OVERRIDES
    from fgssl.run.pipeline import run_training

    cfg = compose_config(
        *TINY_RUN_OVERRIDES,
        f"data.root={aptos_root}",
        "pretrain_epochs=0",
        "finetune_epochs=6",
        "early_stopping.patience=1",
        "early_stopping.min_delta=10",
        "figures.enabled=false",
    )
    run_training(cfg, tmp_path)
    metrics = pd.read_csv(tmp_path / "finetune" / "metrics.csv")
    assert metrics["val/combined/kappa"].notna().sum() == 2
