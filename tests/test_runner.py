"""The runner and CLI end to end on the small synthetic preset: records, skip/resume, interruption,
leaderboard determinism, and one-line errors."""
import json
import signal

import pytest
import torch

from benchmarks.cli import main
from benchmarks.leaderboard import write_leaderboard
from benchmarks.records import read_record
from benchmarks.runner import RunSettings, plan, run_sweep
from models.early_fusion import EarlyFusion
from models.registry import register_model

FAST = ["--max-epochs", "3", "--no-progress", "--logger", "none"]


def bench(*args):
    return main(list(args))


def records_in(root):
    return sorted(p for p in root.rglob("*.json"))


def test_run_writes_records_skips_on_rerun_and_leaderboard_is_deterministic(tmp_path, capsys):
    res = tmp_path / "results"
    assert bench("run", "--model", "early_fusion", "--data", "synthetic", "--seeds", "0", "1",
                 "--results", str(res), *FAST) == 0
    files = records_in(res)
    assert len(files) == 2
    rec = read_record(files[0])
    for key in ("model", "data", "data_fingerprint", "protocol", "fold", "seed", "config", "test", "best_epoch",
                "wall_time_s", "train_samples_per_s", "params", "peak_memory_mb", "versions", "git_commit",
                "hardware", "synthetic", "limit", "strata"):
        assert key in rec, key
    assert rec["synthetic"] is True and rec["selection"]["monitor"] == "val/wa"
    assert 0 <= rec["best_epoch"] < 3 and rec["params"] > 0
    assert set(rec["strata"]) == {"conflict", "consistent"}
    assert rec["strata"]["conflict"]["n"] + rec["strata"]["consistent"]["n"] == rec["split_sizes"]["test"]
    out = capsys.readouterr().out
    assert "Test results" in out and "wa" in out
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert bench("run", "--model", "early_fusion", "--data", "synthetic", "--seeds", "0", "1",
                 "--results", str(res), *FAST) == 0
    assert "skipped" in capsys.readouterr().out
    assert [f.stat().st_mtime_ns for f in records_in(res)] == mtimes
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    assert bench("leaderboard", "--results", str(res), "--out", str(a)) == 0
    assert bench("leaderboard", "--results", str(res), "--out", str(b)) == 0
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert "### synthetic" in text and "`early_fusion`" in text and "Bayes limit" in text
    assert "## Real datasets" in text


def test_changed_settings_get_their_own_records_and_row(tmp_path):
    res = tmp_path / "r"
    for extra in ([], ["--set", "modalities=vision"]):
        assert bench("run", "--model", "early_fusion", "--data", "synthetic", "--seeds", "0", "--results", str(res),
                     *FAST, *extra) == 0
    files = records_in(res)
    assert len(files) == 2
    variants = sorted(read_record(f)["variant"] for f in files)
    assert variants == ["max_epochs=3", "max_epochs=3,modalities=vision"]
    text = write_leaderboard(res, tmp_path / "lb.md")
    assert "`early_fusion` [max_epochs=3,modalities=vision]" in text


@pytest.mark.parametrize("args, message", [
    (["run", "--model", "nope", "--data", "synthetic"], "unknown model 'nope'"),
    (["run", "--model", "early_fusion", "--data", "synthetc"], "Did you mean synthetic"),
    (["run", "--model", "early_fusion", "--data", "synthetic", "--set", "hiddn=3"], "unknown setting 'hiddn'"),
    (["run", "--model", "early_fusion", "--data", "synthetic", "--set", "hidden"], "expects key=value"),
    (["run", "--model", "early_fusion", "--data", "synthetic", "--folds", "Ses09"], "unknown fold"),
    (["leaderboard", "--results", "/nonexistent/results"], "does not exist"),
    (["run", "--model", "early_fusion", "--data", "synthetic", "--plugin", "no_such_module_xyz"], "cannot import"),
    (["run", "--model", "early_fusion", "--data", "synthetic", "--threads", "0"], "--threads must be at least 1"),
])
def test_bad_input_is_one_clear_line(args, message, capsys, tmp_path):
    assert bench(*args, *([] if args[0] != "run" else ["--results", str(tmp_path)])) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_set_routes_to_model_trainer_and_datamodule():
    p = plan(RunSettings(model="early_fusion", data="synthetic",
                         overrides={"hidden": 16, "patience": 2, "conflict_rate": 0.0}, max_epochs=4))
    assert p.model_kwargs == {"hidden": 16}
    assert p.trainer["patience"] == 2 and p.trainer["max_epochs"] == 4
    assert p.dm_kwargs == {"conflict_rate": 0.0}
    assert p.variant == "conflict_rate=0.0,hidden=16,max_epochs=4,patience=2"
    base = plan(RunSettings(model="early_fusion", data="synthetic"))
    assert base.variant == "" and base.cfg != p.cfg


_INTERRUPT = {"on": False}


@register_model("_interrupting")
class Interrupting(EarlyFusion):
    """Early fusion that simulates Ctrl-C in its second epoch while _INTERRUPT['on'] is set."""

    def training_step(self, batch, batch_idx):
        if _INTERRUPT["on"] and self.current_epoch == 1:
            raise KeyboardInterrupt
        return super().training_step(batch, batch_idx)


def test_interrupted_run_leaves_no_record_and_resumes(tmp_path, capsys):
    res = tmp_path / "r"
    s = RunSettings(model="_interrupting", data="synthetic", seeds=[0, 1], max_epochs=3, results=str(res),
                    logger="none", progress=False)
    old = signal.getsignal(signal.SIGINT)
    _INTERRUPT["on"] = True
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown exits after Ctrl-C
            run_sweep(s)
    finally:
        signal.signal(signal.SIGINT, old)  # Lightning ignores further Ctrl-C during shutdown
        _INTERRUPT["on"] = False
    assert records_in(res) == [] and not list(res.rglob(".tmp-*"))
    assert "no record was written" in capsys.readouterr().out
    run_sweep(s)
    assert len(records_in(res)) == 2


def test_record_is_valid_json_with_finite_test_metrics(tmp_path):
    recs = run_sweep(RunSettings(model="late_fusion", data="synthetic", seeds=[3], max_epochs=2,
                                 results=str(tmp_path), logger="none", progress=False))
    rec = json.loads(records_in(tmp_path)[0].read_text())
    assert rec == json.loads(json.dumps(recs[0]))
    assert all(torch.isfinite(torch.tensor(v)) for v in rec["test"].values())


def test_list_and_info(capsys):
    assert bench("list") == 0
    out = capsys.readouterr().out
    for name in ("early_fusion", "late_fusion", "prior", "synthetic", "synthetic-mosei", "synthetic-iemocap",
                 "synthetic-physio"):
        assert name in out
    assert "synthetic (always available)" in out
    assert bench("info", "--data", "synthetic-iemocap", "--fold", "Ses02") == 0
    out = capsys.readouterr().out
    assert "leave_one_out" in out and "Ses01, Ses02, Ses03, Ses04, Ses05" in out
    assert "test  (fold Ses02)" in out and "Bayes limit of ua" in out and "hap " in out
    assert bench("info", "--data", "synthetic", "--set", "conflict_rate=0.0") == 0
    assert "conflicting 0" in capsys.readouterr().out


def test_leaderboard_never_averages_different_settings(tmp_path):
    res = tmp_path / "r"
    for extra in (["--max-epochs", "2"], ["--max-epochs", "3"]):
        assert bench("run", "--model", "prior", "--data", "synthetic", "--seeds", "0", "--results", str(res),
                     "--no-progress", "--logger", "none", *extra) == 0
    text = write_leaderboard(res, tmp_path / "lb.md")
    assert "`prior` [max_epochs=2]" in text and "`prior` [max_epochs=3]" in text
    recs = [read_record(f) for f in records_in(res)]
    recs[1]["variant"] = recs[0]["variant"] = "same-label"  # as if two commits had different defaults
    from benchmarks.leaderboard import render
    text = render(recs)
    assert text.count("[same-label] (config ") == 2


@register_model("_recipe_probe")
class RecipeProbe(EarlyFusion):
    """Early fusion whose recipe fixes a datamodule option and a precision, flagged as a reconstruction."""
    RECIPE = {**EarlyFusion.RECIPE, "sampler": "balanced", "precision": "bf16-mixed"}
    LABEL = "Probe"
    RECONSTRUCTION = True


def test_recipe_routes_sampler_to_datamodule_and_precision_to_gpu_runs_only():
    from benchmarks.runner import _precision

    s = RunSettings(model="_recipe_probe", data="synthetic", accelerator="cpu")
    p = plan(s)
    assert p.dm_kwargs == {"sampler": "balanced"} and p.variant == ""
    assert p.trainer["precision"] == "bf16-mixed"
    assert _precision(s, p) == "32-true"  # a recipe's mixed precision is for GPUs
    s2 = RunSettings(model="_recipe_probe", data="synthetic", accelerator="cpu",
                     overrides={"sampler": "random", "precision": "bf16-mixed"})
    p2 = plan(s2)
    assert p2.dm_kwargs == {"sampler": "random"} and p2.variant == "sampler=random"
    assert _precision(s2, p2) == "bf16-mixed"  # asked for explicitly
    assert "precision" not in plan(RunSettings(model="early_fusion", data="synthetic")).trainer


def test_reconstruction_flag_reaches_record_and_leaderboard(tmp_path):
    res = tmp_path / "r"
    threads = torch.get_num_threads()
    assert bench("run", "--model", "_recipe_probe", "--data", "synthetic", "--seeds", "0", "--results", str(res),
                 "--max-epochs", "1", "--no-progress", "--logger", "none", "--threads", "1",
                 "--set", "n_train=200", "--set", "n_val=50", "--set", "n_test=50") == 0
    torch.set_num_threads(threads)
    rec = read_record(records_in(res)[0])
    assert rec["hardware"]["torch_threads"] == 1
    assert rec["reconstruction"] is True and rec["model_label"] == "Probe"
    assert rec["trainer"]["precision"] in ("32-true", "bf16-mixed")
    text = write_leaderboard(res, tmp_path / "lb.md")
    row = next(line for line in text.splitlines() if "`_recipe_probe`" in line)
    assert row.split(" | ")[1].endswith("] — Probe (reconstruction)")


@register_model("_late_start")
class LateStart(EarlyFusion):
    """Early fusion that declares its checkpoints eligible from epoch 2 only (like TiCAL's stage 3) and
    predicts a constant from epoch 2 on, so its validation score is worst exactly where selection starts."""

    def selection_start_epoch(self) -> int:
        return 2

    def forward(self, batch):
        out = super().forward(batch)
        if self.current_epoch >= 2:
            out.pred = out.pred * 0.0 + torch.arange(out.pred.shape[1], dtype=out.pred.dtype)
        return out


def test_checkpoints_before_the_models_selection_start_are_never_selected(tmp_path):
    small = {"n_train": 200, "n_val": 60, "n_test": 60, "patience": 1}
    recs = run_sweep(RunSettings(model="_late_start", data="synthetic", seeds=[0], max_epochs=4, overrides=small,
                                 results=str(tmp_path), logger="none", progress=False, echo=lambda *a: None))
    assert recs[0]["best_epoch"] >= 2 and recs[0]["selection"]["from_epoch"] == 2
    assert recs[0]["epochs_run"] >= 3  # early stopping did not count the (better) epochs 0 and 1 either
    with pytest.raises(Exception, match="eligible from epoch 2"):
        run_sweep(RunSettings(model="_late_start", data="synthetic", seeds=[1], max_epochs=2, overrides=small,
                              results=str(tmp_path), logger="none", progress=False, echo=lambda *a: None))
