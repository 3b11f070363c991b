"""Test-time augmentation (fgssl.ops.tta): the views, their specs, the mean of the
probabilities over them in inference, in the run's own test and in an ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fgssl.errors import ConfigError
from fgssl.evaluation.inference import predict_probabilities
from fgssl.ops.tta import ALIASES, NO_TTA, VIEWS, averaged_probabilities, tta_views
from fgssl.run.config_checks import check_config
from helpers import RandomDataModule, tiny_module, tiny_net, tiny_trainer

IMAGE = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
"""A batch whose every pixel differs: every view of it is another tensor."""

NUMPY_VIEWS = {  # the symmetries of the square as numpy spells them, on (..., H, W)
    "identity": lambda a: a,
    "hflip": lambda a: np.flip(a, -1),
    "vflip": lambda a: np.flip(a, -2),
    "rot180": lambda a: np.rot90(a, 2, axes=(-2, -1)),
    "transpose": lambda a: np.swapaxes(a, -2, -1),
    "rot90": lambda a: np.rot90(a, 1, axes=(-2, -1)),
    "rot270": lambda a: np.rot90(a, 3, axes=(-2, -1)),
    "antitranspose": lambda a: np.rot90(np.swapaxes(a, -2, -1), 2, axes=(-2, -1)),
}


def test_views_are_the_eight_symmetries_of_the_square() -> None:
    assert set(VIEWS) == set(NUMPY_VIEWS)
    seen = []
    for name, view in VIEWS.items():
        ours = view(IMAGE).numpy()
        np.testing.assert_array_equal(ours, NUMPY_VIEWS[name](IMAGE.numpy()))
        assert not any(np.array_equal(ours, other) for other in seen), name
        seen.append(ours)
    assert ALIASES["flips"] == ("identity", "hflip", "vflip", "rot180")
    assert set(ALIASES["d4"]) == set(VIEWS)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, NO_TTA),
        (False, NO_TTA),
        ("none", NO_TTA),
        ([], NO_TTA),
        (["identity"], NO_TTA),
        (True, ALIASES["flips"]),
        ("flips", ALIASES["flips"]),
        ("d4", ALIASES["d4"]),
        ("hflip, rot90", ("hflip", "rot90")),
        (OmegaConf.create(["identity", "transpose"]), ("identity", "transpose")),
    ],
)
def test_specs(spec: object, expected: tuple[str, ...]) -> None:
    assert tta_views(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("flipz", "unknown view(s) ['flipz']"),
        (["hflip", "hflip"], "view(s) ['hflip'] listed twice"),
        (3, "expected null, one of"),
    ],
)
def test_bad_specs_are_refused_naming_the_key(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^--tta-views.*") as error:
        tta_views(spec, key="--tta-views")
    assert message in str(error.value)


def test_a_bad_tta_config_is_refused_before_training(compose_config) -> None:
    cfg = compose_config("experiment=demo", "tta=[hflip,flop]")
    with pytest.raises(ConfigError, match=r"tta: unknown view\(s\) \['flop'\]"):
        check_config(cfg)


def test_averaged_probabilities_are_the_mean_softmax_over_the_views() -> None:
    """A toy network: logits = per-class weights on the flattened image; the hand
    computation applies each view with numpy."""
    weights = torch.randn(IMAGE[0].numel(), 3, generator=torch.Generator().manual_seed(0))
    calls = []

    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append(x)
        return {"combined": x.flatten(1) @ weights / 100}

    views = ("identity", "rot90", "antitranspose")
    ours = averaged_probabilities(forward, IMAGE, views, first=forward(IMAGE))["combined"]
    assert len(calls) == 3  # the identity's pass was reused
    expected = np.mean(
        [
            torch.from_numpy(NUMPY_VIEWS[v](IMAGE.numpy()).copy())
            .flatten(1)
            .matmul(weights)
            .div(100)
            .softmax(1)
            .numpy()
            for v in views
        ],
        axis=0,
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6, atol=1e-7)


def test_inference_averages_views_and_ensemble_members() -> None:
    """predict_probabilities: the flips are the mean of the four flipped passes, and two
    networks are the mean of each (the second with its columns reordered by name)."""
    data = RandomDataModule(count=16)
    first, second = tiny_net().eval(), tiny_net()
    torch.manual_seed(1)
    for parameter in second.parameters():
        parameter.data.add_(0.05 * torch.randn_like(parameter))
    second.eval()

    def by_hand(net: torch.nn.Module, flips: tuple[tuple[int, ...], ...]) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for batch in data.test_dataloader():
                images = batch["image"]
                probabilities = [
                    net(images.flip(d) if d else images).combined.softmax(1) for d in flips
                ]
                rows.append(torch.stack(probabilities).mean(0))
        return torch.cat(rows).numpy()

    flips = ((), (-1,), (-2,), (-2, -1))
    single = predict_probabilities(first, data.test_dataloader(), tta="flips")["combined"]
    np.testing.assert_allclose(single.numpy(), by_hand(first, flips), rtol=1e-5, atol=1e-6)
    # the second network's output column c is class order[c] of the first: matched by name
    order = [2, 0, 1]
    ensemble = predict_probabilities(
        [first, second], data.test_dataloader(), tta=None, columns=[[0, 1, 2], order]
    )["combined"]
    expected = (by_hand(first, ((),)) + by_hand(second, ((),))[:, order]) / 2
    np.testing.assert_allclose(ensemble.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_the_runs_own_test_averages_its_views() -> None:
    """The module's test epoch with test_views set scores the mean over the views, exactly
    what fgssl-eval's inference with the same views gives; without views it differs."""
    module = tiny_module()
    data = RandomDataModule(count=24)
    module.test_views = ALIASES["d4"]
    tiny_trainer().test(module, datamodule=data)
    tested, labels = module.test_predictions["combined"]
    ours = predict_probabilities(module.net, data.test_dataloader(), tta="d4")
    plain = predict_probabilities(module.net, data.test_dataloader())
    np.testing.assert_allclose(ours["combined"].numpy(), tested, atol=1e-6)
    np.testing.assert_array_equal(ours["label"].numpy(), labels)
    assert np.abs(plain["combined"].numpy() - tested).max() > 1e-4
