"""Models that expose ``features(x)`` and a linear ``head``.

``get_model(name, num_classes, input_shape, **options)`` builds any registered model;
``list_models()`` lists the names.
"""

import importlib.util

from samlens.models import mlp, paper_cnn, resnet, small_cnn, toy  # noqa: F401  (registration)
from samlens.models.registry import MODELS, FeatureModel, get_model, list_models

# Pretrained torchvision/EfficientNet models live in their own module (optional dependencies).
if importlib.util.find_spec("samlens.models.pretrained") is not None:
    importlib.import_module("samlens.models.pretrained")

__all__ = ["MODELS", "FeatureModel", "get_model", "list_models"]
