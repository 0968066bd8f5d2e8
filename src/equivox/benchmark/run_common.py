"""What the classification and segmentation runs of the harness share: the default rows and SO(3) protocols, the
canonicalizer a row puts in front of its model (and its head, fitted on validation items), scoring with the mesh
protocol's re-voxelized items, the content a random rotation cuts off, pose rates, the one-line scores and the
files of the dataset run."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .competitors import CANONICALIZER
from .progress import say

__all__ = ["SO3_PROTOCOLS", "DEFAULT_COMPETITORS", "so3_content_lost"]

#: how the random SO(3) rows of a classification run rotate a test item: ``"grid"`` resamples the stored grid
#: (trilinear, corners cut), ``"mesh"`` rotates the item's mesh and voxelizes it again (datasets with meshes)
SO3_PROTOCOLS = ("grid", "mesh")


#: the rows of a run that names none: the reference, its parameter-matched twin, the twin + grid augmentation
DEFAULT_COMPETITORS = ("equivariant (octa)", "plain (matched params)", "plain + grid aug")


def so3_content_lost(x: torch.Tensor, rotations) -> List[float]:
    """Mean fraction of occupancy mass lost per random rotation (``1 - sum(R x) / sum(x)``, items ``(N, 1, ...)``):
    what rotating the box cut off (0 when everything lies inside the inscribed sphere)."""
    total = x.sum(dim=(1, 2, 3, 4)).clamp_min(1e-12)
    out = []
    for r in rotations:
        if r.kind == "so3":
            out.append(float((1 - r.apply_image(x).sum(dim=(1, 2, 3, 4)) / total).clamp_min(0).mean()))
    return out


def _pose_rates(model: nn.Module, batches: Sequence[torch.Tensor]) -> Tuple[Optional[float], Optional[float]]:
    """A canonicalized model's identity rate and equivalent-pose rate (``Canonicalized.identity_rate`` /
    ``equivalent_rate``) over the items of ``batches`` (``(B, C, D, H, W)`` each; volumes of different shapes in
    separate batches), weighted by items; ``(None, None)`` for other models."""
    if not hasattr(model, "identity_rate"):
        return None, None
    n = sum(len(b) for b in batches)
    identity = sum(model.identity_rate(b) * len(b) for b in batches) / n
    equivalent = sum(model.equivalent_rate(b) * len(b) for b in batches) / n
    return identity, equivalent


def _f(v) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def _scores_line(rec: Dict) -> str:
    ci = rec.get("upright_ci")
    return (f"    {rec['metric']} upright {_f(rec['upright'])}"
            + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            + f"  cube mean {_f(rec['mean_grid'])} worst {_f(rec['worst_grid'])}  so3 mean {_f(rec['mean_so3'])} "
              f"worst {_f(rec['worst_so3'])}  ({rec['train_seconds']:.0f} s train, {rec['n_test']} test items)")


def _evaluate_with_meshes(evaluate, model: nn.Module, data, rotations, mesh_data, **kw):
    """``evaluate(model, data, rotations, **kw)`` (:func:`~equivox.evaluation.evaluate_classification` or
    :func:`~equivox.evaluation.evaluate_segmentation`); with ``mesh_data`` (``{so3 rotation name: data}``, the mesh
    protocol: the items re-voxelized from their rotated meshes) each ``so3`` row is scored instead on its
    re-voxelized items, unrotated, keeping the row's name, kind and place (rows and per-item scores)."""
    from ..evaluation import Rotation, RotationReport

    if mesh_data is None:
        return evaluate(model, data, rotations, **kw)
    rep = evaluate(model, data, [r for r in rotations if r.kind != "so3"], **kw)
    kw = {**kw, "check_equivariance": False}
    rows, per_item, seconds = {r["rotation"]: r for r in rep.rows}, dict(rep.per_item), rep.meta["seconds"]
    for r in rotations:
        if r.kind == "so3":
            part = evaluate(model, mesh_data[r.name], [Rotation.identity()], **kw)
            rows[r.name] = {**part.rows[0], "rotation": r.name, "kind": "so3", "exact": False}
            per_item[r.name] = part.per_item["identity"]
            seconds += part.meta["seconds"]
    meta = {**rep.meta, "n_rotations": len(rotations), "seconds": round(seconds, 3), "so3_protocol": "mesh"}
    return RotationReport(rep.name, rep.metric, [rows[r.name] for r in rotations], rep.equivariance_error,
                          rep.element_errors, meta, {r.name: per_item[r.name] for r in rotations})


def _fit_head(model: nn.Module, comp, val_images, seed: int, tag: str, verbose: bool) -> float:
    """A calibrated canonicalizer's head fitted on the validation items (never the test items); seconds spent
    (0 for a confidence canonicalizer, which has nothing to fit)."""
    if comp.scorer != "calibrated":
        say(f"{tag}: nothing to fit ({comp.eval_cost} forward passes per item)", verbose)
        return 0.0
    from ..canonicalization import fit_upright_head

    info = fit_upright_head(model, val_images, seed=seed)
    say(f"{tag}: upright head fitted on {info['items']} validation items in {info['seconds']:.0f} s (upright copy "
        f"scored highest for {info['identity_rate']:.0%} of them; {comp.eval_cost} forward passes per item)", verbose)
    return float(info["seconds"])


def _wrap_canonicalizer(model: nn.Module, comp, task: str, seed: int) -> nn.Module:
    """A competitor's network behind its canonicalizer: the model factory's canonicalized role."""
    from ..models.roles import get_role

    kw = dict(canonical_pose=comp.canonical) if task == "classify" else {}
    return get_role("canonicalized").wrap(model, task, comp.canonicalize, seed,
                                          freeze_model=comp.frozen_of is not None, **kw, **CANONICALIZER,
                                          scorer=comp.scorer)


def _dataset_files(name: str) -> Dict:
    """``{file: {"bytes", "sha256"}}`` of a registered dataset's provenance record (which data were run)."""
    from ..data.registry import find_dataset

    spec = find_dataset(name)
    return dict(spec.metadata().get("files") or {}) if spec is not None else {}
