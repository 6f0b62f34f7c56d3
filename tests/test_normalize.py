"""Standardisation fitted on training data (global) or per subject, never on labels."""
import pytest
import torch

from datamodules import normalize as nz


def test_global_uses_training_statistics_only_and_valid_steps():
    g = torch.Generator().manual_seed(0)
    train = {"v": torch.randn(50, 3, generator=g) * 4 + 2, "s": torch.randn(50, 6, 2, generator=g) + 5}
    lens = torch.randint(1, 7, (50,), generator=g)
    train["s"][torch.arange(6)[None, :] >= lens[:, None]] = 1000.0  # padding must not count
    test = {"v": torch.randn(20, 3, generator=g) * 10 - 7, "s": torch.randn(20, 6, 2, generator=g)}
    tr, (te,) = nz.apply("global", train, [test], lengths=({"s": lens}, [{}]))
    assert torch.allclose(tr["v"].mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(tr["v"].std(0, unbiased=False), torch.ones(3), atol=1e-5)
    valid = torch.arange(6)[None, :] < lens[:, None]
    assert torch.allclose(tr["s"][valid].mean(0), torch.zeros(2), atol=1e-5)
    mean, std = train["v"].double().mean(0), train["v"].double().std(0, unbiased=False)
    assert torch.allclose(te["v"].double(), (test["v"].double() - mean) / std, atol=1e-5)
    assert not torch.allclose(te["v"].mean(0), torch.zeros(3), atol=0.5)  # test statistics were not used
    assert torch.equal(test["v"], test["v"].clone())


def test_subject_mode_standardises_each_group_and_constant_features_survive():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0], [10.0, 5.0], [30.0, 5.0]])
    tr, (te,) = nz.apply("subject", {"a": x}, [{"a": x[:2] * 2}], groups=(["s1", "s1", "s2", "s2"], [["s3", "s3"]]))
    assert torch.allclose(tr["a"][:, 0], torch.tensor([-1.0, 1.0, -1.0, 1.0]))
    assert torch.equal(tr["a"][:, 1], torch.zeros(4)) and torch.allclose(te["a"][:, 0], torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="needs the group"):
        nz.apply("subject", {"a": x}, [])
    with pytest.raises(ValueError, match="none, global, subject"):
        nz.apply("zscore", {"a": x}, [])
