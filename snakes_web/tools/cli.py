"""The `snakes-web` command."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .options import add_code_option, code_of


def build_default_model(args: argparse.Namespace) -> int:
    """Build the default snake classifier and export it (skipped when it exists, unless --force)."""
    from snakes_web.model.snakenet import export_default_model

    output = Path(args.output)
    if output.exists() and not args.force:
        print(f"{output} exists; use --force to rebuild it.")
        return 0
    print(f"Building the default model into {output} ...")
    print(f"Wrote {export_default_model(output)}")
    return 0


def export_onnx(args: argparse.Namespace) -> int:
    """Convert a fastai export.pkl into one ONNX file that serves without torch or fastai."""
    from snakes_web.exceptions import ModelLoadError
    from snakes_web.model.model_code import use_code
    from snakes_web.model.onnx_export import export_onnx as convert
    from snakes_web.model.quantize import Int8Refused
    from snakes_web.model.transforms import UnsupportedExport

    destination = Path(args.destination)
    try:
        use_code(code_of(args))
        if args.int8:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
                fp32 = Path(scratch) / "fp32.onnx"
                metadata = convert(Path(args.source), fp32, name=args.name)
                _export_int8(args, fp32, destination)
        else:
            metadata = convert(Path(args.source), destination, name=args.name)
    except Int8Refused as exc:
        print("\n".join(f"  {a.line()}" for a in exc.agreements), file=sys.stderr)
        print(f"snakes-web export-onnx: {exc}", file=sys.stderr)
        return 1
    except (UnsupportedExport, ModelLoadError) as exc:
        print(f"snakes-web export-onnx: cannot convert {args.source}: {exc}", file=sys.stderr)
        return 1
    print(f"Wrote {args.destination} ({metadata['model_name']}, {len(json.loads(metadata['vocab']))} labels, "
          f"input {metadata['input_size']}, {metadata['activation']}{', int8' if args.int8 else ''})")
    return 0


def _export_int8(args: argparse.Namespace, fp32: Path, destination: Path) -> None:
    """Quantize ``fp32`` into ``destination``, checked against fp32 on photos and synthesised positives."""
    from snakes_web.config import load_settings
    from snakes_web.model.quantize import export_int8

    from .photos import calibration_images, generated_photos

    calibration = calibration_images(args.calibration)
    photos = calibration if args.calibration is not None else generated_photos(range(100, 108))
    threshold = args.min_agreement if args.min_agreement is not None else load_settings()["INT8_MIN_AGREEMENT"]
    result = export_int8(Path(args.source), fp32, destination, calibration, photos, threshold,
                         per_class=args.positives)
    print("\n".join(result.lines()))


def build_parser() -> argparse.ArgumentParser:
    """Return the `snakes-web` parser with every subcommand declared (nothing runs; docs/reference/cli.md reads it)."""
    parser = argparse.ArgumentParser(prog="snakes-web", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-default-model", help=build_default_model.__doc__)
    build.add_argument("-o", "--output", default="models/export.pkl", help="where to write export.pkl")
    build.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    build.set_defaults(run=build_default_model)
    onnx = commands.add_parser("export-onnx", help=export_onnx.__doc__)
    onnx.add_argument("source", help="the fastai export.pkl")
    onnx.add_argument("destination", help="the .onnx file to write")
    onnx.add_argument("--name", default="", help="model name to store (default: the export's)")
    onnx.add_argument("--int8", action="store_true",
                      help="quantize to int8 (about 2x faster forward; check its accuracy on your photos)")
    onnx.add_argument("--calibration", type=Path, default=None,
                      help="folder of your own images to calibrate and check --int8 on (default: generated images)")
    onnx.add_argument("--min-agreement", type=float, default=None,
                      help="refuse an int8 model whose top-1 agreement with fp32 is lower on a check set "
                           "(default: SNAKES_INT8_MIN_AGREEMENT, 0.99)")
    onnx.add_argument("--positives", type=int, default=2,
                      help="synthesised positives per class that --int8 is checked on (default 2)")
    add_code_option(onnx)
    onnx.set_defaults(run=export_onnx)
    from .bench.command import add_arguments
    from .bench.command import run as run_bench

    bench = commands.add_parser("bench", help="Measure learn.predict against our server on both backends; "
                                              "write docs/benchmarks.md.")
    add_arguments(bench)
    bench.set_defaults(run=run_bench)
    from . import evaluate, predict, serve
    from .train import command as training

    serving = commands.add_parser("serve", help="Serve any export (.pkl or .onnx) with gunicorn and this "
                                                "project's settings; a .pkl is converted to ONNX when it can be.")
    serve.add_arguments(serving)
    serving.set_defaults(run=serve.run)

    train = commands.add_parser("train", help="Fine-tune EfficientNet-Lite0 on a folder of labelled photos; "
                                              "export a model the server serves.")
    training.add_arguments(train)
    train.set_defaults(run=training.run)
    classify = commands.add_parser("predict", help="Print a model's top predictions for image files.")
    predict.add_arguments(classify)
    classify.set_defaults(run=predict.run)
    measure = commands.add_parser("evaluate", help="Measure a model on a folder of labelled photos: "
                                                  "accuracy, confusion, snake rates, calibration.")
    evaluate.add_arguments(measure)
    measure.set_defaults(run=evaluate.run)
    from . import feedback as feedback_cli

    feedback = commands.add_parser("feedback", help="List, export (for `train`) or purge visitors' feedback.")
    feedback_cli.add_arguments(feedback)
    feedback.set_defaults(run=feedback_cli.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a `snakes-web` subcommand."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
