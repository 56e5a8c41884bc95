import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision
from skimage import data

import samlens.models.pretrained as pretrained
from samlens.errors import ConfigError
from samlens.models import get_model, list_models

# ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CAT_CLASSES = set(range(281, 286))


def test_registered():
    assert {"resnet18", "resnet50", "efficientnet_lite0"} <= set(list_models())


def test_efficientnet_lite0_imagenet_weights_classify_a_real_cat():
    model = pretrained.efficientnet_lite0(1000, (3, 224, 224), pretrained="imagenet").eval()
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float().div(255)
    image = F.interpolate(image[None], size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        logits = model(image)
        feats = model.features(image)
    top5 = set(logits.topk(5).indices[0].tolist())
    assert logits.argmax().item() in CAT_CLASSES
    assert len(top5 & CAT_CLASSES) >= 2
    assert feats.shape == (1, 1280) and model.feature_dim == 1280
    torch.testing.assert_close(model.head(feats), logits)


def test_resnet18_loads_local_file_and_replaces_head(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    model = get_model("resnet18", num_classes=2, input_shape=(1, 32, 32), pretrained=str(path)).eval()
    torch.testing.assert_close(model.trunk.conv1.weight, reference.conv1.weight, rtol=0, atol=0)
    assert model.head.out_features == 2 and model.feature_dim == 512
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.features(x)))
        # trunk features equal torchvision's own computation on the normalised 3-channel image
        reference.fc = torch.nn.Identity()
        mean = torch.tensor(pretrained.IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(pretrained.IMAGENET_STD).view(1, 3, 1, 1)
        expected = reference.eval()((x.expand(-1, 3, -1, -1) - mean) / std)
        torch.testing.assert_close(model.features(x), expected)
    # 1000 classes keep the file's classifier
    full = get_model("resnet18", num_classes=1000, input_shape=(3, 32, 32), pretrained=str(path))
    torch.testing.assert_close(full.head.weight, torch.load(path)["fc.weight"], rtol=0, atol=0)


def test_bad_pretrained_inputs(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        get_model("resnet18", num_classes=2, input_shape=(3, 32, 32), pretrained=str(tmp_path / "none.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint\n")
    with pytest.raises(ConfigError) as err:
        get_model("resnet18", num_classes=2, input_shape=(3, 32, 32), pretrained=str(junk))
    assert str(err.value) == (
        f"resnet18: cannot read {str(junk)!r} as a weights file (UnpicklingError); "
        "expected a state dict saved with torch.save"
    )
    wrong = tmp_path / "wrong.pth"
    torch.save({"weight": torch.zeros(2)}, wrong)
    with pytest.raises(ConfigError, match="not a torchvision resnet18 state dict"):
        get_model("resnet18", num_classes=2, input_shape=(3, 32, 32), pretrained=str(wrong))
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        get_model("efficientnet_lite0", num_classes=2, input_shape=(2, 32, 32))


@pytest.mark.parametrize("wrap", ["state_dict", "model"])
def test_training_checkpoints_wrapping_the_weights_load(tmp_path, wrap):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, wrap: reference.state_dict()}, path)
    model = get_model("resnet18", num_classes=1000, input_shape=(3, 32, 32), pretrained=str(path))
    torch.testing.assert_close(model.trunk.conv1.weight, reference.conv1.weight, rtol=0, atol=0)
    torch.save({"epoch": 3, "weights": reference.state_dict()}, path)
    with pytest.raises(ConfigError, match="ckpt.pth' does not hold a state dict"):
        get_model("resnet18", num_classes=2, input_shape=(3, 32, 32), pretrained=str(path))


# ------------------------------------------------------------------ weights names and the hub cache
@pytest.fixture()
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


@pytest.mark.parametrize("name", ["ResNet18_Weights.IMAGENET1K_V1", "imagenet"])
def test_torchvision_weights_name_loads_the_cached_file(torch_home, name):
    torch.manual_seed(3)
    reference = torchvision.models.resnet18(weights=None)
    # torchvision's own cache name for these weights: the URL's file name
    torch.save(reference.state_dict(), torch_home / "resnet18-f37072fd.pth")
    model = get_model("resnet18", num_classes=1000, input_shape=(3, 32, 32), pretrained=name)
    loaded = {**model.trunk.state_dict(), **{f"fc.{k}": v for k, v in model.head.state_dict().items()}}
    assert loaded.keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)


def test_torchvision_weights_missing_wrong_or_junk(torch_home):
    expected = torch_home / "resnet50-0676ba61.pth"
    with pytest.raises(ConfigError) as err:
        get_model(
            "resnet50", num_classes=2, input_shape=(3, 32, 32), pretrained="ResNet50_Weights.IMAGENET1K_V1"
        )
    assert str(err.value) == (
        f"resnet50: weights ResNet50_Weights.IMAGENET1K_V1 are not in the torch hub cache ({expected} not "
        "found) and nothing is downloaded; place resnet50-0676ba61.pth there (TORCH_HOME sets the cache) "
        "or pass a local file"
    )
    wrong = (
        "resnet18: unknown weights 'ResNet50_Weights.IMAGENET1K_V1'; valid: ResNet18_Weights.IMAGENET1K_V1"
    )
    with pytest.raises(ConfigError, match=wrong + ", imagenet, or a local file"):
        get_model(
            "resnet18", num_classes=2, input_shape=(3, 32, 32), pretrained="ResNet50_Weights.IMAGENET1K_V1"
        )
    (torch_home / "resnet18-f37072fd.pth").write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(ConfigError, match="resnet18: cannot read .*resnet18-f37072fd.pth' as a weights file"):
        get_model("resnet18", num_classes=2, input_shape=(3, 32, 32), pretrained="imagenet")


# ------------------------------------------------------------------ timm (optional package)
def test_timm_without_the_package_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(
        ConfigError, match=r"model 'timm' needs the optional package timm \(pip install timm\)"
    ):
        get_model("timm", num_classes=2, input_shape=(3, 32, 32), arch="resnet18")


def test_timm_local_file_and_caches(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    torch.manual_seed(4)
    reference = timm.create_model("resnet18.a1_in1k", pretrained=False).eval()
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    model = get_model("timm", 1000, (3, 32, 32), arch="resnet18.a1_in1k", pretrained=str(path)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        mean = torch.tensor(reference.pretrained_cfg["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(reference.pretrained_cfg["std"]).view(1, 3, 1, 1)
        torch.testing.assert_close(model(x), reference((x - mean) / std))
        torch.testing.assert_close(model(x), model.head(model.features(x)))
    assert get_model("timm", 2, (1, 32, 32), arch="resnet18").head.out_features == 2
    with pytest.raises(ConfigError, match="in neither the Hugging Face hub cache nor the torch hub cache"):
        get_model("timm", 2, (3, 32, 32), arch="resnet18.a1_in1k", pretrained="imagenet")
    # the Hugging Face cache layout: models--org--name/snapshots/<rev>/file, refs/main -> <rev>
    repo = tmp_path / "hf" / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    torch.save(reference.state_dict(), repo / "snapshots" / "abc123" / "pytorch_model.bin")
    cached = get_model("timm", 1000, (3, 32, 32), arch="resnet18.a1_in1k", pretrained="imagenet").eval()
    with torch.no_grad():
        torch.testing.assert_close(cached(x), model(x))
    with pytest.raises(ConfigError, match="timm: unknown architecture 'no_such_net'"):
        get_model("timm", 2, (3, 32, 32), arch="no_such_net")
