"""init_from: starting a run from another finetuned run's network (fgssl.run.init_from), what
it takes (the classifiers only when the classes match by name) and what it refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from conftest import TINY_RUN_OVERRIDES
from fgssl.errors import CheckpointError, ConfigError, DataLayoutError
from fgssl.evaluation.checkpoints import read_checkpoint
from fgssl.models.base import StagedNet
from fgssl.run.factory import build_datamodule
from fgssl.run.init_from import check_init_from, check_init_from_source, init_from_weights
from fgssl.rundir import RunDir


def config(compose: Callable[..., DictConfig], root: Path, source: Path | str, *more: str):
    return compose(
        *TINY_RUN_OVERRIDES, f"data.root={root}", "pretrain_epochs=0", f"init_from={source}", *more
    )


def source_state(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    checkpoint = read_checkpoint(RunDir(run).best_checkpoint)
    state = {k[4:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    return state, checkpoint["hyper_parameters"]


def fresh_net(hparams: dict, num_classes: int) -> StagedNet:
    torch.manual_seed(0)
    net = {**hparams["net"], "num_classes": num_classes, "pretrained": False}
    built: StagedNet = instantiate(net)
    return built


def test_the_classifiers_are_taken_by_class_name(
    compose_config: Callable[..., DictConfig], aptos_root: Path, tiny_run: Path
) -> None:
    cfg = config(compose_config, aptos_root, tiny_run)
    state, hparams = source_state(tiny_run)
    names = list(hparams["class_names"])
    order = [4, 2, 0, 3, 1]  # this data lists the same classes in another order
    net = fresh_net(hparams, len(names))
    taken = init_from_weights(cfg, net, [names[i] for i in order])
    for key, value in state.items():
        if key.startswith("classifiers."):  # row i: the source's row of the data's class i
            assert torch.equal(taken[key], value[order]), key
        else:
            assert torch.equal(taken[key], value), key
    net.load_state_dict(taken)  # the whole network, strictly


def test_other_classes_take_all_but_the_classifiers(
    compose_config: Callable[..., DictConfig], aptos_root: Path, tiny_run: Path, caplog
) -> None:
    cfg = config(compose_config, aptos_root, tiny_run)
    state, hparams = source_state(tiny_run)
    net = fresh_net(hparams, 3)
    own = {k: v.clone() for k, v in net.state_dict().items()}
    taken = init_from_weights(cfg, net, ["nevus", "melanoma", "keratosis"])
    classifier_keys = [k for k in own if k.startswith("classifiers.")]
    assert classifier_keys
    for key in own:
        want = own[key] if key in classifier_keys else state[key]
        assert torch.equal(taken[key], want), key
    assert "the classifiers start fresh" in caplog.text and "nevus" in caplog.text


def test_refusals_name_the_reason_before_any_data(
    compose_config: Callable[..., DictConfig], aptos_root: Path, tiny_run: Path, tmp_path: Path
) -> None:
    check_init_from_source(config(compose_config, aptos_root, tiny_run))  # accepted
    pretrain = RunDir(tiny_run).last_checkpoint("pretrain")
    with pytest.raises(CheckpointError, match=r"pretrain-phase checkpoint.*pretrained_run="):
        check_init_from_source(config(compose_config, aptos_root, pretrain))
    with pytest.raises(CheckpointError, match=r"another network \(feat_dim: checkpoint 16"):
        check_init_from_source(config(compose_config, aptos_root, tiny_run, "model.net.feat_dim=8"))
    with pytest.raises(CheckpointError, match="does not exist"):
        check_init_from_source(config(compose_config, aptos_root, tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="two starting points"):
        check_init_from_source(
            config(compose_config, aptos_root, tiny_run, f"pretrained_run={tiny_run}")
        )
    # the number of classes and the image size may differ
    check_init_from_source(config(compose_config, aptos_root, tiny_run, "data.image_size=48"))


def test_a_source_that_trained_on_this_runs_held_out_images_is_refused(
    compose_config: Callable[..., DictConfig], aptos_root: Path, tiny_run: Path
) -> None:
    same = config(compose_config, aptos_root, tiny_run)
    check_init_from(same, build_datamodule(same))  # its own split: nothing leaks
    other = config(compose_config, aptos_root, tiny_run, "seed=5")
    with pytest.raises(DataLayoutError, match=r"trained on in init_from=.*validation or test"):
        check_init_from(other, build_datamodule(other))


@pytest.mark.slow
def test_a_run_starts_from_a_finetuned_run_with_the_training_aids(
    compose_config: Callable[..., DictConfig],
    aptos_root: Path,
    tiny_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """init_from, gradient accumulation, mixup, EMA and a callback of the user's, together
    through the pipeline."""
    import fgssl.run.pipeline as pipeline

    loaded: list[dict[str, torch.Tensor]] = []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        loaded.append(init_from_weights(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(pipeline, "init_from_weights", spy)
    cfg = config(
        compose_config,
        aptos_root,
        tiny_run,
        "finetune_epochs=2",
        "figures.enabled=false",
        "optim.accumulate_grad_batches=2",
        "mixup.enabled=true",
        "ema.enabled=true",
        "+callbacks.count._target_=test_user_callbacks.Counter",
    )
    results = pipeline.run_training(cfg, tmp_path / "run")
    (taken,) = loaded
    state, _ = source_state(tiny_run)
    assert all(torch.equal(taken[k], state[k]) for k in state)  # the same classes: all of it
    best = read_checkpoint(tmp_path / "run" / "finetune" / "checkpoints" / "best.ckpt")
    assert set(best["fgssl_ema"]) == {"training_state", "updates"}
    assert "Counter" not in str(best["callbacks"])  # stateless: nothing saved
    # 2 limited batches an epoch in one group: 1 update per epoch
    assert best["fgssl_ema"]["updates"] == best["epoch"] + 1
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["test"] == results["test"]
