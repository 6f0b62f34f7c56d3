"""``bench``: run benchmarks, render the leaderboard, list models and datasets, describe a dataset."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from datamodules.spec import UserInputError

DATA_ENV = "AFFECTBENCH_DATA"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (a model or datamodule defined outside the package); repeatable")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bench", description="affectbench: multimodal emotion recognition benchmarks")
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train and test a model over a dataset's protocol (folds x seeds)")
    r.add_argument("--model", required=True, help="model name (see `bench list`)")
    r.add_argument("--data", required=True, help="dataset name (see `bench list`)")
    r.add_argument("--data-dir", default=None, help=f"dataset root (default: ${DATA_ENV}/<data>)")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    r.add_argument("--folds", nargs="+", default=None, help="fold names (default: every fold of the protocol)")
    r.add_argument("--max-epochs", type=int, default=None, help="override the model's recipe")
    r.add_argument("--batch-size", type=int, default=None, help="override the model's recipe")
    r.add_argument("--lr", type=float, default=None, help="override the model's recipe")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any model, training (max_epochs, batch_size, patience) or datamodule setting; repeatable")
    r.add_argument("--logger", default="csv", choices=["csv", "tensorboard", "wandb", "none"],
                   help="training-curve logger (default csv; wandb runs offline without credentials)")
    r.add_argument("--log-dir", default="logs", help="where loggers write (default: logs/)")
    r.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu, ...")
    r.add_argument("--devices", default="auto", help="Lightning devices: auto, a count, or a list")
    r.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp for several GPUs or nodes")
    r.add_argument("--num-nodes", type=int, default=1)
    r.add_argument("--results", default="results", help="result records folder (default: results/)")
    r.add_argument("--force", action="store_true", help="re-run runs whose record already exists")
    r.add_argument("--no-progress", action="store_true", help="hide Lightning's per-epoch progress bar")
    r.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice). Use 1 when several runs share a few cores: "
                        "oversubscribed threads can make CPU training many times slower")
    _add_common(r)

    lb = sub.add_parser("leaderboard", help="render leaderboard.md from result records")
    lb.add_argument("--results", default="results")
    lb.add_argument("--out", default="leaderboard.md")
    _add_common(lb)

    ls = sub.add_parser("list", help="list models and datasets (and whether dataset files are present)")
    ls.add_argument("--data-dir", default=None)
    _add_common(ls)

    inf = sub.add_parser("info", help="describe a dataset: spec, sizes, class counts, protocol, limit")
    inf.add_argument("--data", required=True)
    inf.add_argument("--data-dir", default=None)
    inf.add_argument("--fold", default=None, help="fold whose splits to count (default: the first)")
    inf.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="datamodule setting")
    _add_common(inf)
    ex = sub.add_parser("extract", help="compute a feature folder (with provenance) from a dataset release "
                                        "with a transformers encoder; resumable")
    ex.add_argument("--data", default="iemocap", choices=["iemocap"], help="dataset release (default iemocap)")
    ex.add_argument("--data-dir", default=None, help=f"release folder (default: ${DATA_ENV}/<data>)")
    ex.add_argument("--modality", required=True, choices=["audio", "text", "video"])
    ex.add_argument("--model", required=True, help="transformers model: hub name or local folder")
    ex.add_argument("--name", required=True, help="feature folder name (what --set audio_feature=... selects)")
    ex.add_argument("--layer", default="last", help="hidden-state index, or 'last' (default)")
    ex.add_argument("--pooling", default="none", choices=["none", "mean"],
                    help="none: one vector per frame/token (T, D); mean: one per utterance (D,)")
    ex.add_argument("--max-seconds", type=float, default=None, help="audio: cut each wav to this length")
    ex.add_argument("--max-tokens", type=int, default=512, help="text: truncate transcripts (default 512)")
    ex.add_argument("--fps", type=lambda v: v if v == "native" else float(v), default=2.0,
                    help="video: frames sampled per second (default 2), or 'native' (every decoded frame)")
    ex.add_argument("--crop", default="none", choices=["none", "left", "right"], help="video: half of the frame")
    ex.add_argument("--features-root", default=None, help="default: <data-dir>/features")
    ex.add_argument("--device", default="cpu")
    ex.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ex.add_argument("--limit", type=int, default=None, help="only the first N utterances (a quick check)")
    ex.add_argument("--no-progress", action="store_true")
    _add_common(ex)

    fl = sub.add_parser("foalnet-lists", help="write Foal-Net's per-session list files (sessionK_{train,valid}.scp) "
                                            "from an IEMOCAP release")
    fl.add_argument("--data-dir", default=None, help=f"IEMOCAP release (default: ${DATA_ENV}/iemocap)")
    fl.add_argument("--out", required=True, help="folder for the .scp files")
    fl.add_argument("--root", default=None,
                    help="release path as written in the lists (default: each wav's absolute path)")
    _add_common(fl)
    return ap


def _data_dir(arg: str | None, data: str) -> str | None:
    if arg:
        return arg
    root = os.environ.get(DATA_ENV)
    return str(Path(root) / data) if root else None


def _load_plugins(mods: list[str]) -> None:
    for mod in mods:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise UserInputError(f"--plugin {mod}: cannot import it ({e})") from e


def cmd_run(a: argparse.Namespace) -> int:
    from .runner import RunSettings, parse_sets, run_sweep

    devices: str | int = int(a.devices) if a.devices.isdigit() else a.devices
    s = RunSettings(model=a.model, data=a.data, data_dir=_data_dir(a.data_dir, a.data), seeds=a.seeds,
                    folds=a.folds, max_epochs=a.max_epochs, batch_size=a.batch_size, lr=a.lr,
                    overrides=parse_sets(a.set), logger=a.logger, log_dir=a.log_dir, accelerator=a.accelerator,
                    devices=devices, strategy=a.strategy, num_nodes=a.num_nodes, results=a.results, force=a.force,
                    progress=not a.no_progress)
    if a.threads is not None:
        if a.threads < 1:
            raise UserInputError(f"--threads must be at least 1, got {a.threads}")
        import torch
        torch.set_num_threads(a.threads)  # stored in every record as hardware.torch_threads
    run_sweep(s)
    return 0


def cmd_leaderboard(a: argparse.Namespace) -> int:
    from .leaderboard import write_leaderboard

    results = Path(a.results)
    if not results.is_dir():
        raise UserInputError(f"results folder {results} does not exist (run `bench run` first, or pass --results)")
    text = write_leaderboard(results, Path(a.out))
    print(f"bench: wrote {a.out} ({text.count(chr(10))} lines) from {results}")
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    from datamodules.registry import get_datamodule_class, list_datamodules
    from models.registry import get_model_class, list_models

    print("Models:")
    for name in list_models():
        cls = get_model_class(name)
        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        print(f"  {name:<18} {doc[0] if doc else ''}")
    print("Datasets:")
    for name in list_datamodules():
        cls = get_datamodule_class(name)
        if cls.synthetic:
            state = "synthetic (always available)"
        else:
            state = "files present" if cls.is_available(_data_dir(a.data_dir, name)) else "files missing"
        print(f"  {name:<18} {state}")
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    from datamodules.registry import get_datamodule_class

    from .runner import parse_sets

    cls = get_datamodule_class(a.data)
    try:
        dm = cls(data_dir=_data_dir(a.data_dir, a.data), fold=a.fold, **parse_sets(a.set))
    except TypeError as e:
        raise UserInputError(f"{a.data}: {e}") from e
    dm.setup("fit")
    info = dm.info()
    spec = info["spec"]
    print(f"{spec.name}: {spec.task}" + (" (synthetic)" if spec.synthetic else ""))
    print(f"  classes ({spec.num_classes}): {', '.join(spec.class_names)}"
          + (f"  [discrete view of scores in {spec.score_range}]" if spec.task == "regression" else ""))
    print("  modalities:")
    for m in spec.modalities:
        shape = f"(T<={m.seq_len}, {m.dim})" if m.is_sequence else f"({m.dim},)"
        print(f"    {m.name:<8} {shape:<16} group={m.group}")
    print(f"  protocol: {spec.protocol.kind}, folds: {', '.join(spec.protocol.folds)}")
    if spec.protocol.description:
        print(f"    {spec.protocol.description}")
    print(f"  primary metric: {spec.primary_metric} ({'higher' if spec.primary_direction == 'max' else 'lower'} is better)")
    print(f"  data fingerprint: {dm.fingerprint()}")
    for split in ("train", "val", "test"):
        if split in info:
            d = info[split]
            counts = ", ".join(f"{k} {v}" for k, v in d["classes"].items())
            extra = f"; conflicting {d['conflicting']}" if "conflicting" in d else ""
            groups = d["groups"]
            gtxt = ", ".join(groups) if len(groups) <= 8 else f"{len(groups)} groups"
            print(f"  {split:<5} (fold {info['fold']}): n={d['n']}; {counts}{extra}; groups: {gtxt}")
    for key, value in info.items():
        if key not in ("spec", "fold", "train", "val", "test"):
            print(f"  {key}: {value}")
    for note in dm.notes():
        print(f"  note: {note}")
    limit = dm.limit()
    if limit:
        print(f"  Bayes limit of {limit['metric']}: {limit['value']:.4f} ± {limit['se']:.4f} "
              f"({limit.get('method', '')}, n={limit.get('n_mc')})")
    return 0


def cmd_extract(a: argparse.Namespace) -> int:
    from .extract import ExtractSettings, run_extract

    s = ExtractSettings(data_dir=_data_dir(a.data_dir, a.data), modality=a.modality, model=a.model, name=a.name,
                        layer=a.layer, pooling=a.pooling, max_seconds=a.max_seconds, max_tokens=a.max_tokens,
                        fps=a.fps, crop=a.crop, features_root=a.features_root, device=a.device,
                        sessions=tuple(a.sessions), limit=a.limit, progress=not a.no_progress)
    n = run_extract(s)
    print(f"bench: {n['written']} written, {n['skipped']} skipped (done already), {n['total']} utterances in "
          f"{n['folder']} (provenance {n['provenance_id']})")
    return 0


def cmd_foalnet_lists(a: argparse.Namespace) -> int:
    from datamodules.iemocap import find_release, parse_release, write_foalnet_lists

    files = write_foalnet_lists(parse_release(find_release(_data_dir(a.data_dir, "iemocap"))), a.out, a.root)
    print(f"bench: wrote {len(files)} list files to {a.out} (4-way labels, exc as hap; Foal-Net's 'valid' list "
          "is its test session)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _load_plugins(args.plugin)
        commands = {"run": cmd_run, "leaderboard": cmd_leaderboard, "list": cmd_list, "info": cmd_info,
                    "extract": cmd_extract, "foalnet-lists": cmd_foalnet_lists}
        return commands[args.command](args)
    except UserInputError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
