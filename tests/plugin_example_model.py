"""A model defined outside the ``models`` package, for tests/test_add_model.py (the --plugin and
entry-point routes). Not a published method: masked mean of every modality, one linear layer,
with a ``scale`` hyper-parameter so that ``--set`` can be exercised."""
import torch
from torch import nn

from models.base import MERModel, ModelOutput
from models.blocks import masked_mean
from models.registry import register_model


@register_model("plugin_linear")
class PluginLinear(MERModel):
    """Plugin linear: masked mean of each modality, concatenated, one linear layer (test plugin)."""

    RECIPE = {"max_epochs": 5, "batch_size": 32, "lr": 3e-3, "weight_decay": 0.0, "patience": 3}
    LABEL = "PluginLinear"

    def __init__(self, spec, scale: float = 1.0, **kwargs):
        super().__init__(spec, **kwargs)
        self.scale = float(scale)
        self.norm = nn.BatchNorm1d(sum(m.dim for m in self.used_modalities))
        self.head = nn.Linear(sum(m.dim for m in self.used_modalities), spec.target_dim)

    def forward(self, batch):
        z = torch.cat([masked_mean(batch.x[m.name], batch.mask[m.name] if m.is_sequence else None)
                       for m in self.used_modalities], dim=-1)
        pred = self.head(self.scale * self.norm(z))
        return ModelOutput(pred=self.task_pred(pred))
