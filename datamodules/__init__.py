"""Datamodules: the shared contracts (spec, batch, base) and one file per dataset."""
from .batch import Batch, Sample, collate
from .spec import DatasetSpec, ModalitySpec, Protocol, UserInputError
from .registry import create_datamodule, get_datamodule_class, list_datamodules, register_datamodule

__all__ = ["Batch", "Sample", "collate", "DatasetSpec", "ModalitySpec", "Protocol", "UserInputError",
           "create_datamodule", "get_datamodule_class", "list_datamodules", "register_datamodule"]
