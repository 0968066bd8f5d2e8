"""Fit a canonicalizer for a frozen, already trained model, and load such models from any source.

:func:`fit_canonicalizer` wraps a trained model with :func:`~equivox.canonicalization.canonicalize`
(``freeze_model=True``) and trains only the canonicalizer on the user's upright training data, through
:func:`equivox.training.fit`: the task loss through the frozen model (gradients reach the canonicalizer by the
straight-through mixture) plus the prior toward the identity. The model's weights and batch-norm statistics stay
bit-identical. :func:`load_model` reads what users have: an equivox checkpoint, a MONAI bundle folder, a pickled or
TorchScript ``.pt`` model.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from torch import nn

from ..models.loading import load_bundle as _load_bundle  # noqa: F401  (its name here before the move)
from ..models.loading import load_model as _load_any

__all__ = ["fit_canonicalizer", "load_model"]


def load_model(path) -> Tuple[nn.Module, Optional[Dict[str, Any]]]:
    """A trained model from ``path`` and, for an equivox checkpoint or a model saved with its training settings,
    its hyper-parameters (else ``None``): :func:`equivox.models.load_model`, the one loader of every model source.

    ``path`` is an equivox checkpoint (``.ckpt`` from ``equivox train`` / ``canonicalize``, any file name), a MONAI
    bundle folder (its ``configs/inference.json`` or ``.yaml`` ``network_def`` with the weights of
    ``models/model.pt``), a TorchScript file, or a ``.pt`` / ``.pth`` holding a whole pickled ``nn.Module``
    (``torch.save(model, path)``; ``canonicalized.pt`` from ``equivox canonicalize`` carries its settings as
    ``model.equivox_hparams``).

    Raises:
        FileNotFoundError / ValueError: one line naming the file and what is wrong (e.g. a bare state_dict,
        which cannot be used without the code that builds the network).
    """
    return _load_any(path)


def fit_canonicalizer(model: nn.Module, cfg, train_data=None, val_data=None, info=None):
    """Fit only a canonicalizer in front of the trained, frozen ``model``.

    Args:
        model: the trained model (any ``nn.Module`` on ``(B, C, D, H, W)``); it is wrapped, not modified.
        cfg: a :class:`~equivox.training.TrainConfig`: its data (or ``train_data`` / ``val_data`` / ``info``, as
            :func:`~equivox.training.fit`), ``task``, optimisation settings and canonicalizer settings
            (``canonicalize`` = the group, default ``"octa"``; ``canonical_mode``, ``prior_weight``,
            ``canonicalizer_channels``, ``canonicalizer_input_size``).

    Returns:
        the :class:`~equivox.training.FitResult`; ``result.model`` is the
        :class:`~equivox.canonicalization.Canonicalized` wrapper (eval mode) and ``result.metrics`` has
        ``val_identity_rate`` (fraction of upright validation items mapped to the identity; chance is
        ``1 / n_elements``).

    Example::

        model, hp = load_model("outputs/my-run/checkpoints/last.ckpt")
        cfg = TrainConfig.from_dict({**hp["config"], "canonicalize": "octa", "epochs": 10, "out_dir": "out/canon"})
        result = fit_canonicalizer(model, cfg)
    """
    from .data import build_datasets, resolve_data_settings
    from .fit import canonicalize_from_config, fit

    if train_data is None or val_data is None or info is None:
        cfg, _ = resolve_data_settings(cfg)  # stored with the checkpoints: evaluate / predict prepare data alike
        train_data, val_data, info = build_datasets(cfg)
    wrapper = canonicalize_from_config(model, cfg, info.in_channels, freeze_model=True)
    return fit(cfg, model=wrapper, train_data=train_data, val_data=val_data, info=info)
