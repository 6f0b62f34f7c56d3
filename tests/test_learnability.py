"""The synthetic default is learnable up to its limit and needs fusion: a real training run checks it."""
from benchmarks.runner import RunSettings, run_sweep


def _wa(tmp_path, **overrides):
    recs = run_sweep(RunSettings(model="early_fusion", data="synthetic", seeds=[0], results=str(tmp_path),
                                 logger="none", progress=False, overrides=overrides, echo=lambda *a, **k: None))
    return recs[0]["test"]["wa"], recs[0]["limit"]["value"]


def test_early_fusion_near_the_limit_and_one_modality_is_not_enough(tmp_path):
    fused, limit = _wa(tmp_path)
    assert fused >= limit - 0.05, (fused, limit)
    best_single = max(_wa(tmp_path, modalities=m)[0] for m in ("text", "audio", "vision"))
    assert best_single <= fused - 0.10, (best_single, fused)
