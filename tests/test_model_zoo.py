"""Every model of the package trains for one epoch on every synthetic preset (tiny sizes) and then
predicts finite values of the contract's shape; `bench list` names every model."""
import math

import lightning as L
import pytest
import torch

from datamodules.registry import get_datamodule_class
from models.registry import MODELS, create_model

PRESETS = {  # tiny sizes: this checks the contract, not learning
    "synthetic": dict(n_train=96, n_val=32, n_test=32),
    "synthetic-mosei": dict(n_train=64, n_val=24, n_test=24),
    "synthetic-iemocap": dict(n_per_group=8),
    "synthetic-physio": dict(n_per_group=12),
}


def package_models() -> list[str]:
    names = MODELS.names()
    return [n for n in names if MODELS.get(n).__module__.startswith("models.")]


def test_the_zoo_is_complete():
    expected = {"early_fusion", "late_fusion", "prior", "unimodal", "tfn", "lmf", "mult", "misa", "self_mm",
                "edl_mlp", "helo", "ticalnet", "foalnet"}
    missing = expected - set(package_models())
    assert not missing, f"models not registered: {sorted(missing)}"


@pytest.mark.parametrize("data", sorted(PRESETS))
@pytest.mark.parametrize("model", package_models())
def test_model_trains_one_epoch_on_every_preset(model, data):
    L.seed_everything(0, verbose=False)
    dm = get_datamodule_class(data)(batch_size=16, **PRESETS[data])
    dm.setup("fit")
    net = create_model(model, dm.spec)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(net, datamodule=dm)
    metrics = trainer.callback_metrics
    assert math.isfinite(float(metrics["train/loss"])), f"{model} on {data}: train loss {metrics['train/loss']}"
    net.eval()
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        pred = net(batch).pred
    spec = dm.spec
    want = (len(batch),) if spec.task == "regression" else (len(batch), spec.target_dim)
    assert tuple(pred.shape) == want or (spec.task == "regression" and tuple(pred.shape) == (len(batch), 1))
    assert torch.isfinite(pred).all()
    assert net.num_parameters() > 0
