"""`snakes-web train`'s command line: its arguments, their checks, and the run that takes the steps in order.

Prints what it reads, trains and writes; one line on stderr (exit 1) when the photos or options cannot
train. The steps themselves are the package's modules (see ``snakes_web.tools.train``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .dataset import Dataset, bad_file_lines, scan_dataset, shown
from .export import export, export_int8_checked, export_onnx_checked
from .fitting import fit, make_learner, setup_torch
from .loaders import batch_size_for, dataloaders, default_workers, device_for
from .options import BAD_FILE_CHOICES, DEVICE_CHOICES, DatasetError, Options
from .report import evaluate, plot_confusion


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `snakes-web train`'s arguments."""
    defaults = Options()
    parser.add_argument("photos", type=Path, help="folder with one sub-folder of photos per class "
                                                  "(or train/ and valid/ folders that each have them)")
    parser.add_argument("-o", "--output", type=Path, default=Path("models/export.pkl"),
                        help="where to write the fastai export (default: models/export.pkl, what `make run` "
                             "serves); the confusion-matrix PNG goes beside it")
    parser.add_argument("--onnx", action="store_true",
                        help="also write the ONNX model beside it (same name, .onnx), checked against the .pkl")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help=f"epochs with the whole network training (default {defaults.epochs})")
    parser.add_argument("--frozen-epochs", type=int, default=defaults.frozen_epochs,
                        help=f"epochs first with only the new head training (default {defaults.frozen_epochs})")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help=f"base learning rate for fine_tune (default {defaults.lr:g})")
    parser.add_argument("--lr-find", action="store_true",
                        help="run fastai's lr_find first and use its suggestion instead of --lr")
    parser.add_argument("--size", type=int, default=defaults.size,
                        help=f"input size in pixels (default {defaults.size}, as the default model)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help=f"images per batch (default {defaults.batch_size}; fewer when an epoch would "
                             f"have under 8 steps)")
    parser.add_argument("--valid-pct", type=float, default=defaults.valid_pct,
                        help=f"share of each class held out for validation when there is no valid/ folder "
                             f"(default {defaults.valid_pct:g})")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"seed for the split, the head's initialisation and the shuffling "
                             f"(default {defaults.seed})")
    parser.add_argument("--min-per-class", type=int, default=defaults.min_per_class,
                        help=f"refuse a class with fewer readable training images (default {defaults.min_per_class})")
    parser.add_argument("--bad-files", choices=BAD_FILE_CHOICES, default=defaults.bad_files,
                        help="files that are not images we read: list them and skip them (default), "
                             "skip them with a count only, or fail")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="data-loader worker processes (default: 0 on 2 cores or less, on small datasets "
                             "or when /dev/shm is small; else up to 4)")
    parser.add_argument("--int8", action="store_true",
                        help="with --onnx, also write an int8 model (<name>-int8.onnx) calibrated and checked on "
                             "the validation photos; below SNAKES_INT8_MIN_AGREEMENT top-1 agreement it is not "
                             "written (said on stderr; the exit status stays 0: the fp32 model serves)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default=defaults.device,
                        help="where to train: auto (default: CUDA when torch sees a GPU, else the CPU), cpu or cuda; "
                             "the export always loads on a CPU-only server")
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help="torch threads (default: the cores this process may use, cgroup quota included)")
    parser.add_argument("--name", default=defaults.name,
                        help="model name the server shows (default: <photos folder>-efficientnet-lite0)")
    parser.add_argument("--check", action="store_true", help="check and describe the dataset, train nothing")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, only the results")


def options_from(args: argparse.Namespace) -> Options:
    """Turn parsed arguments into ``Options``, refusing values that cannot work."""
    problems = [f"--{name.replace('_', '-')} must be {rule}" for name, ok, rule in (
        ("epochs", args.epochs >= 0, "0 or more"), ("frozen_epochs", args.frozen_epochs >= 0, "0 or more"),
        ("lr", args.lr > 0, "positive"), ("size", args.size >= 32, "32 or more"),
        ("batch_size", args.batch_size >= 2, "2 or more"), ("valid_pct", 0 < args.valid_pct < 1, "between 0 and 1"),
        ("min_per_class", args.min_per_class >= 2, "2 or more"),
        ("num_workers", args.num_workers is None or args.num_workers >= 0, "0 or more"),
        ("threads", args.threads >= 0, "0 or more")) if not ok]
    if Path(args.output).suffix != ".pkl" or Path(args.output).is_dir():
        problems.append(f"--output must name a .pkl file (like models/export.pkl), not {args.output}")
    if getattr(args, "int8", False) and not args.onnx:
        problems.append("--int8 needs --onnx")
    if args.epochs + args.frozen_epochs == 0:
        problems.append("--epochs and --frozen-epochs cannot both be 0")
    if problems:
        raise DatasetError("; ".join(problems) + ".")
    return Options(epochs=args.epochs, frozen_epochs=args.frozen_epochs, lr=args.lr, lr_find=args.lr_find,
                   size=args.size, batch_size=args.batch_size, valid_pct=args.valid_pct, seed=args.seed,
                   min_per_class=args.min_per_class, bad_files=args.bad_files, num_workers=args.num_workers,
                   threads=args.threads, name=args.name, device=args.device)


def run(args: argparse.Namespace) -> int:
    """Run `snakes-web train`: check, train, report, export; one line on stderr when it cannot."""
    try:
        return _train(args)
    except DatasetError as exc:
        if exc.details:
            print("\n".join(exc.details), file=sys.stderr)
        print(f"snakes-web train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nsnakes-web train: interrupted; {args.output} was not written.", file=sys.stderr)
        return 130


def _train(args: argparse.Namespace) -> int:
    """Do the work of ``run``."""
    from snakes_web.model.transforms import UnsupportedExport

    started = time.perf_counter()
    options = options_from(args)
    dataset = _scan_reporting(args.photos, options)
    print(dataset.describe())
    if args.check:
        return 0
    workers, why = ((options.num_workers, "--num-workers") if options.num_workers is not None
                    else default_workers(len(dataset.train), options.batch_size, options.size))
    threads = setup_torch(options)
    print(f"Fine-tuning EfficientNet-Lite0 at {options.size}×{options.size}: {options.frozen_epochs} frozen + "
          f"{options.epochs} epochs, lr {'from lr_find' if options.lr_find else f'{options.lr:g}'}, "
          f"batches of {batch_size_for(len(dataset.train), options.batch_size)}, "
          f"{threads} torch thread(s), {workers} data-loader worker(s) ({why}), on {device_for(options)}.")
    learner = make_learner(dataloaders(dataset, options, num_workers=workers),
                           options.name or f"{dataset.root.name}-efficientnet-lite0")
    fit(learner, options, progress="none" if args.quiet else "auto")
    trained = time.perf_counter() - started
    report = evaluate(learner, dataset)
    # The training prior travels with the export: SNAKES_PRIORS corrects for a deployment's own.
    learner.training_label_counts = {label: train for label, (train, _) in dataset.counts().items()}
    output = export(learner, args.output)
    plot = plot_confusion(report, output.with_name(f"{output.stem}-confusion.png"))
    print()
    print(report.text(dataset.root))
    print()
    print(f"Trained in {_minutes(trained)}. Wrote {shown(output)} and {plot.name}.")
    served = output
    if args.onnx:
        try:
            onnx, compared, same, largest = export_onnx_checked(output, report)
        except UnsupportedExport as exc:
            print(f"snakes-web train: {output} is written, but cannot be converted to ONNX: {exc}", file=sys.stderr)
            return 1
        print(f"Wrote {shown(onnx)}: same top class as the .pkl on {same} of {compared} validation photos "
              f"(largest probability difference {largest:.1e}).")
        served = onnx
        if args.int8:  # a refused int8 is said on stderr; the fp32 model stands, so training still succeeded
            export_int8_checked(output, onnx, dataset)
    print(f"Serve it:  SNAKES_MODEL={shown(served)} make run    Try it:  snakes-web predict {shown(served)} PHOTO...")
    return 0


def _scan_reporting(photos: Path, options: Options) -> Dataset:
    """Scan the dataset, listing unreadable files on stderr as ``--bad-files`` asks."""
    print(f"Reading the photos in {photos} ...")
    dataset = scan_dataset(photos, options)
    if dataset.bad and options.bad_files == "list":
        print(f"Skipping {len(dataset.bad)} file(s) that are not images we read:", file=sys.stderr)
        print("\n".join(bad_file_lines(dataset.bad, dataset.root)), file=sys.stderr)
    elif dataset.bad:
        print(f"Skipping {len(dataset.bad)} file(s) that are not images we read.", file=sys.stderr)
    return dataset


def _minutes(seconds: float) -> str:
    """Say a duration as "42 s" or "3.5 min"."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
