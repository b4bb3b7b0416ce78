"""fastai export → one ONNX file: the network (dynamic batch) plus everything predicting needs.

Needs torch, fastai, onnx and onnxscript (the ``fastai`` extra); serving the result needs none of them.
What fastai does at prediction time (``Learner.predict`` → ``test_dl`` → ``get_preds``) is read from
the learner and written into the file's ``metadata_props``:

- the item transforms of the validation split (``Resize``, ``CropPad``, ``RandomCrop``,
  ``RandomResizedCrop``), as the steps ``transforms`` runs in Pillow (read by ``transforms.preprocessing_of``);
- the batch transforms ``IntToFloatTensor`` (the divisor) and ``Normalize`` (mean and std);
- the batch transforms that resize on the validation split (``aug_transforms(size=…)``,
  ``RandomResizedCropGPU``), measured into a separable map by ``resampling.extract``;
- the loss function's activation (softmax, sigmoid or none), which ``get_preds`` applies, and for
  multi-label models (``MultiCategoryBlock``) the threshold above which ``predict`` names a label;
- the vocab, the input size and the model's name;
- the training prior (label counts) when the export carries it, and the labels file (``label_guide``).

Anything else that would run at prediction time is refused with one line naming it.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from .onnx_backend import METADATA_FORMAT, RESAMPLE_FORMAT  # the layouts the backend reads; no torch there
from .quiet import quiet
from .transforms import UnsupportedExport, preprocessing_of


def export_onnx(source: Path, destination: Path, name: str = "", opset: int = 18,
                maps: bool = True) -> dict[str, str]:
    """Convert the fastai export at ``source`` into ``destination`` (.onnx); return its metadata.

    With ``maps`` (the default), a network whose head allows exact class activation maps gets them as a
    second output, ``cam`` (see ``cam.py``); ``maps=False`` writes the scores only (the bench compares).
    """
    import torch

    from .fastai_backend import activation_of, load_learner_quietly, threshold_of

    learner = load_learner_quietly(Path(source))
    vocab = [str(label) for label in learner.dls.vocab]
    if getattr(learner.dls, "n_inp", 1) != 1:
        raise UnsupportedExport(f"the export takes {learner.dls.n_inp} inputs; only one image is supported")
    prep = preprocessing_of(learner)
    activation = activation_of(learner, len(vocab))
    metadata = {
        "snakes_web.format": METADATA_FORMAT,
        "model_name": name or getattr(learner.model, "model_name", "") or Path(source).stem,
        "vocab": json.dumps(vocab),
        "input_size": json.dumps(prep["input_size"]),
        "image_mode": "RGB",  # fastai's PILImage; a greyscale network fails the check below
        "preprocess": json.dumps(prep["steps"]),
        "div": json.dumps(prep["div"]),
        "mean": json.dumps(prep["mean"]),
        "std": json.dumps(prep["std"]),
        "activation": activation,
    }
    metadata.update(carried(learner, Path(source)))
    threshold = threshold_of(learner, activation)
    if threshold is not None:
        metadata["threshold"] = json.dumps(threshold)
    if prep["batch_resizes"]:
        from .resampling import extract

        step = extract(prep["batch_resizes"], *prep["input_size"])
        metadata.update({"snakes_web.format": RESAMPLE_FORMAT, "resample": json.dumps(step),
                         "input_size": json.dumps(step["size"])})
        prep["input_size"] = step["size"]
    height, width = prep["input_size"]
    example = torch.zeros(2, 3, height, width)
    model = learner.model.eval().float().cpu()
    try:
        with torch.inference_mode():
            classes = model(example).shape
    except Exception as exc:  # noqa: BLE001 - e.g. a network that does not take 3-channel images
        raise UnsupportedExport(f"the network fails on a batch of RGB images of {height}×{width} "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if tuple(classes) != (2, len(vocab)):
        raise UnsupportedExport(f"the network outputs shape {tuple(classes)[1:]} per image, not one score per "
                                f"label ({len(vocab)})")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
        partial = Path(scratch) / destination.name
        network, outputs = _with_cam(model, example) if maps else (model, ["output"])
        _torch_to_onnx(network, outputs, example, partial, opset)
        write_metadata(partial, metadata)
        partial.replace(destination)
    return metadata


def carried(learner: Any, source: Path) -> dict[str, str]:
    """Return the metadata that travels with the model: its training prior and its labels file.

    The labels file is the one the server would read for the ``.pkl``: ``labels.json`` beside it, else
    the one the model carries (the default model's); ``SNAKES_LABELS`` still overrides it when serving.
    """
    from .fastai_backend import training_prior_of
    from .label_guide import beside_or_carried

    metadata = {}
    prior = training_prior_of(learner)
    if prior:
        metadata["training_prior"] = json.dumps(prior)
    guide = beside_or_carried(source, getattr(learner.model, "label_guide", None))
    if guide is not None:
        metadata["label_guide"] = json.dumps(guide.raw, ensure_ascii=False)
    return metadata


def _with_cam(model: Any, example: Any) -> tuple[Any, list[str]]:
    """Return the network to export and its output names: with the class activation maps when exact."""
    from .cam import checked_cam_network
    from .onnx_backend import CAM_OUTPUT

    wrapper = checked_cam_network(model, example)
    return (model, ["output"]) if wrapper is None else (wrapper, ["output", CAM_OUTPUT])


def _torch_to_onnx(model: Any, output_names: list[str], example: Any, path: Path, opset: int) -> None:
    """Export with torch's ``torch.export``-based exporter (the TorchScript one is deprecated), batch dynamic."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    try:
        with quiet():  # the exporter reports its progress on stdout
            program = torch.onnx.export(model, (example,), input_names=["input"], output_names=output_names,
                                        dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True,
                                        external_data=False, verbose=False)
            assert program is not None  # dynamo=True always returns a program
            program.save(str(path), external_data=False)
    except Exception as exc:  # noqa: BLE001 - torch.export fails in many ways; say which, in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedExport(f"torch could not export the network to ONNX ({type(exc).__name__}: {first})") \
            from None


def write_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Store ``metadata`` in the ONNX file's ``metadata_props`` (one file, no sidecar)."""
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))

