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
from monai.networks import eval_mode
from torch import nn

__all__ = ["evaluate_nnunet_model", "load_predictor", "network_equivariance_errors"]

PathLike = Union[str, Path]


def load_predictor(model_folder: PathLike, folds: Sequence[Union[int, str]] = (0,),
                   checkpoint_name: str = "checkpoint_final.pth", use_mirroring: bool = True,
                   tile_step_size: float = 0.5, device: Union[str, torch.device] = "cpu", use_gaussian: bool = True):
    """An initialised ``nnUNetPredictor`` for a trained model folder
    (``$nnUNet_results/DatasetXXX/<trainer>__<plans>__<configuration>``) and the given folds.

    ``use_gaussian`` (nnU-Net's default True) weights sliding-window tiles by a Gaussian centred on voxel
    ``size // 2`` (off-centre for even patch sizes) accumulated in float16: whole-volume predictions are then not
    exactly rotation-equivariant near tile borders even for an exactly equivariant network. ``False`` averages
    tiles uniformly (exact up to float16 rounding when the tiles rotate onto themselves)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    folder = Path(model_folder)
    if not (folder / "plans.json").is_file():
        raise FileNotFoundError(f"{folder} is not an nnU-Net model folder (no plans.json); expected "
                                f"$nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>")
    predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=use_gaussian, use_mirroring=use_mirroring,
                                perform_everything_on_device=False, device=torch.device(device), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=tuple(folds),
                                                   checkpoint_name=checkpoint_name)
    return predictor


@torch.no_grad()
def network_equivariance_errors(network: nn.Module, x: torch.Tensor, group: Optional[str] = None,
                                chunk: int = 8) -> List[float]:
    """Max relative equivariance error of each output of an nnU-Net network over the grid elements of ``group``
    (default ``network.group``, else the 24 cube rotations): ``max_g max|net(g x) - g net(x)| / max|net(x)|``,
    the measure of :func:`equivox.testing.equivariance_errors`, with the rotated inputs batched (``chunk`` per
    forward pass) and every deep-supervision output compared.

    ``x``: ``(1, C, S, S, S)``, a cube whose side is a multiple of the stride products (rotated copies must stack).
    Returns one value per output (highest resolution first); one value without deep supervision. Runs in eval
    mode; the training flag is restored."""
    from ..groups import cube_rotations, get_group

    if x.dim() != 5 or x.shape[0] != 1 or len(set(x.shape[2:])) != 1:
        raise ValueError(f"network_equivariance_errors needs one cubic input (1, C, S, S, S), got {tuple(x.shape)}")
    group = group or getattr(network, "group", None)
    elements = get_group(group).grid_elements if group else cube_rotations()
    with eval_mode(network):  # monai: eval mode and no_grad, training flag restored
        def run(inp):
            out = network(inp)
            return list(out) if isinstance(out, (list, tuple)) else [out]

        ref = run(x)
        worst = [0.0] * len(ref)
        for i in range(0, len(elements), chunk):
            els = elements[i:i + chunk]
            outs = run(torch.cat([g.apply(x) for g in els]))
            for k, (r, o) in enumerate(zip(ref, outs)):
                scale = float(r.abs().max().clamp_min(1e-12))
                for j, g in enumerate(els):
                    worst[k] = max(worst[k], float((o[j:j + 1] - g.apply(r)).abs().max()) / scale)
        return worst


def _as_list(images) -> List[str]:
    return [str(p) for p in images] if isinstance(images, (list, tuple)) else [str(images)]


def evaluate_nnunet_model(model_folder: PathLike, cases: Sequence[Tuple[Union[PathLike, Sequence[PathLike]],
                                                                        PathLike]],
                          rotations=None, *, folds: Sequence[Union[int, str]] = (0,),
                          checkpoint_name: str = "checkpoint_final.pth", use_mirroring: bool = True,
                          tile_step_size: float = 0.5, use_gaussian: bool = True, group: Optional[str] = None,
                          n_random: int = 4,
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
        use_gaussian: nnU-Net's Gaussian tile weighting (default on, as ``nnUNetv2_predict``); it is off-centre for
            even patch sizes and float16, so an equivariant model's scores can differ slightly between grid
            rotations; ``False`` makes them equal (see :func:`load_predictor`).
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

    predictor = load_predictor(model_folder, folds, checkpoint_name, use_mirroring, tile_step_size, device,
                               use_gaussian)
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
                       configuration=Path(model_folder).name, use_mirroring=use_mirroring,
                       use_gaussian=use_gaussian, folds=list(folds))
    return report
