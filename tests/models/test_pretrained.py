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
    with pytest.raises(ConfigError, match="no ImageNet weights are available offline"):
        get_model("resnet50", num_classes=2, input_shape=(3, 32, 32), pretrained="imagenet")
    wrong = tmp_path / "wrong.pth"
    torch.save({"weight": torch.zeros(2)}, wrong)
    with pytest.raises(ConfigError, match="not a torchvision resnet18 state dict"):
        get_model("resnet18", num_classes=2, input_shape=(3, 32, 32), pretrained=str(wrong))
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        get_model("efficientnet_lite0", num_classes=2, input_shape=(2, 32, 32))
