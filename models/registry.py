"""Model registry: ``@register_model("name")`` on a :class:`~models.base.MERModel` subclass.

Discovery imports every module of this package, then the ``affectbench.models`` entry points,
so a new baseline is one new file here (or one entry point in an outside package)."""
from __future__ import annotations

import inspect
from typing import Any

from datamodules.spec import DatasetSpec, Registry, UserInputError

MODELS = Registry("model", "models", "affectbench.models")
register_model = MODELS.register


def get_model_class(name: str) -> type:
    return MODELS.get(name)


def list_models() -> list[str]:
    return MODELS.names()


def model_hparam_defaults(cls: type) -> dict[str, Any]:
    """Every keyword hyper-parameter the model's constructor chain accepts, with its default,
    plus the training recipe (``RECIPE``: epochs, batch size, lr, ...)."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass.__module__.startswith(("lightning", "torch", "builtins")):
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name in ("self", "spec") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            out[p.name] = None if p.default is inspect.Parameter.empty else p.default
    out.update({k: v for k, v in getattr(cls, "RECIPE", {}).items() if out.get(k) is None})
    return out


def create_model(name: str, spec: DatasetSpec, **hparams: Any):
    cls = get_model_class(name)
    known = model_hparam_defaults(cls)
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise UserInputError(f"model {name!r} has no hyper-parameter {', '.join(unknown)}; "
                             f"it accepts: {', '.join(sorted(known))}")
    return cls(spec, **hparams)
