"""Foal-Net: WavLM waveform path, AVEL, MEM negatives, temperature modes, every synthetic preset."""
import math

import pytest
import torch

from datamodules.batch import Batch
from datamodules.registry import create_datamodule
from datamodules.spec import DatasetSpec, ModalitySpec, Protocol, UserInputError
from models.foalnet import FoalNet, avel_loss, sample_negatives
from models.registry import create_model

from .fixtures_encoders import conv_frames, tiny_wavlm
from .training import train_epoch

SMALL = dict(audio_dim=16, proj_dim=8, heads=2)  # fast widths for the tests
SIZES = {"synthetic": dict(n_train=48, n_val=16, n_test=16), "synthetic-mosei": dict(n_train=48, n_val=16, n_test=16),
         "synthetic-iemocap": dict(n_per_group=16), "synthetic-physio": dict(n_per_group=6)}


def batch_of(dm, n=16):
    return next(iter(dm._loader(dm.train_set, train=False)))


@pytest.fixture(scope="module")
def wavlm_dir(tmp_path_factory):
    return tiny_wavlm(tmp_path_factory.mktemp("wavlm") / "tiny")


def wave_spec(samples=2000, task="classification"):
    return DatasetSpec(name="wave", task=task, class_names=("a", "b", "c"),
                       modalities=(ModalitySpec("audio", 1, samples, "audio"), ModalitySpec("video", 6, 5, "visual")),
                       protocol=Protocol("holdout", ("x",)), primary_metric="ua", primary_direction="max")


def wave_batch(lengths, samples=2000, labels=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    B = len(lengths)
    x = torch.randn(B, samples, 1, generator=g) * 0.1
    amask = torch.arange(samples)[None] < torch.tensor(lengths)[:, None]
    x = x * amask.unsqueeze(-1)
    vlen = torch.tensor([5, 3, 4, 2, 5, 1][:B])
    vmask = torch.arange(5)[None] < vlen[:, None]
    v = torch.randn(B, 5, 6, generator=g) * vmask.unsqueeze(-1)
    lab = torch.tensor(labels if labels is not None else [i % 3 for i in range(B)])
    return Batch(x={"audio": x, "video": v}, mask={"audio": amask, "video": vmask}, y=lab, label=lab,
                 ids=[str(i) for i in range(B)], groups=["g"] * B)


def test_wavlm_waveform_forward_backward(wavlm_dir):
    spec = wave_spec()
    model = FoalNet(spec, wavlm=str(wavlm_dir), **SMALL)
    assert model.use_wavlm and model.d_a == 16
    conv = list(model.wavlm.feature_extractor.parameters())
    assert conv and not any(p.requires_grad for p in conv)  # CNN feature encoder frozen
    model.train()
    lengths = [2000, 1500, 900, 1200]
    batch = wave_batch(lengths)
    out = model(batch)
    assert out.pred.shape == (4, 3) and set(out.aux_losses) == {"avel", "mem"}
    (model.task_loss(out.pred, batch.y) + sum(out.aux_losses.values())).backward()
    assert all(p.grad is None for p in conv)
    enc = [p for n, p in model.wavlm.named_parameters() if n.startswith("encoder.layers")]
    assert enc and all(p.grad is not None for p in enc) and any(float(p.grad.abs().sum()) > 0 for p in enc)
    # the frame mask follows WavLM's length formula
    _, mask = model.encode_audio(batch)
    assert mask.sum(1).tolist() == [conv_frames(n) for n in lengths]
    assert mask.shape[1] == conv_frames(2000)


def test_wavlm_bad_paths(tmp_path):
    spec = wave_spec()
    with pytest.raises(UserInputError, match="no such folder"):
        FoalNet(spec, wavlm=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no config.json"):
        FoalNet(spec, wavlm=str(tmp_path / "empty"))
    with pytest.raises(UserInputError, match="audio_encoder=wavlm"):
        FoalNet(create_datamodule("synthetic").spec, audio_encoder="wavlm")
    with pytest.raises(UserInputError, match="temperature_mode"):
        FoalNet(spec, temperature_mode="exp")
    # linear mode on a waveform: no WavLM is loaded
    assert FoalNet(spec, audio_encoder="linear", **SMALL).wavlm is None


def test_sample_negatives_always_carry_a_different_label():
    g = torch.Generator().manual_seed(0)
    skipped_seen = 0
    for trial in range(300):
        B = int(torch.randint(2, 17, (1,), generator=g))
        k = int(torch.randint(1, 5, (1,), generator=g))
        labels = torch.randint(0, k, (B,), generator=g)
        if trial % 10 == 0:
            labels = torch.full((B,), 2)  # one label only: every row skipped
        sim = torch.randn(B, B, generator=g) * 5
        rows, neg = sample_negatives(sim, labels, g)
        assert (labels[rows] != labels[neg]).all()
        has_other = torch.tensor([(labels != labels[i]).any() for i in range(B)])
        assert rows.tolist() == has_other.nonzero().flatten().tolist()
        skipped_seen += B - rows.numel()
    assert skipped_seen > 0


def test_sample_negatives_prefer_similar_samples():
    labels = torch.tensor([0, 1, 1, 2])
    sim = torch.tensor([[0.0, 10.0, -10.0, -10.0]] * 4)
    rows, neg = sample_negatives(sim, labels, torch.Generator().manual_seed(0))
    assert neg[0] == 1  # softmax mass almost all on the most similar different-label sample


def test_model_mem_skips_rows_without_candidates():
    dm = create_datamodule("synthetic", batch_size=8, **SIZES["synthetic"])
    dm.setup("fit")
    model = create_model("foalnet", dm.spec, **SMALL).train()
    batch = batch_of(dm)
    for labels, expect_skipped in (([1] * 8, 8), ([0] + [1] * 7, 0), ([0, 0, 1, 1, 1, 1, 1, 1], 0)):
        b = Batch(x=batch.x, mask=batch.mask, y=batch.y[:8], label=torch.tensor(labels), ids=batch.ids[:8],
                  groups=batch.groups[:8])
        b.x = {k: v[:8] for k, v in batch.x.items()}
        b.mask = {k: v[:8] for k, v in batch.mask.items()}
        out = model(b)
        assert model.last_mem_skipped == expect_skipped
        rows_a, neg_v, rows_v, neg_a = model.last_mem_pairs
        lab = torch.tensor(labels)
        assert (lab[rows_a] != lab[neg_v]).all() and (lab[rows_v] != lab[neg_a]).all()
        if expect_skipped == 8:
            assert float(out.aux_losses["mem"]) == 0.0
        else:
            assert float(out.aux_losses["mem"]) > 0.0


def test_avel_loss_by_hand():
    sim = torch.tensor([[1.0, 0.0, 2.0], [0.5, 0.5, 0.0], [0.0, 1.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    logp = torch.log_softmax(sim, dim=1)
    summed = -(logp[0, 0] + logp[0, 2] + logp[1, 1] + logp[2, 0] + logp[2, 2]) / 3
    averaged = -((logp[0, 0] + logp[0, 2]) / 2 + logp[1, 1] + (logp[2, 0] + logp[2, 2]) / 2) / 3
    assert torch.isclose(avel_loss(sim, labels), summed)
    assert torch.isclose(avel_loss(sim, labels, normalise_positives=True), averaged)


def test_temperature_modes():
    spec = create_datamodule("synthetic").spec
    clip = FoalNet(spec, **SMALL)
    div = FoalNet(spec, temperature_mode="divide", **SMALL)
    sim = torch.tensor([[0.5, -0.2], [0.1, 1.0]])
    assert torch.allclose(clip.scale(sim), sim / 0.07, rtol=1e-5)  # exp(ln(1/0.07)) = 1/0.07
    assert torch.allclose(div.scale(sim), sim / math.log(1 / 0.07))  # the official code: divide by 2.6593
    with torch.no_grad():
        clip.temperature.fill_(10.0)
    assert torch.allclose(clip.scale(sim), sim * 100.0, rtol=1e-5)  # clamped like CLIP
    # the learnable temperature receives a gradient in both modes
    for m in (clip, div):
        m.scale(sim).sum().backward()
        assert m.temperature.grad is not None
    assert clip.temperature.grad == 0  # ... except while clamped
    # sharper targets: the contrastive loss differs between the modes for the same similarities
    labels = torch.tensor([0, 1])
    assert float(avel_loss(FoalNet(spec, **SMALL).scale(sim), labels)) < float(avel_loss(div.scale(sim), labels))


def test_classification_path_needs_no_labels():
    dm = create_datamodule("synthetic", batch_size=8, **SIZES["synthetic"])
    dm.setup("fit")
    model = create_model("foalnet", dm.spec, **SMALL).eval()
    batch = batch_of(dm)
    out = model(batch)
    assert out.aux_losses == {}
    batch.label = None
    model.train()
    out2 = model(batch)
    assert out2.aux_losses == {} and out2.pred.shape == (len(batch.y), 4)


@pytest.mark.parametrize("preset,streams", [
    ("synthetic", ("audio", "vision")), ("synthetic-mosei", ("audio", "vision")),
    ("synthetic-iemocap", ("audio", "video")), ("synthetic-physio", ("eeg", "video"))])
def test_runs_on_each_preset(preset, streams):
    dm = create_datamodule(preset, batch_size=8, **SIZES[preset])
    dm.setup("fit")
    model = create_model("foalnet", dm.spec, **SMALL).train()
    assert (model.audio_mod.name, model.video_mod.name) == streams and model.extra_mods == ()
    batch = batch_of(dm)
    out = model(batch)
    expect = (len(batch.y),) if dm.spec.task == "regression" else (len(batch.y), dm.spec.target_dim)
    assert out.pred.shape == expect
    loss = model.task_loss(out.pred, batch.y) + sum(out.aux_losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert model.a2v.layers[0].q.weight.grad is not None


def test_extra_modalities_fuse_with_audio():
    dm = create_datamodule("synthetic", batch_size=8, **SIZES["synthetic"])
    dm.setup("fit")
    batch = batch_of(dm)
    plain = create_model("foalnet", dm.spec, **SMALL)
    fused = create_model("foalnet", dm.spec, extra_modalities="fuse_with_audio", **SMALL)
    assert [m.name for m in fused.extra_mods] == ["text"]
    a0, m0 = plain.encode_audio(batch)
    a1, m1 = fused.encode_audio(batch)
    assert a1.shape[1] == a0.shape[1] + batch.x["text"].shape[1]
    assert torch.equal(m1[:, a0.shape[1]:], batch.mask["text"])
    with pytest.raises(UserInputError, match="two modalities"):
        create_model("foalnet", dm.spec, modalities="audio")


def test_avel_loss_falls_on_aligned_data():
    torch.manual_seed(0)
    dm = create_datamodule("synthetic-iemocap", batch_size=16, sampler="balanced", n_per_group=24)
    dm.setup("fit")
    model = create_model("foalnet", dm.spec, audio_dim=32, proj_dim=16, heads=2, mem_weight=0.0).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    per_epoch = []
    for _ in range(3):
        losses = [float(out.aux_losses["avel"]) for out in train_epoch(model, dm.train_dataloader(), opt)]
        per_epoch.append(sum(losses) / len(losses))
    assert per_epoch[-1] < 0.8 * per_epoch[0], per_epoch


def test_iemocap_waveform_end_to_end(tmp_path, wavlm_dir):
    from benchmarks.cli import main
    from benchmarks.records import read_record

    from .fixtures_iemocap import write_iemocap

    data = write_iemocap(tmp_path / "iemo")
    res = tmp_path / "res"
    assert main(["run", "--model", "foalnet", "--data", "iemocap", "--data-dir", str(data["root"]),
                 "--set", "audio_input=waveform", "--set", "max_seconds=0.5", "--set", "video_feature=clip-test",
                 "--set", f"wavlm={wavlm_dir}", "--set", "heads=2", "--set", "proj_dim=8",
                 "--folds", "Ses01", "--max-epochs", "1", "--seeds", "0", "--no-progress", "--logger", "none",
                 "--results", str(res)]) == 0
    rec = next(map(read_record, res.rglob("*.json")))
    assert rec["model"] == "foalnet" and rec["fold"] == "Ses01" and "ua" in rec["test"]
    assert rec["config"]["data_options"]["sampler"] == "balanced"


def test_aux_losses_in_training_and_validation_only():
    import lightning as L

    dm = create_datamodule("synthetic", batch_size=8, n_train=32, n_val=16, n_test=16)
    dm.setup("fit")
    model = create_model("foalnet", dm.spec, **SMALL)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    logged = set(trainer.callback_metrics)
    assert {"train/aux_avel", "train/aux_mem", "train/mem_skipped", "val/aux_avel", "val/aux_mem"} <= logged
    trainer.test(model, datamodule=dm, verbose=False)
    assert not any(k.startswith("test/aux") for k in trainer.callback_metrics)
