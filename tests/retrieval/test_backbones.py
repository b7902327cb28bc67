"""Backbones build from their config, never download, and say exactly which weights they hold."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from retrieval import backbones
from retrieval.backbones import (
    FIXTURE_DIR,
    BackboneConfig,
    WeightsNotFoundError,
    build_backbone,
    expected_imagenet_path,
    features_l1_normalise,
    list_backbones,
)
from retrieval.fixture_backbone import SYNTHNET_VERSION, load_synthnet_file
from retrieval.synthetic import CLASSES

# sha256 of the shipped fixtures/backbones/synthnet.pt. Retraining it (manage.py
# train_fixture_backbone) changes the file, and with it the identity of every feature file
# extracted with it; update this pin in the same change.
SHIPPED_FIXTURE_SHA256 = "a0024c7e4ee80c71faf412a4e0f61170a58767a2ecdb388a57e369d2e3de2536"

EXPECTED_DIMS = {
    "resnet50": 2048,
    "resnet18": 512,
    "vgg19": 512 * 7 * 7,
    "densenet121": 1024,
    "synthnet": 256,
}


@pytest.fixture
def no_network(monkeypatch):
    """Make every way of downloading fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"attempted a download: {args!r}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """A fresh, empty TORCH_HOME; torch.hub.set_dir overrides are cleared for the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch-home"


def test_registry_lists_the_five_backbones():
    assert list_backbones() == sorted(EXPECTED_DIMS)


@pytest.mark.parametrize("name", sorted(EXPECTED_DIMS))
def test_every_backbone_builds_with_random_weights_and_maps_a_batch_to_b_by_d(name, no_network):
    backbone = build_backbone(BackboneConfig(name=name, weights="none", image_size=64))

    batch = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        features = backbone(batch)
        feature_map = backbone.feature_map(batch)

    assert backbone.dim == EXPECTED_DIMS[name]
    assert features.shape == (2, backbone.dim)
    assert features.dtype == torch.float32
    assert bool((features >= 0).all())  # after a ReLU, so they can be L1 histograms
    assert feature_map.ndim == 4
    assert feature_map.shape[0] == 2
    assert not backbone.model.training
    assert backbone.weights_sha256 == "random-init"
    image = Image.new("RGB", (90, 70), (200, 30, 30))
    assert backbone.preprocess(image).shape == (3, 64, 64)


def test_feature_map_shares_the_weights_of_the_feature_model():
    backbone = build_backbone(BackboneConfig(name="resnet18", weights="none", image_size=64))
    weight = backbone.model.extractor.get_submodule("layer4.0.conv1").weight
    assert backbone.feature_map_model.extractor.get_submodule("layer4.0.conv1").weight is weight
    with torch.inference_mode():
        batch = torch.rand(1, 3, 64, 64)
        pooled = backbone.feature_map(batch).mean(dim=(2, 3))
        torch.testing.assert_close(backbone(batch), pooled)


def test_random_init_is_one_fixed_set_of_weights_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = build_backbone(BackboneConfig(name="synthnet", weights="none", image_size=64))
    after = torch.rand(3)
    second = build_backbone(BackboneConfig(name="synthnet", weights="none", image_size=64))

    torch.testing.assert_close(after, expected_next)
    for a, b in zip(
        first.model.state_dict().values(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "config",
    [
        BackboneConfig(),
        BackboneConfig(name="vgg19", layer="classifier.4", weights="none", image_size=96),
        BackboneConfig(name="synthnet", layer="stage3", weights="fixture", image_size=128),
        BackboneConfig(name="resnet18", layer="layer4", weights="/models/r18.pth"),
    ],
)
def test_config_round_trips_through_a_dict_and_json(config):
    data = config.to_dict()
    assert BackboneConfig.from_dict(data) == config
    assert BackboneConfig.from_dict(json.loads(json.dumps(data))) == config
    assert BackboneConfig(**data).to_dict() == data


def test_config_defaults_are_the_papers_resnet50_avgpool():
    assert BackboneConfig().to_dict() == {
        "name": "resnet50",
        "layer": "avgpool",
        "weights": "imagenet",
        "image_size": 224,
    }


def test_unknown_backbone_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="unknown backbone 'alexnet'") as error:
        BackboneConfig(name="alexnet")
    for name in EXPECTED_DIMS:
        assert name in str(error.value)


def test_unknown_layer_is_refused_with_the_valid_layers_of_that_backbone():
    with pytest.raises(ValueError, match="unknown layer 'fc'") as error:
        BackboneConfig(name="resnet50", layer="fc")
    assert "'avgpool'" in str(error.value)
    assert "'layer4'" in str(error.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "synthnet", "weights": "imagenet"}, "no ImageNet weights"),
        ({"weights": "fixture"}, "no fixture weights"),
        ({"weights": "weights.bin"}, "must be one of"),
        ({"image_size": 16}, "image_size must be"),
        ({"image_size": 224.0}, "image_size must be"),
    ],
)
def test_invalid_configs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        BackboneConfig(**{**BackboneConfig().to_dict(), **changes})


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ValueError, match="unknown BackboneConfig keys"):
        BackboneConfig.from_dict({"name": "resnet18", "pretrained": True})


def test_missing_imagenet_weights_name_the_expected_path_and_never_download(torch_home, no_network):
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert expected_imagenet_path("resnet18")[0] == expected

    with pytest.raises(WeightsNotFoundError) as error:
        build_backbone(BackboneConfig(name="resnet18", image_size=64))

    message = str(error.value)
    assert str(expected) in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "weights: none" in message
    assert ".pth/.pt" in message
    assert not expected.exists()


def test_imagenet_weights_are_read_from_torchvisions_cache(torch_home, no_network, monkeypatch):
    # No real ImageNet file here: put a random ResNet18 state dict in the cache under the name
    # torch.hub would give it (the first hex digits of its sha256), and point the registry's
    # weights enum at that name.
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(7)
    state = torchvision.models.resnet18().state_dict()
    staging = checkpoints / "staging.pth"
    torch.save(state, staging)
    sha256 = hashlib.sha256(staging.read_bytes()).hexdigest()
    cached = checkpoints / f"resnet18-{sha256[:8]}.pth"
    staging.rename(cached)
    real = backbones._REGISTRY["resnet18"].imagenet.DEFAULT
    fake = SimpleNamespace(
        DEFAULT=SimpleNamespace(
            url=f"https://example.invalid/{cached.name}", transforms=real.transforms
        )
    )
    monkeypatch.setitem(
        backbones._REGISTRY,
        "resnet18",
        dataclasses.replace(backbones._REGISTRY["resnet18"], imagenet=fake),
    )

    backbone = build_backbone(BackboneConfig(name="resnet18", image_size=64))

    assert backbone.weights_sha256 == sha256
    conv = backbone.model.extractor.get_submodule("conv1").weight
    assert torch.equal(conv, state["conv1.weight"])
    assert backbone.preprocess.mean == (0.485, 0.456, 0.406)
    assert backbone.preprocess.resize_size == round(64 * 256 / 224)

    cached.write_bytes(cached.read_bytes()[:-10])  # a truncated copy
    with pytest.raises(ValueError, match="damaged"):
        build_backbone(BackboneConfig(name="resnet18", image_size=64))


def test_a_local_weights_file_is_loaded_and_hashed(tmp_path, no_network):
    torch.manual_seed(11)
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path / "resnet18-mine.pth"
    torch.save(state, path)

    backbone = build_backbone(BackboneConfig(name="resnet18", weights=str(path), image_size=64))

    assert backbone.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(
        backbone.model.extractor.get_submodule("layer4.1.conv2").weight,
        state["layer4.1.conv2.weight"],
    )
    assert backbone.get_config()["weights_sha256"] == backbone.weights_sha256
    random = build_backbone(BackboneConfig(name="resnet18", weights="none", image_size=64))
    batch = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert not torch.allclose(backbone(batch), random(batch))


def test_old_densenet_checkpoint_keys_are_renamed_on_load(tmp_path):
    torch.manual_seed(3)
    state = torchvision.models.densenet121().state_dict()
    old_style = {
        key.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): value
        for key, value in state.items()
    }
    assert old_style.keys() != state.keys()
    path = tmp_path / "densenet121-old.pth"
    torch.save(old_style, path)

    backbone = build_backbone(BackboneConfig(name="densenet121", weights=str(path), image_size=64))

    loaded = backbone.model.extractor.get_submodule("features.denseblock1.denselayer1.norm1")
    assert torch.equal(loaded.weight, state["features.denseblock1.denselayer1.norm1.weight"])


def test_a_missing_local_weights_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "weights.pt"
    with pytest.raises(WeightsNotFoundError, match=str(path)):
        build_backbone(BackboneConfig(name="synthnet", weights=str(path), image_size=64))


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="do not fit 'synthnet'"):
        build_backbone(BackboneConfig(name="synthnet", weights=str(path), image_size=64))


def test_the_shipped_fixture_loads_with_its_own_preprocessing_and_a_stable_hash():
    path = FIXTURE_DIR / "synthnet.pt"
    state, metadata = load_synthnet_file(path)

    first = build_backbone(BackboneConfig(name="synthnet", weights="fixture", image_size=128))
    second = build_backbone(BackboneConfig(name="synthnet", weights="fixture", image_size=128))

    assert first.weights_sha256 == second.weights_sha256 == SHIPPED_FIXTURE_SHA256
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHIPPED_FIXTURE_SHA256
    assert path.stat().st_size < 3_000_000
    assert first.dim == 256
    assert first.preprocess.mean == tuple(metadata["mean"])
    assert first.preprocess.std == tuple(metadata["std"])
    assert first.weights_info["metadata"]["classes"] == [spec.name for spec in CLASSES]
    assert metadata["image_size"] == 128
    stem = first.model.extractor.get_submodule("stem.0").weight
    torch.testing.assert_close(stem, state["stem.0.weight"].float())
    content = torch.load(path, map_location="cpu", weights_only=True)
    assert content["version"] == SYNTHNET_VERSION


class TestL1Normalise:
    def test_rows_sum_to_one_and_zero_rows_stay_zero(self):
        x = np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 4.0]], dtype=np.float32)
        original = x.copy()

        normalised = features_l1_normalise(x)

        np.testing.assert_allclose(normalised.sum(axis=1), [1.0, 0.0, 1.0], rtol=1e-6)
        np.testing.assert_allclose(normalised[0], [0.25, 0.75, 0.0])
        assert normalised.dtype == np.float32
        np.testing.assert_array_equal(x, original)

    def test_tensors_give_tensors(self):
        x = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
        normalised = features_l1_normalise(x)
        assert isinstance(normalised, torch.Tensor)
        torch.testing.assert_close(normalised, torch.tensor([[0.5, 0.5], [0.0, 0.0]]))

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (np.array([[1.0, -0.5]]), "non-negative"),
            (np.array([[1.0, np.nan]]), "NaN"),
            (np.array([1.0, 2.0]), "2-D"),
            (np.array([[1, 2]]), "floating"),
        ],
    )
    def test_invalid_features_are_refused(self, value, message):
        with pytest.raises(ValueError, match=message):
            features_l1_normalise(value)
