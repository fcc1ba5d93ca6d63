"""The `medsight` command line: parses arguments and calls medsight.api (imports stay lazy for a fast --help)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from medsight.errors import MedsightError

BALANCE = ("none", "weights", "sampler", "focal", "smote")
WORKER_FAILURE_DELAY_S = 3.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsight", description="Deep learning on medical images: "
                                     "classification, segmentation and detection, 2D and 3D.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="train, evaluate and report on synthetic data (no data or network needed)")
    p.add_argument("--task", choices=("classification", "segmentation", "detection", "fundus", "ct-nodule", "all"),
                   default="all", help="all (default): every task but ct-nodule, which is opt-in (a few minutes more)")
    p.add_argument("--out", default="medsight-demo", help="output folder (default: ./medsight-demo)")
    p.add_argument("--minutes", type=float, default=None,
                   help="a training budget per task in minutes, instead of each run's fixed epochs")

    p = sub.add_parser("check", help="validate a data set and describe it (a DICOM tree: its series)")
    p.add_argument("data")
    p.add_argument("--series", help="DICOM: the SeriesInstanceUID to use")

    p = sub.add_parser("plan", help="fingerprint a data set and write RUN/plan.json")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    _add_device(p, "the device to plan for: auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--race", action="store_true",
                   help="race the task's candidate configurations on the data and plan the winner")
    p.add_argument("--minutes", type=float, help="with --race: the training budget the race is for (default 10)")

    p = sub.add_parser("train", help="train a model into a run folder")
    _add_run_options(p)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--balance", choices=BALANCE, default="none", help="handling of imbalanced classes")
    p.add_argument("--operating-point", default="balanced_accuracy",
                   help="threshold rule chosen on val: balanced_accuracy, youden, sensitivity:0.9, argmax, "
                        "qwk (ordered grades: cuts on the expected grade for quadratic kappa)")
    p.add_argument("--nproc", type=int, default=1, help="processes for DDP via torchrun (gloo on CPU, NCCL on GPU)")
    p.add_argument("--init", metavar="RUN_OR_WEIGHTS",
                   help="start from a run's (a packed run's, a .safetensors file's) tensors whose name and shape match")
    p.add_argument("--freeze", choices=("none", "encoder"), default="none", help="with --init: keep the encoder fixed")
    p.add_argument("--init-lr-scale", type=float, default=0.1, help="learning rate of pretrained tensors (x --lr)")
    p.add_argument("--no-race", action="store_true",
                   help="with --minutes: train the plan's model alone instead of racing the candidates first")
    p.add_argument("--track", action="append", default=[], metavar="mlflow:URI|tensorboard:DIR",
                   help="experiment tracking (repeatable): an MLflow file store or server, or a TensorBoard folder")

    p = sub.add_parser("pretrain", help="self-supervised pre-training on a data set's images, for train --init")
    _add_run_options(p)

    p = sub.add_parser("crossval", help="train K folds from one plan, out-of-fold metrics, the fold ensemble on test")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--minutes", type=float, help="training budget per fold")
    p.add_argument("--epochs", type=int)
    p.add_argument("--model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parallel", type=int, default=1, help="folds trained at once")

    p = sub.add_parser("evaluate", help="metrics.json and report.html for a run, an ensemble of runs, or two folders")
    p.add_argument("run", nargs="*", help="one run, or several (folds, seeds) evaluated as an ensemble")
    _add_device(p)
    p.add_argument("--data")
    p.add_argument("--split", default="test")
    p.add_argument("--pred", help="folder of predicted masks (with --ref: no model needed)")
    p.add_argument("--ref", help="folder of reference masks")
    p.add_argument("--nsd-tolerance", metavar="MM[,MM...]",
                   help="segmentation: NSD tolerance in mm, one number or one per foreground class "
                        "(default: the plan's evaluation.nsd_tolerance_mm, 1 mm)")
    p.add_argument("--out", help="output folder for --pred/--ref (default PRED/eval) or for an ensemble "
                                 "(default RUN1/eval/SPLIT-ensemble)")

    p = sub.add_parser("predict", help="predict files or folders with one run or an ensemble of runs")
    p.add_argument("paths", nargs="+", help="RUN... INPUT... (run folders or packed runs first)")
    p.add_argument("--out", required=True)
    p.add_argument("--explain", action="store_true", help="also write Grad-CAM heat maps")
    p.add_argument("--engine", choices=("torch", "onnx"), default="torch")
    _add_device(p)
    p.add_argument("--shard", metavar="I/N", help="predict only shard I of N (0-based) of the sorted inputs")
    p.add_argument("--continue", dest="resume", action="store_true",
                   help="skip the inputs OUT/predictions.jsonl says these same weights already predicted")
    p.add_argument("--tta", choices=("off", "mirror"), help="test-time mirroring (segmentation, classification; default: the plan's)")
    p.add_argument("--overlap", type=float, help="sliding-window overlap, 0 to <1 (default: the plan's)")
    p.add_argument("--batch", type=int, help="inputs per forward pass: windows (segmentation) or images")
    p.add_argument("--format", choices=("nifti", "dicom-seg", "dicom-sr"), default="nifti",
                   help="DICOM inputs: also write a DICOM SEG (+ volumes SR) or a measurement report SR")
    p.add_argument("--series", help="DICOM study: the SeriesInstanceUID to predict (default: the plan's rule)")
    p.add_argument("--codes", help="JSON mapping class names to coded concepts, for DICOM results")
    p.add_argument("--dicomweb", metavar="URL", help="fetch the study from a DICOMweb server (QIDO/WADO-RS)")
    p.add_argument("--study", help="with --dicomweb: the StudyInstanceUID")
    p.add_argument("--store", action="store_true", help="with --dicomweb: send the DICOM results back (STOW-RS)")

    p = sub.add_parser("export", help="export a run to ONNX, checked against PyTorch")
    p.add_argument("run")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--device", default="cpu", help="where the PyTorch reference of the check runs: cpu (default), "
                   "auto, cuda or cuda:N (the export itself is traced on the CPU)")

    p = sub.add_parser("serve", help="serve a run over HTTP with a web page")
    p.add_argument("run")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--engine", choices=("torch", "onnx"), default="torch")
    _add_device(p)
    p.add_argument("--token", help="bearer token required on every route but /health (default: $MEDSIGHT_TOKEN); "
                                   "needed to listen on anything but 127.0.0.1")
    p.add_argument("--max-upload-mb", type=int, default=64, help="largest upload in MiB (default 64)")
    p.add_argument("--max-voxels", type=int, default=1 << 28,
                   help="largest image in voxels, read from its header before the pixels (default 268435456)")

    p = sub.add_parser("compare", help="runs side by side, with paired bootstrap differences on the same test cases")
    p.add_argument("run", nargs="+", help="two or more evaluated run folders; the first is the reference A")
    p.add_argument("--split", default="test")
    p.add_argument("--out", default="compare.html", help="the HTML page (default ./compare.html)")

    p = sub.add_parser("card", help="write RUN/MODEL_CARD.md (Hugging Face model-card format)")
    p.add_argument("run")
    p.add_argument("--split", default="test", help="the evaluation whose figures the card reports")
    p.add_argument("--out", help="default RUN/MODEL_CARD.md")

    p = sub.add_parser("pack", help="one archive of what predict, serve and train --init need, with sha256 manifest")
    p.add_argument("run")
    p.add_argument("--out", help="default RUN.medsight.zip beside the run folder")
    p.add_argument("--monai-bundle", action="store_true", help="lay the archive out as a MONAI bundle")

    p = sub.add_parser("models", help="list the model registry")
    p.add_argument("--task", help="only the models of this task (classification, segmentation, detection...)")
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """What train and pretrain share: data, run folder, model, budget, seed, resume, learning rate, batch."""
    p.add_argument("data", nargs="?", help="data set (optional with --resume)")
    p.add_argument("--out", required=True)
    p.add_argument("--model", help="registry name (see `medsight models`); default from the plan")
    p.add_argument("--epochs", type=int)
    p.add_argument("--minutes", type=float, help="wall-clock training budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue RUN/checkpoint.pt")
    p.add_argument("--lr", type=float, dest="learning_rate")
    p.add_argument("--batch-size", type=int, help="the global batch of a step (split between DDP processes)")
    _add_device(p)
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                   help="mixed precision on CUDA (auto: bf16 where supported, else fp16); the CPU trains in fp32")
    p.add_argument("--workers", type=int, default=0,
                   help="DataLoader processes for patch sampling and augmentation (0: in the training process)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA kernels and no cudnn.benchmark (slower on GPUs; CPU runs always are)")


def _add_device(p: argparse.ArgumentParser, what: str = "auto (CUDA when available), cpu, cuda or cuda:N") -> None:
    """--device, read by medsight.device.resolve_device for every command."""
    p.add_argument("--device", default="auto", help=what)


def _train_settings(args: argparse.Namespace) -> dict:
    return {"device": args.device, "amp": args.amp, "workers": args.workers, "deterministic": args.deterministic}


def _version() -> str:
    from medsight import __version__

    return f"medsight {__version__}"


def _print_json(obj) -> None:
    from medsight.jsonio import jsonable

    print(json.dumps(jsonable(obj), indent=2))


def _tolerance(text: str | None) -> float | list[float] | None:
    """--nsd-tolerance: "2" -> 2.0, "1,2.5" -> [1.0, 2.5] (one per foreground class)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise MedsightError(None, f"--nsd-tolerance {text!r} is not a number of mm or a comma-separated list of them") from None
    return values[0] if len(values) == 1 else values


def _split_runs(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """Run folders (they hold config.json) or packed runs come first, then the inputs."""
    from medsight.packed import is_packed

    count = 0
    while count < len(paths) and (os.path.isfile(os.path.join(paths[count], "config.json")) or is_packed(paths[count])):
        count += 1
    if count == 0:
        raise MedsightError(paths[0], "is not a run folder (no config.json); usage: medsight predict RUN... INPUT... --out DIR")
    if count == len(paths):
        raise MedsightError(None, "predict needs at least one INPUT file or folder after the run folder(s)")
    return list(paths[:count]), list(paths[count:])


def run_command(args: argparse.Namespace) -> int:
    from medsight import api

    if args.command == "demo":
        from medsight.demo import run_demo

        report = run_demo(args.task, args.out, args.minutes)
        print(f"report: {report}")
    elif args.command == "check":
        _print_json(api.check(args.data, series=args.series))
    elif args.command == "plan":
        api.plan(args.data, args.out, seed=args.seed, fold=args.fold, device=args.device, race=args.race,
                 minutes=args.minutes)
        print(f"plan: {os.path.join(args.out, 'plan.json')}")
    elif args.command == "train":
        if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
            from medsight.training.launch import launch_torchrun

            return launch_torchrun(args.nproc, sys.argv[1:])
        summary = api.train(args.data, args.out, model=args.model, epochs=args.epochs, minutes=args.minutes,
                            fold=args.fold, seed=args.seed, resume=args.resume, balance=args.balance,
                            learning_rate=args.learning_rate, batch_size=args.batch_size,
                            operating_point=args.operating_point, init=args.init, freeze=args.freeze,
                            init_lr_scale=args.init_lr_scale, track=args.track, race=not args.no_race,
                            **_train_settings(args))
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"trained: {args.out} (best epoch {summary['best_epoch']}, score {summary['best_score']:.4f}, "
                  f"{summary['seconds']:.0f} s)")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # a DDP worker leaves without interpreter teardown: the run folder is complete and written atomically,
            # and tearing down gloo's threads at exit aborts a worker now and then (SIGABRT, "terminate called
            # without an active exception"), which torchrun would report as a failed run
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    elif args.command == "pretrain":
        summary = api.pretrain(args.data, args.out, model=args.model, epochs=args.epochs, minutes=args.minutes,
                               seed=args.seed, resume=args.resume, batch_size=args.batch_size,
                               learning_rate=args.learning_rate, **_train_settings(args))
        print(f"pretrained: {args.out} (best epoch {summary['best_epoch']}, val loss {-summary['best_score']:.4f}, "
              f"{summary['seconds']:.0f} s); use it with train --init {args.out}")
    elif args.command == "crossval":
        summary = api.crossval(args.data, args.out, folds=args.folds, minutes=args.minutes, epochs=args.epochs,
                               model=args.model, parallel=args.parallel, seed=args.seed)
        _print_json({k: summary.get(k) for k in ("per_fold", "fold_mean_sd", "out_of_fold", "test_ensemble", "report")})
    elif args.command == "evaluate":
        args.nsd_tolerance = _tolerance(args.nsd_tolerance)
        if args.pred or args.ref:
            if not (args.pred and args.ref):
                raise MedsightError(None, "evaluate --pred needs --ref too (and the other way round)")
            result = api.evaluate_folders(args.pred, args.ref, args.out, nsd_tolerance=args.nsd_tolerance)
        elif len(args.run) > 1:
            result = api.evaluate_ensemble(args.run, data=args.data, split=args.split, out=args.out,
                                           nsd_tolerance=args.nsd_tolerance, device=args.device)
        elif args.run:
            result = api.evaluate(args.run[0], data=args.data, split=args.split, nsd_tolerance=args.nsd_tolerance,
                                  device=args.device)
        else:
            raise MedsightError(None, "evaluate needs a RUN folder, or --pred DIR --ref DIR")
        _print_json({"metrics": result.get("metrics", {}), "report": result.get("report")})
    elif args.command == "predict":
        if args.dicomweb:
            from medsight.dicom.web import predict_dicomweb

            result = predict_dicomweb(args.paths, args.dicomweb, args.study, args.out, series=args.series,
                                      fmt=args.format, store=args.store, codes=args.codes, engine=args.engine)
            print(result)
            return 0
        runs, inputs = _split_runs(args.paths)
        records = api.predict(runs, inputs, args.out, explain=args.explain, engine=args.engine, fmt=args.format,
                              series=args.series, codes=args.codes, device=args.device, shard=args.shard,
                              resume=args.resume, tta=args.tta, overlap=args.overlap, batch=args.batch)
        print(f"predicted {len(records)} input(s) into {args.out}")
    elif args.command == "export":
        from medsight.export.onnx import export_run

        result = export_run(args.run, device=args.device)
        if os.path.isfile(os.path.join(args.run, "tracking.json")):
            from medsight.tracking import after_export

            after_export(args.run, Path(result["path"]).parent)
        print(f"exported: {result['path']} (max abs difference {result['max_abs_diff']:.2e})")
    elif args.command == "serve":
        from medsight.serving.app import serve

        serve(args.run, host=args.host, port=args.port, engine=args.engine, device=args.device,
              token=args.token or os.environ.get("MEDSIGHT_TOKEN"), max_upload_mb=args.max_upload_mb,
              max_voxels=args.max_voxels)
    elif args.command == "compare":
        result = api.compare(args.run, split=args.split, out=args.out)
        print(result["table"] + f"page: {result['page']}")
    elif args.command == "card":
        print(f"model card: {api.card(args.run, split=args.split, out=args.out)}")
    elif args.command == "pack":
        print(f"packed: {api.pack(args.run, out=args.out, monai_bundle=args.monai_bundle)}")
    elif args.command == "models":
        for entry in api.models(args.task):
            print(f"{entry['name']:<24} {entry['task']:<15} {'/'.join(f'{d}D' for d in entry['dims']):<6} {entry['description']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_command(args)
    except MedsightError as exc:
        print(f"medsight: {exc}", file=sys.stderr)
        if int(os.environ.get("RANK", "0")) > 0:
            # bad input fails every DDP rank at once; a worker that leaves last lets torchrun see rank 0's failure
            # first, so the user reads rank 0's one line instead of the same line twice
            time.sleep(WORKER_FAILURE_DELAY_S)
        return 2
    except OSError as exc:  # an output that cannot be written (read-only folder, full disk) outside atomic_write
        print(f"medsight: {exc.filename}: {exc.strerror}" if exc.filename else f"medsight: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medsight: interrupted", file=sys.stderr)
        return 130
