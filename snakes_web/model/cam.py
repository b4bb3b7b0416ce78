"""Class activation maps (Zhou et al. 2016) for networks whose head allows them exactly. Needs torch.

A network that ends in global average pooling and one linear layer scores class ``c`` as
``w_c · mean_xy F(x, y) + b_c``, where ``F`` is the last feature map; ``M_c(x, y) = w_c · F(x, y)`` is then
exactly how much each place contributed (the bias is the same everywhere). ``cam_network`` wraps such a
network in a module returning its scores *and* every class's map in one pass; the fastai backend runs it,
and ``onnx_export`` exports it, so the ``.onnx`` carries the maps as a second output. Networks of any
other shape get ``None``, and the backends fall back to occlusion.

Recognised: ``snakes-web train``'s ``Lite0Classifier`` and any ``Sequential(body, Sequential(
AdaptiveAvgPool2d(1), Flatten(), [Dropout], Linear))``; the default ``SnakeNet``, whose 17 species are
ImageNet classes (exact maps) and whose "not a snake" is the log-sum-exp of the other 983 ImageNet
logits: its map is their maps weighted by their softmax share — Grad-CAM's map for that output.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Module types a linear head may hold between pooling and the linear layer (identities at inference).
_PASS_THROUGH = (nn.Flatten, nn.Dropout, nn.Identity)


class LinearHeadCam(nn.Module):
    """``body`` then pooling and a linear layer: the scores and each class's activation map."""

    def __init__(self, body: nn.Module, head: nn.Module, linear: nn.Linear) -> None:
        super().__init__()
        self.body, self.head, self.linear = body, head, linear

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (N × K scores, N × K × h × w maps)."""
        features = self.body(x)
        return self.head(features), torch.einsum("kc,nchw->nkhw", self.linear.weight, features)


class SnakeNetCam(nn.Module):
    """The default model: ImageNet EfficientNet-Lite0 folded into 17 snakes and "not a snake"."""

    def __init__(self, snakenet: nn.Module) -> None:
        super().__init__()
        self.backbone: Any = snakenet.backbone  # the untyped EfficientNet package's network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (N × 18 log-probabilities, N × 18 × h × w maps)."""
        from .snakenet import FIRST_SNAKE, LAST_SNAKE, fold

        features = self.backbone.extract_features(x)
        fc = self.backbone._fc
        logits = fc(features.mean(dim=(2, 3)))
        weight = fc.weight
        species = torch.einsum("kc,nchw->nkhw", weight[FIRST_SNAKE:LAST_SNAKE + 1], features)
        rest_weight = torch.cat([weight[:FIRST_SNAKE], weight[LAST_SNAKE + 1:]], dim=0)
        rest_logits = torch.cat([logits[:, :FIRST_SNAKE], logits[:, LAST_SNAKE + 1:]], dim=1)
        share = torch.softmax(rest_logits, dim=1)                    # d logsumexp / d logit
        # (share · W) first: one 983 × 1280 product per image, not a 983-map stack.
        others = torch.einsum("nc,nchw->nhw", share @ rest_weight, features)
        return fold(logits), torch.cat([species, others[:, None]], dim=1)


def cam_network(model: nn.Module) -> nn.Module | None:
    """Wrap ``model`` to return (scores, maps) when its head allows exact CAMs; else ``None``."""
    from .snakenet import SnakeNet

    if isinstance(model, SnakeNet) and _is_efficientnet(model.backbone):
        return SnakeNetCam(model).eval()
    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[1], nn.Sequential):
        linear = _pool_linear(model[1])
        if linear is not None:
            return LinearHeadCam(model[0], model[1], linear).eval()
    return None


def _is_efficientnet(backbone: Any) -> bool:
    """Tell whether ``backbone`` is the EfficientNet package's network with its pool → dropout → fc top."""
    params = getattr(backbone, "_global_params", None)
    return (hasattr(backbone, "extract_features") and isinstance(getattr(backbone, "_fc", None), nn.Linear)
            and isinstance(getattr(backbone, "_avg_pooling", None), nn.AdaptiveAvgPool2d)
            and not getattr(params, "local_pooling", False))


def _pool_linear(head: nn.Sequential) -> nn.Linear | None:
    """Return the linear layer of a head that is global average pooling, pass-throughs, then one linear."""
    layers = list(head)
    if len(layers) < 2 or not isinstance(layers[0], nn.AdaptiveAvgPool2d) or not isinstance(layers[-1], nn.Linear):
        return None
    size = layers[0].output_size
    if size not in (1, (1, 1)):
        return None
    if not all(isinstance(layer, _PASS_THROUGH) for layer in layers[1:-1]):
        return None
    return layers[-1]


def checked_cam_network(model: nn.Module, example: torch.Tensor) -> nn.Module | None:
    """Return ``cam_network(model)`` only if its scores equal the model's own on ``example``."""
    wrapper = cam_network(model)
    if wrapper is None:
        return None
    with torch.inference_mode():
        expected, (scores, maps) = model(example), wrapper(example)
    if scores.shape != expected.shape or maps.shape[:2] != expected.shape or \
            not torch.allclose(scores, expected, rtol=1e-4, atol=1e-4):
        return None
    return wrapper
