"""Step 3, the learner and its training: pretrained EfficientNet-Lite0 with a new head, ``fine_tune``, progress.

The body comes from its PyPI package (never a download); the frozen body trains first. Progress is
fastai's bars on a terminal or in a notebook, one line per epoch in logs.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from snakes_web.model.quiet import quiet
from snakes_web.serving.sizing import available_cores

from .options import Options


def setup_torch(options: Options = Options()) -> int:
    """Seed everything (split aside, which ``scan_dataset`` seeds) and set torch's threads; return them.

    Threads default to the cores this process may use: torch would otherwise count the host's cores,
    too many inside a container with a CPU quota.
    """
    import torch

    with quiet():
        from fastai.torch_core import set_seed

    threads = options.threads or available_cores()
    torch.set_num_threads(threads)
    set_seed(options.seed, reproducible=True)
    return threads


def make_learner(dls: Any, name: str) -> Any:
    """Return a fastai Learner: pretrained EfficientNet-Lite0 body, a new head, accuracy as metric."""
    with quiet():
        import fastai.callback.progress  # noqa: F401 - adds Learner.no_bar
        import fastai.callback.schedule  # noqa: F401 - adds Learner.fine_tune, fit_one_cycle, lr_find
        from fastai.learner import Learner
        from fastai.losses import CrossEntropyLossFlat
        from fastai.metrics import accuracy

    from snakes_web.model.snakenet import body_and_head, lite0_classifier

    model = lite0_classifier(len(dls.vocab), name)
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, splitter=body_and_head)


def fit(learner: Any, options: Options = Options(), progress: str = "auto") -> float:
    """Fine-tune (frozen body for ``frozen_epochs``, then everything); return the learning rate used.

    ``progress``: "bars" (fastai's), "lines" (one line per epoch, for logs), "none", or "auto"
    (bars on a terminal or in a notebook, lines otherwise and under CI).
    """
    lr = options.lr
    with progress_display(learner, progress):
        if options.lr_find:
            learner.freeze()  # as fine_tune's first stage trains, and as vision_learner starts
            with learner.no_logging():
                lr = float(learner.lr_find(show_plot=False).valley)
            print(f"lr_find suggests {lr:.2g}")
        if options.frozen_epochs and options.epochs:
            learner.fine_tune(options.epochs, base_lr=lr, freeze_epochs=options.frozen_epochs)
        elif options.frozen_epochs:  # the head alone
            learner.freeze()
            learner.fit_one_cycle(options.frozen_epochs, lr)
        else:  # everything from the start, with fine_tune's discriminative rates
            learner.unfreeze()
            learner.fit_one_cycle(options.epochs, slice(lr / 200, lr / 2))
    return lr


def wants_bars() -> bool:
    """Tell whether fastai's progress bars belong here: a terminal or a notebook, and not CI."""
    if os.environ.get("CI", "").lower() not in {"", "0", "false"}:
        return False
    with quiet():
        from fastprogress.core import IN_NOTEBOOK
    return bool(IN_NOTEBOOK) or sys.stdout.isatty()


@contextlib.contextmanager
def progress_display(learner: Any, progress: str) -> Iterator[None]:
    """Show training progress as asked (fastprogress itself prints bars even into a pipe)."""
    if progress == "auto":
        progress = "bars" if wants_bars() else "lines"
    if progress == "bars":
        yield
        return
    with learner.no_bar():
        if progress == "none":
            with learner.no_logging():
                yield
            return
        old = learner.logger
        learner.logger = EpochLines(learner)
        try:
            yield
        finally:
            learner.logger = old


class EpochLines:
    """fastai logger that prints one plain line per epoch, for logs where bars would be noise."""

    def __init__(self, learner: Any, write: Callable[[str], Any] = print) -> None:
        self.learner = learner
        self.write = write

    def __call__(self, values: Sequence[Any]) -> None:
        """Print one epoch's values beside the Recorder's column names."""
        if not values or isinstance(values[0], str):
            return
        names = list(self.learner.recorder.metric_names)
        stage = "frozen" if self._frozen() else "fine-tune"
        cells = [f"{name} {_cell(value)}" for name, value in zip(names[1:], values[1:], strict=False)]
        self.write(f"{stage} epoch {int(values[0]) + 1}: " + ", ".join(cells))

    def _frozen(self) -> bool:
        """Tell whether the body is frozen (fastai keeps its BatchNorm layers training)."""
        return not all(p.requires_grad for p in self.learner.model[0].parameters())


def _cell(value: Any) -> str:
    """Format a number to four decimals, anything else as it is."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)
