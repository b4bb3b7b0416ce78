"""Keep fastai's and torch's chatter (import warnings, progress bars, prints) out of server logs."""
from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

# Each pattern is a known warning that says nothing about our code.
_IMPORT_NOISE = (
    r"`torch\.jit\.script` is deprecated",  # fastai 2.8 + torch 2.14, at import
    r"The 'mode\.chained_assignment' option is deprecated",  # fastai.tabular + pandas 3, at import
    r".*load_learner.*insecure pickle",  # every load_learner call
)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence known third-party warnings and anything printed to stdout inside the block."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        for pattern in _IMPORT_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        yield
