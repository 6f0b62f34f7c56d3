"""Models: the MERModel base, shared blocks and one file per method, found through a registry."""
from .base import MERModel, ModelOutput
from .registry import create_model, get_model_class, list_models, model_hparam_defaults, register_model

__all__ = ["MERModel", "ModelOutput", "create_model", "get_model_class", "list_models",
           "model_hparam_defaults", "register_model"]
