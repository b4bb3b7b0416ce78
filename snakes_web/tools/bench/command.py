"""`snakes-web bench`: in-process ``learn.predict`` against our server on both backends, in one run.

On the same generated images and the same model, it measures

1. ``learn.predict(raw_bytes)`` in one process: the baseline every fastai tutorial serves with;
2. the fastai backend (``.pkl``) through our gunicorn on loopback;
3. the ONNX backend (``.onnx``, converted at the start of the run) through our gunicorn on loopback;
3s. the same ONNX server with gunicorn's old ``sync`` workers (``--worker-class sync --threads 1`` on the
    command line), so the threaded worker is compared with what it replaced in the same run;

each for a fixed time after a warm-up. The HTTP load comes from a second process (a Python client
holding a fixed number of requests in flight), so the server's CPU time is the server's. It reports
images/s, p50/p99 latency, RSS per worker, the time from process start to the first answer, and each
image rate as a ratio against (1) on the same image, then writes the table to ``docs/benchmarks.md``.
On the servers of (3) and (3s) it then holds slow uploads and slow URL fetches open while it times
normal uploads (``slow_clients``): what a few slow phones do to everyone else.
Each scenario and the client run in their own processes: the bench itself never imports torch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import Image

from .baseline import baseline
from .client import drive
from .images import write_images
from .in_process import (
    agreement_section,
    batching,
    batching_section,
    breakdown,
    breakdown_section,
    check_photos,
)
from .report import machine, report, slow_table, table, targets_section, top3, versus_table, with_sections
from .scenarios import BASELINES, INT8, STRONGEST, SYNC, SYNC_ARGS, THREADED
from .servers import run_baseline, serve
from .slow_clients import slow_plans

#: What `make run` serves (the Makefile's SNAKES_MODEL): the int8 export, which met the bar
#: (``in_process.DEFAULT_BAR``) on every check set and class; the targets are measured on it.
SERVES_INT8 = True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench (or, with ``--role``, one of its helper processes)."""
    parser = argparse.ArgumentParser(prog="snakes-web bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def default_config() -> Path:
    """Return the project's gunicorn.conf.py: in the working directory, else the package's own settings."""
    from ..serve import config_path

    here = Path("gunicorn.conf.py")
    return here.resolve() if here.is_file() else Path(config_path())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the bench's options (shared by `snakes-web bench` and `python -m snakes_web.tools.bench.command`)."""
    parser.add_argument("--model", type=Path, default=Path("models/export.pkl"), help="the fastai export.pkl")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per scenario and image")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each")
    parser.add_argument("--concurrency", type=int, default=4, help="requests the client keeps in flight")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (0: the config's sizing)")
    parser.add_argument("--config", type=Path, default=default_config(), help="gunicorn config file")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="where to write the table")
    parser.add_argument("--smoke", action="store_true", help="tiny images, 0.3 s per measurement: checks it runs")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the int8 export too, and its agreement with fp32 per class (default: yes; "
                             "--no-int8 skips it)")
    parser.add_argument("--slow", type=int, default=None, metavar="N",
                        help="slow uploads and slow URLs (N of each) held open while normal uploads are timed, "
                             "on the ONNX server threaded and sync (default 32, 2 with --smoke; 0: skip)")
    parser.add_argument("--recipes", action=argparse.BooleanOptionalAction, default=True,
                        help="train, convert and serve each fastai recipe on ONNX and on fastai (default: yes; "
                             "--no-recipes skips it; one recipe with --smoke)")
    parser.add_argument("--only-recipes", action="store_true",
                        help="run the recipes section alone and put it into the existing --out file, in place of "
                             "the one there, marked as a later run (the other tables stay as they were)")
    parser.add_argument("--only-priors", action="store_true",
                        help="the same for the priors section (the int8 export of --model with and without its "
                             "deployment prior)")
    parser.add_argument("--only-versus", action="store_true",
                        help="the same for the FastAPI section (our server against FastAPI + uvicorn and a bare Flask "
                             "app serving the same predictor, on a small, a 1 MP and a 12 MP photo)")
    parser.add_argument("--role", choices=["bench", "baseline", "client"], default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--style", choices=list(BASELINES), default=STRONGEST, help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--path", default="/api/v1/predict", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, default=0.0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Dispatch on the role: the bench itself, or one of its helper processes."""
    if args.role == "client":
        load = drive("127.0.0.1", args.port, args.image, args.concurrency, args.warmup, args.duration, args.path)
        print(json.dumps(load.__dict__))
        return 0
    if args.role == "baseline":
        images = {label: Path(path) for label, path in json.loads(args.images).items()}
        print(json.dumps(baseline(args.model, images, args.warmup, args.duration, args.launched, args.style)))
        return 0
    for which in ("recipes", "priors", "versus"):
        if getattr(args, f"only_{which}"):
            return only_section(args, which)
    return bench(args)


@contextlib.contextmanager
def workspace(args: argparse.Namespace) -> Iterator[tuple[Path, dict[str, Path]]]:
    """Apply ``--smoke``'s timings; yield a scratch folder and the bench images written in it."""
    if args.smoke:
        args.duration, args.warmup = 0.3, 0.1
    with tempfile.TemporaryDirectory(prefix="snakes-bench-") as scratch:
        work = Path(scratch)
        yield work, write_images(work / "images", scale=0.25 if args.smoke else 1.0)


def only_section(args: argparse.Namespace, which: str) -> int:
    """Measure one section alone (``recipes``, ``priors`` or ``versus``); splice it into ``args.out`` as a later run."""
    about = machine()
    with workspace(args) as (work, images):
        if which == "recipes":
            from .recipes import RECIPES_HEADING, recipes_section

            heading, section = RECIPES_HEADING, recipes_section(images["1 MP JPEG"], args, work)
        elif which == "priors":
            from .priors import PRIORS_HEADING, priors_section

            heading = PRIORS_HEADING
            section = priors_section(int8_of(args.model, work), images["1 MP JPEG"], args, work)
        else:
            from .versus import VERSUS_HEADING, versus_section

            heading, section = VERSUS_HEADING, versus_section(int8_of(args.model, work), images, args, work)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    note = (f"*This section is from a later run* ({stamp}, `snakes-web bench --only-{which}`), on {about}. "
            f"Its ratios stand on their own, as each run's do.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(with_sections(splice(old, heading, section, note)))
    print(f"wrote the {which} section into {args.out}")
    return 0


def int8_of(model: Path, work: Path) -> Path:
    """Convert ``model`` to checked int8 ONNX in ``work`` (as `make run` serves it); return the file."""
    int8 = work / "model-int8.onnx"
    print(f"converting {model} to int8 ONNX ...", flush=True)
    subprocess.run([sys.executable, "-m", "snakes_web", "export-onnx", "--int8", str(model), str(int8)],
                   check=True, stdout=subprocess.DEVNULL)
    return int8


def splice(text: str, heading: str, section: str, note: str) -> str:
    """Put ``section`` (which starts with ``heading``) in place of that section of ``text``, ``note`` under it."""
    section = section.replace(f"{heading}\n\n", f"{heading}\n\n{note}\n\n", 1)
    start = text.find(heading)
    if start < 0:
        return text.rstrip("\n") + "\n" + section
    following = text.find("\n## ", start + len(heading))
    rest = text[following:] if following >= 0 else ""
    return text[:start].rstrip("\n") + "\n" + section.rstrip("\n") + "\n" + rest


def bench(args: argparse.Namespace) -> int:
    """Run the scenarios (and the slow clients on the ONNX servers) and write the report."""
    about = machine()
    with workspace(args) as (work, images):
        labels = list(images)
        onnx_model = work / "model.onnx"
        print(f"converting {args.model} to ONNX ...", flush=True)
        subprocess.run([sys.executable, "-m", "snakes_web", "export-onnx", str(args.model), str(onnx_model)],
                       check=True, stdout=subprocess.DEVNULL)
        scenarios = [run_baseline(style, args, images) for style in BASELINES]
        servers: list[tuple[str, Path, Sequence[str]]] = [
            ("(2) fastai backend, HTTP", args.model, ()), (THREADED, onnx_model, ()), (SYNC, onnx_model, SYNC_ARGS)]
        extra, measured, models = "", None, {"fp32": onnx_model}
        if args.int8:
            int8_model = work / "model-int8.onnx"
            print("quantizing to int8 and checking it on photos and positives of every class ...", flush=True)
            out = subprocess.run([sys.executable, "-m", "snakes_web.tools.bench.in_process", str(args.model),
                                  str(onnx_model), str(int8_model), "--photos",
                                  json.dumps({k: str(v) for k, v in check_photos(images).items()})],
                                 capture_output=True, text=True, check=True)
            measured = json.loads(out.stdout)
            servers.append((INT8, int8_model, ()))
            models["int8"] = int8_model
            extra = agreement_section(measured) + int8_accuracy(onnx_model, int8_model, images)
        plans = slow_plans(args)
        for index, (name, model, flags) in enumerate(servers):
            print(f"{name} ...", flush=True)
            scenarios.append(serve(name, model, images, args, work / f"server-{index}.log", flags, plans.get(name)))
        print("batching and the per-stage breakdown, in process ...", flush=True)
        served_name, served_model = (INT8, models["int8"]) if SERVES_INT8 and args.int8 else (THREADED, onnx_model)
        from snakes_web.model.onnx_backend import OnnxPredictor

        sample = OnnxPredictor(onnx_model, threads=1).prepare(Image.open(images[labels[0]]).convert("RGB"))
        repeats = 2 if args.smoke else 5
        extra += batching_section(batching(models, sample, repeats=repeats), repeats)
        stages = breakdown(served_model, images, labels[:2], times=2 if args.smoke else 10)
        served_row = next(s for s in scenarios if s.name == served_name)
        extra += breakdown_section(stages, served_name, labels[1], labels[0],
                                   {label: load.cpu_ms_per_image for label, load in served_row.loads.items()})
        extra = targets_section(scenarios, labels, served_name, measured) + extra
        print("heatmaps: ?explain= against none ...", flush=True)
        from .explain import explain_section

        extra += explain_section(args.model, onnx_model, images["1 MP JPEG"], "1 MP JPEG", work, args.duration * 2)
        if args.int8:
            print("feedback's price: the int8 server with feedback off, as shipped, and asked for receipts ...",
                  flush=True)
            from .receipts import receipts_section

            extra += receipts_section(models["int8"], images["1 MP JPEG"], args, work)
            print("priors and the verdict: the int8 server with and without the deployment prior ...", flush=True)
            from .priors import priors_section

            extra += priors_section(models["int8"], images["1 MP JPEG"], args, work)
            print("against FastAPI: the int8 server and FastAPI + uvicorn serving the same predictor ...", flush=True)
            from .versus import versus_section

            extra += versus_section(models["int8"], images, args, work)
            print("memory: decode bombs and held uploads, bounded and with the limits off ...", flush=True)
            from .memory import memory_section

            extra += memory_section(str(models["int8"]), str(args.config), images["1 MP JPEG"].read_bytes(),
                                    str(work), smoke=args.smoke)
        if args.recipes:
            print("your own model: each fastai recipe, trained, converted, served on ONNX and on fastai ...",
                  flush=True)
            from .recipes import recipes_section

            extra += recipes_section(images["1 MP JPEG"], args, work)
    text = report(scenarios, labels, args, about, extra=extra)
    print(table(scenarios, labels))
    print(f"\n{versus_table(scenarios, labels)}")
    if plans:
        print(f"\n{slow_table(scenarios)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(with_sections(text))
    print(f"wrote {args.out}")
    return 0


def int8_accuracy(fp32: Path, int8: Path, images: dict[str, Path]) -> str:
    """Compare the int8 model with fp32 on the bench images and the repository's test photos."""
    from snakes_web.imaging.images import load_image
    from snakes_web.model.onnx_backend import OnnxPredictor

    reference, quantized = OnnxPredictor(fp32, threads=1), OnnxPredictor(int8, threads=1)
    rows = ["", "**int8 against fp32** (same preprocessing; top-1, the top-3 in order, and the largest "
            "probability difference over all classes):", "",
            "| image | fp32 top-1 | int8 top-1 | same top-1 | same top-3 | max abs Δp |",
            "|---|---|---|---|---|---:|"]
    for label, path in check_photos(images).items():
        image = load_image(path.read_bytes(), 100_000_000)
        ours, theirs = ({p.label: p.probability for p in model.predict(image)} for model in (quantized, reference))
        top = [max(d, key=d.__getitem__) for d in (theirs, ours)]
        species = [top3(d) for d in (theirs, ours)]
        delta = max(abs(ours[k] - theirs[k]) for k in ours)
        rows.append(f"| {label} | {top[0]} | {top[1]} | {'yes' if top[0] == top[1] else 'NO'} | "
                    f"{'yes' if species[0] == species[1] else 'no'} | {delta:.5f} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.exit(main())
