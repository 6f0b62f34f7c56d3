"""Datamodule registry: ``@register_datamodule("name")`` on a :class:`MERDataModule` subclass."""
from __future__ import annotations

from .spec import Registry

DATAMODULES = Registry("dataset", "datamodules", "affectbench.datamodules")
register_datamodule = DATAMODULES.register


def get_datamodule_class(name: str) -> type:
    return DATAMODULES.get(name)


def create_datamodule(name: str, **kwargs):
    return DATAMODULES.get(name)(**kwargs)


def list_datamodules() -> list[str]:
    return DATAMODULES.names()
