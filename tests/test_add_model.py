"""Adding a model from outside the package: ``bench run --plugin``, the ``affectbench.models`` entry
points, and the example of docs/adding_a_model.md (extracted from the guide and run as written).

Nothing here edits a package file. The model registry is a module-level global: the ``registry``
fixture snapshots it and restores it afterwards, and the plugin modules are dropped from
``sys.modules``, so no other test sees the models registered here.
"""
import math
import re
import sys
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.records import read_record
from models.registry import MODELS, get_model_class, list_models

HERE = Path(__file__).resolve().parent
GUIDE = HERE.parent / "docs" / "adding_a_model.md"
PLUGIN = "plugin_example_model"  # tests/plugin_example_model.py, imported as a top-level module
TINY = ["--seeds", "0", "--max-epochs", "1", "--logger", "none", "--no-progress",
        "--set", "n_train=64", "--set", "n_val=32", "--set", "n_test=32", "--set", "n_groups=3"]


@pytest.fixture
def registry(monkeypatch):
    list_models()  # discover the package's own models before the snapshot
    items, discovered = dict(MODELS._items), MODELS._discovered
    before = set(sys.modules)
    yield MODELS
    MODELS._items.clear()
    MODELS._items.update(items)
    MODELS._discovered = discovered
    for name in set(sys.modules) - before:
        if name in (PLUGIN, "guide_attn_pool"):
            del sys.modules[name]


def _records(results: Path, model: str) -> list[dict]:
    recs = [read_record(p) for p in sorted(results.rglob("*.json")) if p.parent.name == model]
    assert recs and all(r is not None for r in recs)
    return recs


def _finite(metrics: dict) -> bool:
    return bool(metrics) and all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


def test_the_test_plugins_are_not_part_of_the_package():
    names = list_models()
    assert "plugin_linear" not in names and "attn_pool" not in names
    assert not (HERE.parent / "models" / f"{PLUGIN}.py").exists()


def test_plugin_route_runs_through_bench_run_and_list(registry, monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(HERE))
    assert "plugin_linear" not in list_models()
    assert main(["run", "--model", "plugin_linear", "--data", "synthetic", "--results", str(tmp_path), *TINY]) == 2
    assert "unknown model 'plugin_linear'" in capsys.readouterr().err

    assert main(["run", "--plugin", PLUGIN, "--model", "plugin_linear", "--data", "synthetic",
                 "--results", str(tmp_path), "--set", "scale=0.5", *TINY]) == 0
    (rec,) = _records(tmp_path, "plugin_linear")
    assert rec["model"] == "plugin_linear" and rec["model_label"] == "PluginLinear"
    assert rec["config"]["model_hparams"]["scale"] == 0.5  # an __init__ keyword became a --set key
    assert rec["config"]["train"]["max_epochs"] == 1 and rec["epochs_run"] == 1
    assert rec["split_sizes"]["train"] == 64
    assert _finite(rec["test"]) and set(rec["test"]) >= {"wa", "ua"}
    capsys.readouterr()

    assert main(["list", "--plugin", PLUGIN]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+plugin_linear\s+Plugin linear: masked mean", out, re.M)
    assert main(["run", "--plugin", "no_such_plugin_module", "--model", "x", "--data", "synthetic"]) == 2
    assert "--plugin no_such_plugin_module: cannot import it" in capsys.readouterr().err


def test_entry_point_route_uses_the_real_discovery(registry, monkeypatch, tmp_path, capsys):
    """An installed distribution is a ``*.dist-info`` folder on sys.path; importlib.metadata finds its
    entry points there, so the Registry's own discovery code runs unpatched (nothing is installed)."""
    import importlib
    from importlib.metadata import entry_points

    dist = tmp_path / "site" / "affectbench_plugin_demo-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: affectbench-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[affectbench.models]\nplugin_linear = {PLUGIN}\n")
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    assert [ep.value for ep in entry_points(group="affectbench.models")] == [PLUGIN]
    assert PLUGIN not in sys.modules and "plugin_linear" not in list_models()

    MODELS._discovered = False  # as in a fresh process: the next lookup discovers again
    assert main(["list"]) == 0
    assert re.search(r"^\s+plugin_linear\s+Plugin linear", capsys.readouterr().out, re.M)
    assert get_model_class("plugin_linear").__module__ == PLUGIN


def _guide_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)


def test_the_guide_example_runs_as_written(registry, monkeypatch, tmp_path, capsys):
    blocks = _guide_blocks()
    assert len(blocks) == 2 and '@register_model("attn_pool")' in blocks[0]
    (tmp_path / "guide_attn_pool.py").write_text(blocks[0])  # the model file, verbatim
    monkeypatch.syspath_prepend(str(tmp_path))

    res = tmp_path / "res"
    assert main(["run", "--plugin", "guide_attn_pool", "--model", "attn_pool", "--data", "synthetic",
                 "--results", str(res), "--set", "temperature=0.5", *TINY]) == 0
    (rec,) = _records(res, "attn_pool")
    assert rec["model_label"] == "AttnPool (example)" and rec["reconstruction"] is False
    assert rec["config"]["model_hparams"]["temperature"] == 0.5 and _finite(rec["test"])
    assert main(["run", "--plugin", "guide_attn_pool", "--model", "attn_pool", "--data", "synthetic",
                 "--results", str(res), "--set", "temperature=0", *TINY]) == 2
    assert "temperature must be > 0" in capsys.readouterr().err

    exec(compile(blocks[1], str(GUIDE), "exec"), {})  # the guide's test snippet (physio, distribution)

    # the contract on the other tasks: regression gives a scalar per sample, padding is ignored
    import torch

    from datamodules.registry import create_datamodule
    from models.registry import create_model

    dm = create_datamodule("synthetic-mosei", n_train=16, n_val=8, n_test=8, n_groups=3, batch_size=8)
    dm.setup("fit")
    batch = next(iter(dm.train_eval_dataloader()))
    model = create_model("attn_pool", dm.spec).eval()
    pred = model(batch).pred
    assert pred.shape == (8,)
    for name, mask in batch.mask.items():
        batch.x[name][~mask] = 123.0
    assert torch.allclose(model(batch).pred, pred, atol=1e-5)
