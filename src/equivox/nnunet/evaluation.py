"""Rotation-robust scoring of trained nnU-Net v2 models (equivox or plain) with :mod:`equivox.evaluation`.

:func:`evaluate_nnunet_model` loads a model folder with nnU-Net's own ``nnUNetPredictor`` (the same network, weights,
sliding window, Gaussian weighting and mirroring TTA as ``nnUNetv2_predict``), preprocesses each case with the
configuration's own preprocessor (crop, resample, normalise), and scores the predictions with
:func:`equivox.evaluation.evaluate_segmentation` on every rotation of a rotation set: image and label rotated
together in nnU-Net's preprocessed voxel space, Dice in the rotated frame. Exact grid rotations (cube rotations)
permute voxels; random SO(3) rotations resample (see :mod:`equivox.evaluation.rotations`).
:func:`network_equivariance_errors` measures an nnU-Net network's equivariance error, deep-supervision outputs
included.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

__all__ = ["evaluate_nnunet_model", "load_predictor", "network_equivariance_errors"]

PathLike = Union[str, Path]


def load_predictor(model_folder: PathLike, folds: Sequence[Union[int, str]] = (0,),
                   checkpoint_name: str = "checkpoint_final.pth", use_mirroring: bool = True,
                   tile_step_size: float = 0.5, device: Union[str, torch.device] = "cpu"):
    """An initialised ``nnUNetPredictor`` for a trained model folder
    (``$nnUNet_results/DatasetXXX/<trainer>__<plans>__<configuration>``) and the given folds."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    folder = Path(model_folder)
    if not (folder / "plans.json").is_file():
        raise FileNotFoundError(f"{folder} is not an nnU-Net model folder (no plans.json); expected "
                                f"$nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>")
    predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                perform_everything_on_device=False, device=torch.device(device), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=tuple(folds),
                                                   checkpoint_name=checkpoint_name)
    return predictor


class _Output(nn.Module):
    """One output of a network that returns a list (deep supervision)."""

    def __init__(self, net: nn.Module, index: int):
        super().__init__()
        self.net, self.index, self.group = net, index, getattr(net, "group", None)

    def forward(self, x):
        out = self.net(x)
        return out[self.index] if isinstance(out, (list, tuple)) else out


def network_equivariance_errors(network: nn.Module, x: torch.Tensor, group: Optional[str] = None) -> List[float]:
    """Max relative equivariance error over the grid elements of ``group`` (default ``network.group``, else the 24
    cube rotations) of each output of an nnU-Net network, via :func:`equivox.testing.equivariance_errors`.

    ``x``: ``(B, C, D, H, W)``, a cube whose side is a multiple of the stride products. With deep supervision on,
    one value per output (highest resolution first), else one value. Eval mode is used; the mode is restored."""
    from ..groups import cube_rotations, get_group
    from ..testing import equivariance_errors

    group = group or getattr(network, "group", None)
    elements = get_group(group).grid_elements if group else cube_rotations()
    was = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(x)
    finally:
        network.train(was)
    n = len(out) if isinstance(out, (list, tuple)) else 1
    return [max(e.relative for e in equivariance_errors(_Output(network, i), x, elements)) for i in range(n)]


def _as_list(images) -> List[str]:
    return [str(p) for p in images] if isinstance(images, (list, tuple)) else [str(images)]


def evaluate_nnunet_model(model_folder: PathLike, cases: Sequence[Tuple[Union[PathLike, Sequence[PathLike]],
                                                                        PathLike]],
                          rotations=None, *, folds: Sequence[Union[int, str]] = (0,),
                          checkpoint_name: str = "checkpoint_final.pth", use_mirroring: bool = True,
                          tile_step_size: float = 0.5, group: Optional[str] = None, n_random: int = 4,
                          seed: int = 0, device: Union[str, torch.device] = "cpu", progress: bool = False,
                          name: Optional[str] = None):
    """Score a trained nnU-Net model on ``cases`` under cube rotations and random rotations.

    Args:
        model_folder: trained model folder (``.../<trainer>__<plans>__<configuration>``), equivox or plain nnU-Net.
        cases: ``(images, label)`` pairs of raw files: ``images`` one path or a list (one per channel, nnU-Net's
            ``_0000``, ``_0001`` order), ``label`` the reference segmentation file.
        rotations: list of :class:`equivox.evaluation.Rotation`; default ``rotation_set("standard", group,
            n_random, seed)`` (identity, the grid elements of ``group``, ``n_random`` random SO(3) rotations).
        folds, checkpoint_name: as ``nnUNetv2_predict`` (several folds are averaged, logits summed).
        use_mirroring: nnU-Net's mirroring TTA (default on, as ``nnUNetv2_predict``; 8x slower).
        tile_step_size: sliding-window step (fraction of the patch).
        group: group whose grid elements are scored (default: the network's group, or ``"octa"``).
        device: where the network runs.

    Returns:
        :class:`equivox.evaluation.RotationReport` (Dice per rotation, mean over foreground classes; scored in
        nnU-Net's preprocessed voxel space, so 1 voxel = the configuration's spacing). ``meta`` has the network
        class and configuration.

    Raises:
        ValueError: region-based (sigmoid) label setups, which have no argmax segmentation.
    """
    from ..evaluation import evaluate_segmentation, rotation_set

    predictor = load_predictor(model_folder, folds, checkpoint_name, use_mirroring, tile_step_size, device)
    if predictor.label_manager.has_regions:
        raise ValueError("evaluate_nnunet_model scores softmax (class) models; this model is region-based")
    net = predictor.network
    group = group or getattr(net, "group", None) or "octa"
    rots = rotations if rotations is not None else rotation_set("standard", group=group, n_random=n_random,
                                                                seed=seed)
    params = predictor.list_of_parameters
    if len(params) == 1:
        net.load_state_dict(params[0])

    def inferer(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
        total = None
        for p in (params if len(params) > 1 else [None]):
            if p is not None:  # several folds: sum their logits, as nnU-Net does
                model.load_state_dict(p)
            logits = predictor.predict_sliding_window_return_logits(x[0].float().cpu()).float()
            total = logits if total is None else total + logits
        return total[None].to(x.device)

    pre = predictor.configuration_manager.preprocessor_class(verbose=False)
    items = []
    for images, label in cases:
        data, seg, _ = pre.run_case(_as_list(images), str(label), predictor.plans_manager,
                                    predictor.configuration_manager, predictor.dataset_json)
        seg = np.where(seg < 0, 0, seg)  # nnU-Net marks voxels outside the nonzero mask with -1
        items.append((torch.from_numpy(np.ascontiguousarray(data)).float(),
                      torch.from_numpy(np.ascontiguousarray(seg)).long()))
    report = evaluate_segmentation(net, items, rots, num_classes=predictor.label_manager.num_segmentation_heads,
                                   device=device, progress=progress, inferer=inferer, pad=False,
                                   name=name or Path(model_folder).name)
    report.meta.update(network=type(net).__module__ + "." + type(net).__name__,
                       configuration=Path(model_folder).name, use_mirroring=use_mirroring, folds=list(folds))
    return report
