"""The bundle's pooling (matcher.pooling): GeM as served, average for older bundles, a clear
error for a pooling this artwatch does not know."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from matcher.bundle import Bundle, BundleError
from matcher.model import build_model
from matcher.pooling import GeM, pooling_spec, set_pooling
from matcher.sample import write_untrained_bundle


def _maps_and_pooled(pooling: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model, _ = build_model("tf_efficientnet_lite0", 0, pooling=pooling)
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        backbone = model.backbone.eval()
        return backbone.forward_features(x), backbone(x)


def test_gem_pools_the_maps_by_their_generalized_mean() -> None:
    maps, pooled = _maps_and_pooled(pooling_spec("gem"))
    expected = maps.clamp(min=1e-6).pow(2).mean(dim=(2, 3)).sqrt()
    assert pooled.shape == expected.shape == (2, maps.shape[1])
    assert torch.allclose(pooled, expected, rtol=1e-5, atol=1e-6)
    avg_maps, avg = _maps_and_pooled(pooling_spec("avg"))
    assert torch.equal(avg_maps, maps)  # same weights, same maps: only the pooling differs
    assert torch.allclose(avg, maps.mean(dim=(2, 3)), atol=1e-6)
    # The power mean is at least the mean, with equality only where a channel is flat.
    assert bool((pooled >= avg - 1e-6).all()) and bool((pooled > avg + 1e-4).any())


def test_gem_with_p_1_is_the_average_and_a_large_p_approaches_the_max() -> None:
    maps = torch.rand(3, 5, 7, 7)
    assert torch.allclose(GeM(1.0)(maps), maps.mean(dim=(2, 3)), atol=1e-6)
    # mean(x^p)^(1/p) lies in [49^(-1/p), 1] x max over 7 x 7 cells: within 10% at p = 40
    big_p, largest = GeM(40.0)(maps), maps.amax(dim=(2, 3))
    assert bool((big_p <= largest + 1e-6).all()) and bool((big_p >= 0.9 * largest).all())
    assert GeM(2.0)(maps.bfloat16()).dtype == torch.float32
    with pytest.raises(ValueError, match="positive"):
        GeM(0.0)


def test_a_served_bundle_pools_as_its_bundle_json_says(tmp_path: Path) -> None:
    """Same weights, `pooling` edited in bundle.json: the embeddings follow it; a bundle from
    before `pooling` existed loads with average pooling (what it was calibrated with)."""
    path = write_untrained_bundle(tmp_path / "b", name="b", objects=["A", "B"],
                                  query_crop=False)
    info = json.loads((path / "bundle.json").read_text())
    assert info["pooling"] == {"name": "gem", "p": 2.0}
    gem = Bundle.load(path)
    assert isinstance(gem.model.backbone.global_pool, GeM) and gem.model.backbone.global_pool.p == 2
    photos = [Image.new("RGB", (80, 60), (200, 40, 10)), Image.radial_gradient("L").convert("RGB")]
    gem_embeddings = gem.embed(photos)

    del info["pooling"]
    (path / "bundle.json").write_text(json.dumps(info))
    older = Bundle.load(path)
    assert not isinstance(older.model.backbone.global_pool, GeM)
    older_embeddings = older.embed(photos)
    assert older_embeddings.shape == gem_embeddings.shape
    assert not torch.allclose(torch.from_numpy(older_embeddings),
                              torch.from_numpy(gem_embeddings), atol=1e-3)


@pytest.mark.parametrize("pooling, message", [
    ({"name": "netvlad"}, "knows avg and gem"),
    ({"name": "gem"}, "without a numeric p"),
    ({"name": "gem", "p": -1}, "positive"),
    ("gem", "expected an object"),
])
def test_a_bundle_with_a_pooling_it_cannot_build_is_a_bundle_error(
        tmp_path: Path, pooling: object, message: str) -> None:
    path = write_untrained_bundle(tmp_path / "b", name="b", objects=["A", "B"])
    info = json.loads((path / "bundle.json").read_text())
    info["pooling"] = pooling
    (path / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match=message):
        Bundle.load(path)


def test_set_pooling_refuses_an_unknown_choice_and_a_backbone_without_global_pool() -> None:
    with pytest.raises(ValueError, match="expected one of gem, avg"):
        pooling_spec("max")
    with pytest.raises(ValueError, match="no global_pool"):
        set_pooling(torch.nn.Conv2d(3, 3, 1), pooling_spec("gem"))
