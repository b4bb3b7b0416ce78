"""`snakes-web serve PATH`: any export, served by gunicorn with this project's worker and settings.

A fastai ``export.pkl`` is converted to ONNX on first start (``export.onnx`` beside it, and
``export-int8.onnx`` when int8 keeps the answers: the same check as ``export-onnx --int8``), and the
fastest file that gives fastai's answers is served; a later start reuses what is newer than the .pkl.
When the export cannot be converted, it is served on the fastai backend, and the log line says why.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from snakes_web.config import load_settings
from snakes_web.exceptions import ModelLoadError
from snakes_web.model.loader import backend_for
from snakes_web.model.model_code import CODE_SETTING, use_code

from .options import add_code_option, code_of

PREFIX = "snakes-web serve"


@dataclass(frozen=True)
class Choice:
    """The model file to serve, its backend, and why it was chosen (printed at start)."""

    path: Path
    backend: str
    why: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `snakes-web serve`'s arguments."""
    parser.add_argument("model", type=Path, help="an export.pkl (converted to ONNX when it can be) or a .onnx")
    add_code_option(parser)
    parser.add_argument("--bind", default=None, help="host:port to listen on (default: SNAKES_BIND, else $PORT on "
                                                     "every interface, else 127.0.0.1:8000)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: from the cores "
                                                                  "and memory, SNAKES_WORKERS)")
    parser.add_argument("--no-int8", action="store_true", help="serve fp32 ONNX even when int8 would keep the "
                                                               "answers")
    parser.add_argument("--fastai", action="store_true", help="serve the .pkl on the fastai backend, unconverted")
    parser.add_argument("--prepare-only", action="store_true",
                        help="convert and say what would be served, then exit (e.g. in a Docker build step)")


def run(args: argparse.Namespace) -> int:
    """Choose (and if need be convert) the model, then replace this process with gunicorn."""
    code = code_of(args)
    try:
        choice = choose(Path(args.model), code, int8=not args.no_int8, convert=not args.fastai)
    except ModelLoadError as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        return 1
    print(f"{PREFIX}: serving {choice.path} on the {choice.backend} backend ({choice.why})", flush=True)
    if args.prepare_only:
        return 0
    env = {**os.environ, "SNAKES_MODEL": str(choice.path), CODE_SETTING: ",".join(code)}
    argv = [sys.executable, "-m", "gunicorn", "-c", config_path(), "snakes_web:create_app()"]
    argv += ["--bind", args.bind] if args.bind else []
    argv += ["--workers", str(args.workers)] if args.workers else []
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def config_path() -> str:
    """Return the path of the package's gunicorn settings (``gunicorn -c`` takes a file)."""
    spec = importlib.util.find_spec("snakes_web.tools.gunicorn_config")
    assert spec is not None and spec.origin is not None
    return spec.origin


def choose(source: Path, code: list[str], int8: bool = True, convert: bool = True) -> Choice:
    """Return what to serve for ``source``: an ONNX file made from it when possible, else the file itself."""
    from snakes_web.model.predictor import check_model_file

    check_model_file(source)
    if backend_for(source) == "onnx":
        return Choice(source, "onnx", "an ONNX file, served as it is")
    if not convert:
        return Choice(source, "fastai", "--fastai: not converted")
    use_code(code)
    fp32, quantized, refused = converted_paths(source)
    if not fresh(fp32, source):
        from snakes_web.model.onnx_export import export_onnx
        from snakes_web.model.transforms import UnsupportedExport

        print(f"{PREFIX}: converting {source} to ONNX (first start) ...", flush=True)
        try:
            export_onnx(source, fp32)
        except UnsupportedExport as exc:
            return Choice(source, "fastai", f"cannot convert it to ONNX: {exc}")
    if not int8:
        return Choice(fp32, "onnx", "fp32, converted from the .pkl; --no-int8")
    if fresh(quantized, source):
        return Choice(quantized, "onnx", "int8, converted from the .pkl and checked against fp32")
    if fresh(refused, source):
        return Choice(fp32, "onnx", f"fp32, converted from the .pkl; int8 was refused: {refused.read_text().strip()}")
    return _quantize(source, fp32, quantized, refused)


def _quantize(source: Path, fp32: Path, quantized: Path, refused: Path) -> Choice:
    """Quantize ``fp32``; keep int8 only when it agrees with fp32 (else remember why, and serve fp32)."""
    from snakes_web.model.quantize import Int8Refused, export_int8

    from .photos import calibration_images, generated_photos

    print(f"{PREFIX}: quantizing to int8 and checking it against fp32 ...", flush=True)
    try:
        result = export_int8(source, fp32, quantized, calibration_images(None), generated_photos(range(100, 108)),
                             load_settings()["INT8_MIN_AGREEMENT"])
    except Int8Refused as exc:
        refused.write_text(f"{exc}\n")
        return Choice(fp32, "onnx", f"fp32, converted from the .pkl; int8 was refused: {exc}")
    return Choice(quantized, "onnx", "int8, converted from the .pkl and checked against fp32: "
                                     + "; ".join(result.lines()))


def converted_paths(source: Path) -> tuple[Path, Path, Path]:
    """Where the conversions of ``source`` go: beside it, or in a cache folder when that is read-only."""
    folder = source.parent if os.access(source.parent, os.W_OK) else Path(tempfile.gettempdir()) / "snakes-web"
    folder.mkdir(parents=True, exist_ok=True)
    stem = source.stem
    return folder / f"{stem}.onnx", folder / f"{stem}-int8.onnx", folder / f"{stem}-int8.refused"


def fresh(path: Path, source: Path) -> bool:
    """Tell whether ``path`` exists and was written after ``source`` last changed."""
    return path.exists() and path.stat().st_mtime >= source.stat().st_mtime
