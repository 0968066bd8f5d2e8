"""One loader for every model source: :func:`load_model`.

Sources, told apart by what the path holds (not by its name):

* an equivox checkpoint (``.ckpt`` from ``equivox train`` / ``canonicalize`` / the demo / the benchmark, any file
  name): ``{"state_dict", "hyper_parameters": {"model_spec", "config", ...}}``; the model is rebuilt from its spec
  (:func:`~equivox.models.specs.upgrade_spec` first, so checkpoints written before a default changed rebuild the
  architecture they were trained with) or from its pickled architecture (``model_spec["cls"] == "pickled"``);
* a pickled ``nn.Module`` (``torch.save(model, path)``); ``canonicalized.pt`` from ``equivox canonicalize``
  carries its training settings as ``model.equivox_hparams``;
* a TorchScript file;
* a MONAI bundle folder (``configs/inference.json`` / ``.yaml`` with a ``network_def``, weights in
  ``models/model.pt``).

``equivox.training.load_checkpoint`` is :func:`load_model` with ``require_settings=True`` (a model to evaluate
needs its task, data and classes); ``equivox.training.load_model`` is :func:`load_model`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from .specs import PICKLED_MODEL, SKELETON_KEY, build_from_spec, model_from_skeleton, upgrade_spec

__all__ = ["load_model", "model_from_checkpoint", "load_bundle"]


def load_model(path, map_location: str = "cpu", require_settings: bool = False
               ) -> Tuple[nn.Module, Optional[Dict[str, Any]]]:
    """The model stored at ``path`` (eval mode) and its training settings (the checkpoint's hyper-parameters:
    ``hp["config"]`` the training config as a dict, ``hp["num_classes"]``, ``hp["model_spec"]``,
    ``hp["data_info"]``), or ``None`` for a source without them (a bundle, TorchScript, a pickled model saved
    without settings).

    Args:
        path: any source of the module docstring.
        map_location: where tensors are loaded (``torch.load``'s argument).
        require_settings: only sources with settings: an equivox checkpoint or a saved model carrying
            ``equivox_hparams`` (``canonicalized.pt``); messages speak of a checkpoint, and a folder, a
            TorchScript file or a model without settings is an error.

    Raises:
        FileNotFoundError / ValueError: one line naming the file and what is wrong (not found, unreadable, a bare
        state_dict, which cannot be used without the code that builds the network, a weights-only checkpoint).
    """
    p = Path(path)
    if require_settings:
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint not found: {p}")
        try:
            obj = torch.load(p, map_location=map_location, weights_only=False)
        except Exception as err:
            raise ValueError(f"cannot read checkpoint {p}: {type(err).__name__}: {err}") from None
        if isinstance(obj, nn.Module):  # a saved model (canonicalized.pt): its settings ride along
            hp = getattr(obj, "equivox_hparams", None)
            if not hp:
                raise ValueError(f"{p} holds a saved {type(obj).__name__} model without equivox training settings "
                                 "(task, data, classes); give a checkpoint written by equivox train or equivox "
                                 "canonicalize")
            return obj.eval(), dict(hp)
        if not isinstance(obj, dict) or "state_dict" not in obj:
            raise ValueError(f"{p} is not an equivox checkpoint (it holds a {type(obj).__name__}, no state_dict)")
        return model_from_checkpoint(obj, p)
    if not p.exists():
        raise FileNotFoundError(f"model not found: {p}")
    if p.is_dir():
        return load_bundle(p), None
    if p.suffix == ".ckpt":  # a checkpoint by its name: the settings are required, and errors say "checkpoint"
        return load_model(p, map_location, require_settings=True)
    try:
        return torch.jit.load(str(p), map_location=map_location).eval(), None
    except Exception:  # not TorchScript: a pickled module or a checkpoint by another name
        pass
    try:
        obj = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as err:
        raise ValueError(f"cannot read model file {p}: {type(err).__name__}: {err}".splitlines()[0]) from None
    if isinstance(obj, dict) and "state_dict" in obj and "hyper_parameters" in obj:
        return model_from_checkpoint(obj, p)
    if not isinstance(obj, nn.Module):
        raise ValueError(f"model file {p} holds a {type(obj).__name__}, not a model; save the whole model "
                         "(torch.save(model, path)), a TorchScript model, or pass the MONAI bundle folder")
    hp = getattr(obj, "equivox_hparams", None)
    return obj.eval(), (dict(hp) if hp else None)


def model_from_checkpoint(ck: Dict[str, Any], where="checkpoint") -> Tuple[nn.Module, Dict[str, Any]]:
    """The model (eval mode) of a loaded equivox checkpoint dict ``ck`` (``state_dict`` entries ``model.*``,
    ``hyper_parameters["model_spec"]``) and its hyper-parameters; ``where`` names it in errors.

    Raises:
        ValueError: weights only (empty ``model_spec``), a pickled architecture missing or not rebuildable.
    """
    hp = ck.get("hyper_parameters", {})
    spec = hp.get("model_spec")
    state = {k[len("model."):]: v for k, v in ck["state_dict"].items() if k.startswith("model.")}
    if not spec:
        raise ValueError(f"checkpoint {where} holds weights only (its model_spec is empty: written before equivox "
                         "recorded any model passed to fit, or the model could not be pickled); build the model in "
                         "Python and load_state_dict")
    if spec.get("cls") == PICKLED_MODEL:
        if SKELETON_KEY not in ck:
            raise ValueError(f"checkpoint {where}: model {spec.get('module')} is stored pickled, but the checkpoint "
                             f"has no '{SKELETON_KEY}' entry")
        try:
            model = model_from_skeleton(ck[SKELETON_KEY], state)
        except Exception as err:  # noqa: BLE001  (unpickling: a class no longer importable, changed code)
            raise ValueError(f"checkpoint {where}: cannot rebuild its model {spec.get('module')} "
                             f"({type(err).__name__}: {err})".splitlines()[0]) from None
        return model.eval(), hp
    model = build_from_spec(upgrade_spec(spec))  # a saved spec: the defaults of its time
    model.load_state_dict(state)
    return model.eval(), hp


def load_bundle(folder) -> nn.Module:
    """The network of a MONAI bundle folder (``configs/inference.json`` / ``.yaml`` / ``.yml`` ``network_def``)
    with the weights of ``models/model.pt`` (a state dict, or ``{"state_dict": ...}``), in eval mode.

    Raises:
        FileNotFoundError: no inference config, or no weights (naming the bundle).
    """
    from monai.bundle import ConfigParser

    folder = Path(folder)
    configs = [folder / "configs" / f"inference.{ext}" for ext in ("json", "yaml", "yml")]
    config = next((c for c in configs if c.is_file()), None)
    weights = folder / "models" / "model.pt"
    if config is None:
        raise FileNotFoundError(f"MONAI bundle {folder}: no configs/inference.json or .yaml")
    if not weights.is_file():
        raise FileNotFoundError(f"MONAI bundle {folder}: no trained weights at {weights}")
    parser = ConfigParser()
    parser.read_config(str(config))
    model = parser.get_parsed_content("network_def")
    state = torch.load(weights, map_location="cpu", weights_only=False)
    model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return model.eval()
