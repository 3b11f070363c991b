"""Settings that only make sense with pretrained weights follow model.net.pretrained, as
resize_size follows image_size (docs/studies/real-images.md: measured on HAM10000)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from omegaconf import DictConfig, OmegaConf

from fgssl.conf.resolvers import if_pretrained, reciprocal
from fgssl.errors import ConfigError

Compose = Callable[..., DictConfig]


@pytest.mark.parametrize("experiment", ["aptos", "isic2018", "isic2017"])
def test_from_scratch_the_backbone_trains_at_the_full_rate(
    compose_config: Compose, experiment: str
) -> None:
    weights = compose_config(f"experiment={experiment}", "data.root=/x")
    assert (weights.optim.lr, weights.optim.backbone_lr_scale) == (0.002, 0.1)  # PMG's
    scratch = compose_config(
        f"experiment={experiment}", "data.root=/x", "model.net.pretrained=false"
    )
    assert (scratch.optim.lr, scratch.optim.backbone_lr_scale) == (0.01, 1.0)
    chosen = compose_config(
        f"experiment={experiment}",
        "data.root=/x",
        "model.net.pretrained=false",
        "optim.lr=0.003",
        "optim.backbone_lr_scale=0.5",
    )
    assert (chosen.optim.lr, chosen.optim.backbone_lr_scale) == (0.003, 0.5)  # explicit wins


def test_the_demo_keeps_its_own_rates(compose_config: Compose) -> None:
    cfg = compose_config("experiment=demo")
    assert (cfg.optim.lr, cfg.optim.backbone_lr_scale) == (0.01, 1.0)


@pytest.mark.parametrize(
    ("experiment", "weights"), [("isic2018", "balanced"), ("isic2017", "balanced"), ("aptos", None)]
)
def test_isic_experiments_rebalance_their_classes(
    compose_config: Compose, experiment: str, weights: str | None
) -> None:
    assert compose_config(f"experiment={experiment}", "data.root=/x").loss.class_weights == weights


def test_if_pretrained_refuses_what_is_not_a_boolean() -> None:
    assert if_pretrained(True, 1, 2) == 1 and if_pretrained(False, 1, 2) == 2
    with pytest.raises(ConfigError, match=r"model.net.pretrained must be true or false"):
        if_pretrained("no", 1, 2)


@pytest.mark.parametrize("experiment", ["aptos", "isic2018", "isic2017"])
def test_from_scratch_the_barlow_twins_loss_is_scaled_by_one_over_the_embedding_width(
    compose_config: Compose, experiment: str
) -> None:
    base = (f"experiment={experiment}", "data.root=/x")
    assert compose_config(*base).loss.barlow_scale == 1.0  # the reference code's, with weights
    scratch = (*base, "model.net.pretrained=false")
    assert compose_config(*scratch).loss.barlow_scale == 1 / 512
    assert compose_config(*scratch, "model=fgssl_small").loss.barlow_scale == 1 / 128
    assert compose_config(*scratch, "loss.barlow_scale=0.5").loss.barlow_scale == 0.5
    # the baseline has no embedding (nor a Barlow Twins loss): its config still resolves
    baseline = compose_config(*scratch, "method=baseline")
    assert OmegaConf.to_container(baseline, resolve=True)["loss"]["barlow_scale"] == 1.0


def test_reciprocal_refuses_what_is_not_a_positive_number() -> None:
    assert reciprocal(4) == 0.25
    for bad in (0, -2, True, "512"):
        with pytest.raises(ConfigError, match=r"positive number"):
            reciprocal(bad)
