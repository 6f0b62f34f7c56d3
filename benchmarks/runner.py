"""The run loop: every (fold × seed) of a dataset's protocol for one model.

Each run trains with Lightning, keeps the checkpoint with the best **validation** primary metric
(early stopping on the same), tests that checkpoint once, and writes one record atomically. A run
whose record exists (same settings) is skipped unless ``force``; an interrupted sweep resumes.
"""
from __future__ import annotations

import gc
import inspect
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamodules.registry import get_datamodule_class
from datamodules.spec import UserInputError
from models.registry import get_model_class, model_hparam_defaults

from .throughput import PeakRSS
from .records import (SCHEMA, config_hash, git_commit, hardware, package_versions, read_record,
                      record_path, write_atomic)

TRAINER_KEYS = ("max_epochs", "batch_size", "patience")
DM_COMMON = ("num_workers", "sampler")


@dataclass
class RunSettings:
    model: str
    data: str
    data_dir: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    folds: list[str] | None = None
    max_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    logger: str = "csv"
    log_dir: str = "logs"
    accelerator: str = "auto"
    devices: str | int = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    results: str = "results"
    force: bool = False
    progress: bool = True
    echo: Any = print


def parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserInputError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


def _dm_params(dm_cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for klass in reversed(dm_cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or not klass.__module__.startswith("datamodules") and klass.__module__ != dm_cls.__module__:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return out


@dataclass
class Plan:
    """Settings resolved against the model's recipe and the datamodule's options."""
    model_cls: type
    dm_cls: type
    model_kwargs: dict[str, Any]
    dm_kwargs: dict[str, Any]
    trainer: dict[str, Any]
    variant: str
    config: dict[str, Any]
    cfg: str


def plan(s: RunSettings) -> Plan:
    model_cls = get_model_class(s.model)
    dm_cls = get_datamodule_class(s.data)
    mdefaults = model_hparam_defaults(model_cls)
    dparams = _dm_params(dm_cls)
    recipe = dict(getattr(model_cls, "RECIPE", {}))
    model_kwargs: dict[str, Any] = {}
    dm_kwargs: dict[str, Any] = {}
    trainer = {k: recipe.get(k) for k in TRAINER_KEYS}
    if "precision" in recipe or "precision" in s.overrides:  # only then, so other configs keep their hash
        trainer["precision"] = recipe.get("precision")
    # a recipe may also fix datamodule options every datamodule has (e.g. Foal-Net's balanced sampler)
    dm_kwargs.update({k: recipe[k] for k in DM_COMMON if k in recipe})
    overrides = dict(s.overrides)
    for key, val in (("max_epochs", s.max_epochs), ("batch_size", s.batch_size), ("lr", s.lr)):
        if val is not None:
            overrides[key] = val
    reserved = {"data_dir", "fold", "seed", "batch_size"}
    for key, val in overrides.items():
        if key in TRAINER_KEYS or key == "precision":
            trainer[key] = val
        elif key in DM_COMMON and key in dparams:
            dm_kwargs[key] = val
        elif key in mdefaults:
            model_kwargs[key] = val
        elif key in dparams and key not in reserved:
            dm_kwargs[key] = val
        else:
            valid = sorted(set(mdefaults) | set(TRAINER_KEYS) | {"precision"} | (set(dparams) - reserved))
            raise UserInputError(f"unknown setting {key!r} for model {s.model!r} on {s.data!r}; "
                                 f"valid keys: {', '.join(valid)}")
    variant = ",".join(f"{k}={overrides[k]}" for k in sorted(overrides)
                       if overrides[k] != recipe.get(k, mdefaults.get(k, object())))
    effective = {**mdefaults, **model_kwargs}
    config = {"model": s.model, "data": s.data, "model_hparams": effective, "data_options": dm_kwargs,
              "train": trainer}
    return Plan(model_cls, dm_cls, model_kwargs, dm_kwargs, trainer, variant, config, config_hash(config))


def _make_logger(s: RunSettings, name: str, version: str):
    if s.logger in ("none", "false", ""):
        return False
    if s.logger == "csv":
        from lightning.pytorch.loggers import CSVLogger
        return CSVLogger(save_dir=s.log_dir, name=name, version=version)
    if s.logger == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger
        try:
            return TensorBoardLogger(save_dir=s.log_dir, name=name, version=version)
        except ModuleNotFoundError as e:
            raise UserInputError("--logger tensorboard needs the tensorboard package: pip install tensorboard") from e
    if s.logger == "wandb":
        from lightning.pytorch.loggers import WandbLogger
        offline = not _wandb_credentials()
        if offline:
            s.echo("wandb: no credentials found (WANDB_API_KEY or `wandb login`); logging offline to "
                   f"{s.log_dir}/wandb — sync later with `wandb sync`")
        return WandbLogger(project=os.environ.get("WANDB_PROJECT", "affectbench"), name=f"{name}/{version}",
                           save_dir=s.log_dir, offline=offline)
    raise UserInputError(f"--logger must be csv, tensorboard, wandb or none, got {s.logger!r}")


def _wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") == "online":
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def _FromEpoch(start: int, base: type) -> type:
    """``base`` (ModelCheckpoint or EarlyStopping) that ignores validations before epoch ``start``
    (the model's :meth:`~models.base.MERModel.selection_start_epoch`)."""

    class FromEpoch(base):  # both callbacks act at validation end or at train-epoch end (Lightning decides)
        def on_validation_end(self, trainer, pl_module) -> None:
            if trainer.current_epoch >= start:
                super().on_validation_end(trainer, pl_module)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if trainer.current_epoch >= start:
                super().on_train_epoch_end(trainer, pl_module)

    return FromEpoch


def _precision(s: RunSettings, p: Plan) -> str:
    """A recipe's ``precision`` (Foal-Net: ``16-mixed``) applies on GPUs only; on the CPU runs stay in
    32-bit unless the user asked for a precision with ``--set precision=...``."""
    import torch

    asked = p.trainer.get("precision")
    if asked is None:
        return "32-true"
    on_gpu = torch.cuda.is_available() and str(s.accelerator) in ("auto", "gpu", "cuda")
    return str(asked) if on_gpu or "precision" in s.overrides else "32-true"


def run_one(s: RunSettings, p: Plan, fold: str, seed: int, path: Path) -> dict[str, Any] | None:
    """Train, select on validation, test, and write the record; returns it (None off rank zero)."""
    gc.collect()  # free the previous run's data before measuring this one
    with PeakRSS() as mem:
        return _train_and_test(s, p, fold, seed, path, mem)


def _train_and_test(s: RunSettings, p: Plan, fold: str, seed: int, path: Path, mem: PeakRSS) -> dict[str, Any] | None:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from models.registry import create_model

    from .throughput import Throughput

    L.seed_everything(seed, workers=True, verbose=False)
    batch_size = int(p.trainer["batch_size"])
    dm = p.dm_cls(data_dir=s.data_dir, fold=fold, seed=seed, batch_size=batch_size, **p.dm_kwargs)
    dm.setup("fit")
    for note in dm.notes():
        s.echo(f"  data: {note}")
    model = create_model(s.model, dm.spec, **p.model_kwargs)
    spec = dm.spec
    monitor = f"val/{spec.primary_metric}"
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = int(model.selection_start_epoch())
    if start >= int(p.trainer["max_epochs"]):
        raise UserInputError(f"{s.model}: checkpoints are eligible from epoch {start} (its final training stage) "
                             f"but max_epochs is {p.trainer['max_epochs']}; raise max_epochs or shorten the earlier stages")
    with tempfile.TemporaryDirectory(prefix="affectbench-ckpt-") as ckdir:
        ckpt = _FromEpoch(start, ModelCheckpoint)(dirpath=ckdir, filename="{epoch}", monitor=monitor, mode=spec.primary_direction,
                               save_top_k=1, save_weights_only=True)
        stop = _FromEpoch(start, EarlyStopping)(monitor=monitor, mode=spec.primary_direction, patience=int(p.trainer["patience"]))
        tput = Throughput()
        precision = _precision(s, p)
        trainer = L.Trainer(
            precision=precision,
            max_epochs=int(p.trainer["max_epochs"]), accelerator=s.accelerator, devices=s.devices,
            strategy=s.strategy, num_nodes=s.num_nodes, logger=_make_logger(s, f"{s.data}/{s.model}",
                                                                             f"{fold}_seed{seed}_{p.cfg}"),
            callbacks=[ckpt, stop, tput], enable_progress_bar=s.progress, enable_model_summary=False,
            num_sanity_val_steps=0, deterministic="warn", log_every_n_steps=10,
        )
        t0 = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        if trainer.interrupted:
            raise KeyboardInterrupt
        if not ckpt.best_model_path:
            raise RuntimeError(f"no checkpoint was selected: validation metric {monitor} was never finite")
        best_epoch = int(Path(ckpt.best_model_path).stem.split("=")[1])
        best_val = float(ckpt.best_model_score)
        trainer.test(model, datamodule=dm, ckpt_path=ckpt.best_model_path, verbose=False)
        main_results = model.test_results
        extra = {}
        for name, ds in dm.extra_test_sets().items():
            trainer.test(model, dataloaders=dm._loader(ds, train=False), verbose=False)
            extra[name] = model.test_results["test"]
        model.test_results = main_results
        wall = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return None
    info = dm.info()
    record = {
        "schema": SCHEMA,
        "model": s.model, "model_label": getattr(p.model_cls, "LABEL", "") or s.model,
        "reconstruction": bool(getattr(p.model_cls, "RECONSTRUCTION", False)), "variant": p.variant, "config_hash": p.cfg, "config": p.config,
        "data": s.data, "synthetic": bool(spec.synthetic), "data_fingerprint": dm.fingerprint(),
        "spec": {"name": spec.name, "task": spec.task, "classes": list(spec.class_names), "modalities": [m.name for m in spec.modalities],
                 "primary_metric": spec.primary_metric, "primary_direction": spec.primary_direction},
        "protocol": {"kind": spec.protocol.kind, "folds": list(spec.protocol.folds)},
        "fold": fold, "seed": seed,
        "split_sizes": {k: info[k]["n"] for k in ("train", "val", "test") if k in info},
        "split_groups": {k: info[k]["groups"] for k in ("train", "val", "test") if k in info},
        "selection": {"monitor": monitor, "mode": spec.primary_direction, "best_val": best_val,
                      "from_epoch": start},
        "best_epoch": best_epoch, "epochs_run": int(trainer.current_epoch),
        "test": model.test_results["test"], "strata": model.test_results["strata"], "test_extra": extra,
        "data_notes": dm.notes(),
        "limit": dm.limit(),
        "params": int(model.num_parameters()),
        "wall_time_s": round(wall, 3), "train_time_s": round(tput.train_time, 3),
        "train_samples_per_s": round(tput.samples_per_s, 1),
        "peak_memory_mb": {"process_rss": round(max(mem.peak_mb, mem.current_mb()), 1),
                           **({"gpu_allocated": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
                              if torch.cuda.is_available() else {})},
        "versions": package_versions(), "git_commit": git_commit(), "hardware": hardware(),
        "trainer": {"accelerator": s.accelerator, "precision": precision, "devices": str(s.devices), "strategy": s.strategy,
                    "num_nodes": s.num_nodes, "world_size": trainer.world_size},
        "created_unix": int(time.time()),
    }
    write_atomic(path, record)
    return record


def run_sweep(s: RunSettings) -> list[dict[str, Any]]:
    p = plan(s)
    probe = p.dm_cls(data_dir=s.data_dir, **p.dm_kwargs)  # validates options and data presence early
    data_fp = probe.fingerprint()
    folds_all = list(probe.spec.protocol.folds)
    folds = s.folds or folds_all
    bad = [f for f in folds if f not in folds_all]
    if bad:
        raise UserInputError(f"{s.data}: unknown fold(s) {', '.join(bad)}; folds are {', '.join(folds_all)}")
    if not s.seeds:
        raise UserInputError("--seeds needs at least one seed")
    jobs = [(f, seed) for f in folds for seed in s.seeds]
    label = s.model + (f" [{p.variant}]" if p.variant else "")
    s.echo(f"bench: {label} on {s.data}: {len(folds)} fold(s) x {len(s.seeds)} seed(s) = {len(jobs)} run(s); "
           f"records in {Path(s.results) / s.data / s.model} (config {p.cfg})")
    records: list[dict[str, Any]] = []
    for i, (fold, seed) in enumerate(jobs, 1):
        path = record_path(Path(s.results), s.data, s.model, fold, seed, p.cfg, data_fp)
        existing = read_record(path) if path.exists() else None
        if existing is not None and not s.force:
            s.echo(f"[{i}/{len(jobs)}] fold {fold} seed {seed}: done already, skipped ({path})")
            records.append(existing)
            continue
        s.echo(f"[{i}/{len(jobs)}] fold {fold} seed {seed}: training ...")
        try:
            rec = run_one(s, p, fold, seed, path)
        except (KeyboardInterrupt, SystemExit):
            s.echo(f"\nbench: interrupted during fold {fold} seed {seed}; no record was written for it. "
                   f"{i - 1} earlier run(s) are saved; run the same command again to resume.")
            raise
        if rec is None:
            continue
        primary = rec["spec"]["primary_metric"]
        s.echo(f"[{i}/{len(jobs)}] fold {fold} seed {seed}: test {primary}={rec['test'][primary]:.4f} "
               f"(best epoch {rec['best_epoch']}, {rec['wall_time_s']:.1f}s)")
        records.append(rec)
    if records:
        s.echo(summary_table(records))
    return records


def _fmt(values: list[float]) -> str:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "nan"
    if len(vals) == 1:
        return f"{vals[0]:.4f}"
    return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"


def summary_table(records: list[dict[str, Any]]) -> str:
    metrics = list(records[0]["test"].keys())
    primary = records[0]["spec"]["primary_metric"]
    metrics.sort(key=lambda m: (m != primary, m))
    head = ["fold", "seed"] + metrics
    rows = [[r["fold"], str(r["seed"])] + [f"{r['test'][m]:.4f}" for m in metrics] for r in records]
    rows.append(["all", f"n={len(records)}"] + [_fmt([r["test"][m] for r in records]) for m in metrics])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = ["", "Test results (mean ± sample std over runs; selection on validation only)", line(head),
           line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    limit = records[0].get("limit")
    if limit:
        out.append(f"Bayes limit of {limit['metric']}: {limit['value']:.4f} ± {limit['se']:.4f} (Monte-Carlo se)")
    return "\n".join(out)
