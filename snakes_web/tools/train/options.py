"""What `snakes-web train` can be told (``Options``), and the one error that says why it cannot train."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TRAIN_FOLDER = "train"


VALID_FOLDERS = ("valid", "val")


BAD_FILE_CHOICES = ("list", "skip", "fail")


DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DatasetError(ValueError):
    """The photos folder cannot be trained on; the message says why in one line, ``details`` list the files."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.details = list(details)


@dataclass(frozen=True)
class Options:
    """Everything ``snakes-web train`` can be told; the defaults suit a 2-core CPU."""

    epochs: int = 3
    frozen_epochs: int = 1
    # fine_tune trains the new top at lr, then the top at lr/2 and the body at lr/200: with 1e-2 that is
    # close to Keras's EfficientNet fine-tuning example (1e-2 for the new top, 1e-5 for the body). fastai's
    # 2e-3 (tuned on GPUs, where epochs are cheap) needed several times the epochs in our CPU runs.
    lr: float = 1e-2
    lr_find: bool = False
    size: int = 224
    batch_size: int = 32
    valid_pct: float = 0.2
    seed: int = 42
    min_per_class: int = 10
    bad_files: str = "list"
    num_workers: int | None = None  # None: chosen by ``default_workers``
    threads: int = 0  # 0: the cores this process may use
    device: str = "auto"  # auto: CUDA when torch sees a GPU, else the CPU
    name: str = ""  # empty: "<photos folder>-efficientnet-lite0"

    @property
    def resize(self) -> int:
        """Return the shorter side images are resized to before the centre crop (256 for 224)."""
        return round(self.size * 8 / 7)
