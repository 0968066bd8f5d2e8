"""``equivox nnunet plans``: derive an equivariant configuration in an existing ``nnUNetPlans.json``.

The derived configuration (default name ``<configuration>_equivox``) *inherits* from the planned one (nnU-Net's
``inherits_from``), so it reuses its preprocessed data, spacing, normalisation and batch size; it only replaces
``architecture`` (``network_class_name`` = :class:`equivox.nnunet.network.EquivariantNnUNet`, nnU-Net's
``arch_kwargs`` plus ``group`` and ``keep``) and, where needed, ``patch_size``. Afterwards nnU-Net runs unchanged::

    equivox nnunet plans --dataset-id 4 --configuration 3d_fullres
    nnUNetv2_train 4 3d_fullres_equivox 0
    nnUNetv2_predict -i IN -o OUT -d 4 -c 3d_fullres_equivox -f 0

Size rules (checked here, before any training): each patch axis must be a multiple of the product of the strides
on that axis (nnU-Net's planner guarantees it; a hand-edited plan that breaks it gets a ``ValueError`` naming the
patch and strides); kernels and strides must suit the group (:func:`equivox.nnunet.rules.choose_group`); and, unless
``keep_patch=True``, the patch is cut to the largest one the group maps onto itself (a cube for cube groups), so
that training patches and sliding-window tiles rotate onto themselves.
"""
from __future__ import annotations

import copy
import glob
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from . import NETWORK_CLASS, rules

__all__ = ["add_equivox_configuration", "find_plans_file"]


def find_plans_file(dataset_id: Union[int, str], plans_identifier: str = "nnUNetPlans",
                    preprocessed_dir: Optional[Union[str, Path]] = None) -> Path:
    """``$nnUNet_preprocessed/DatasetXXX_Name/<plans_identifier>.json`` of a dataset id (or ``DatasetXXX_Name``).

    Raises ``FileNotFoundError`` naming the folder searched (and telling to run nnU-Net's planning first)."""
    root = preprocessed_dir or os.environ.get("nnUNet_preprocessed")
    if not root:
        raise FileNotFoundError("nnUNet_preprocessed is not set: export nnUNet_preprocessed=/path (as for nnU-Net) "
                                "or pass --preprocessed DIR")
    root = Path(root)
    name = str(dataset_id)
    if name.startswith("Dataset"):
        folders = [root / name]
    else:
        try:
            folders = [Path(p) for p in sorted(glob.glob(str(root / f"Dataset{int(name):03d}_*")))]
        except ValueError:
            raise ValueError(f"dataset id must be an integer or a DatasetXXX_Name folder name, got {name!r}") from None
    folders = [f for f in folders if f.is_dir()]
    if not folders:
        raise FileNotFoundError(f"no preprocessed folder for dataset {name} in {root}; run "
                                f"nnUNetv2_plan_and_preprocess -d {name} first")
    plans = folders[0] / f"{plans_identifier}.json"
    if not plans.is_file():
        raise FileNotFoundError(f"{plans} does not exist; run nnUNetv2_plan_and_preprocess -d {name} (or pass the "
                                f"plans identifier you planned with)")
    return plans


def _resolve(plans: dict, name: str, seen=()) -> dict:
    """A configuration with ``inherits_from`` resolved (as nnU-Net's ``PlansManager`` does)."""
    configs = plans.get("configurations", {})
    if name not in configs:
        raise ValueError(f"configuration {name!r} is not in the plans; available: {sorted(configs)}")
    cfg = copy.deepcopy(configs[name])
    parent = cfg.get("inherits_from")
    if parent is not None:
        if parent in seen:
            raise ValueError(f"circular inherits_from in the plans: {(*seen, name)}")
        base = _resolve(plans, parent, (*seen, name))
        base.update(cfg)
        cfg = base
    return cfg


def add_equivox_configuration(dataset_id: Union[int, str, None] = None, configuration: str = "3d_fullres",
                              group: Optional[str] = None, keep: str = "width", cube_group: str = "octa",
                              name: Optional[str] = None, plans_identifier: str = "nnUNetPlans",
                              preprocessed_dir: Optional[Union[str, Path]] = None,
                              plans_file: Optional[Union[str, Path]] = None, keep_patch: bool = False,
                              dry_run: bool = False) -> Dict[str, Any]:
    """Add ``name`` (default ``<configuration>_equivox``) to a dataset's nnU-Net plans.

    Args:
        dataset_id: nnU-Net dataset id (``4``) or folder name (``Dataset004_Hippocampus``); or give ``plans_file``.
        configuration: the planned 3D configuration to derive from (``3d_fullres``, ``3d_lowres``,
            ``3d_cascade_fullres``; 2d is refused: equivox networks are 3D).
        group: group name, or ``None`` to choose from the plan (``cube_group`` for isotropic kernels/strides, an
            axial group for anisotropic ones; see :func:`equivox.nnunet.rules.choose_group`).
        keep: ``"width"`` (default; same tensor width as nnU-Net's plan, so its memory-based batch/patch sizes
            hold) or ``"params"`` (same parameter count; sqrt(field_size) x wider tensors).
        cube_group: cube group for isotropic plans (``"octa"``: 24 rotations; ``"full_octa"`` adds reflections).
        name: name of the derived configuration.
        plans_identifier, preprocessed_dir: where the plans live (default ``$nnUNet_preprocessed``).
        plans_file: a plans JSON file to edit instead of looking one up.
        keep_patch: keep a patch the group does not map onto itself (the network stays exactly equivariant;
            whole-volume sliding-window predictions then only approximately). Default: cut it (see module doc).
        dry_run: check and return the summary without writing.

    Returns:
        summary dict: ``plans_file``, ``configuration`` (new name), ``parent``, ``group``, ``keep``,
        ``fields_per_stage``, ``patch_size`` (and ``patch_size_planned`` when it was cut), ``network_class_name``.

    Raises:
        ValueError: 2D configuration, a kernel/stride/patch that cannot be exact (the message names it), an unknown
            group, or ``name`` exists and is not an equivox configuration.
        FileNotFoundError: no plans file.
    """
    from ..groups import get_group

    path = Path(plans_file) if plans_file else find_plans_file(dataset_id, plans_identifier, preprocessed_dir)
    plans = json.loads(path.read_text())
    parent = _resolve(plans, configuration)
    name = name or f"{configuration}_equivox"
    existing = plans["configurations"].get(name)
    if existing is not None and existing.get("architecture", {}).get("network_class_name") != NETWORK_CLASS:
        raise ValueError(f"configuration {name!r} already exists in {path} and is not an equivox configuration; "
                         f"pick another --name")
    patch = [int(v) for v in parent["patch_size"]]
    if len(patch) != 3:
        raise ValueError(f"configuration {configuration!r} is 2D (patch_size {patch}): equivox networks are 3D; use "
                         f"3d_fullres / 3d_lowres")
    arch = copy.deepcopy(parent["architecture"])
    kwargs = dict(arch["arch_kwargs"])
    if "n_blocks_per_stage" in kwargs:  # ResidualEncoderUNet presets: served with the plain layout
        kwargs["n_conv_per_stage"] = kwargs.pop("n_blocks_per_stage")
        for k in ("block", "bottleneck_channels", "stem_channels"):
            kwargs.pop(k, None)
    n = int(kwargs["n_stages"])
    kernels = rules.as_triples(kwargs["kernel_sizes"], n, "kernel_sizes")
    strides = rules.as_triples(kwargs["strides"], n, "strides")
    chosen = rules.choose_group(kernels, strides, group, cube_group)
    rules.check_patch_size(patch, strides)
    new_patch = patch if keep_patch else rules.symmetric_patch(patch, chosen)
    rules.check_patch_size(new_patch, strides)
    fields = rules.fields_for_features(kwargs["features_per_stage"], get_group(chosen).field_size, keep)
    kwargs.update(group=chosen, keep=keep)
    derived: Dict[str, Any] = {
        "inherits_from": configuration,
        "architecture": {"network_class_name": NETWORK_CLASS, "arch_kwargs": kwargs,
                         "_kw_requires_import": list(arch.get("_kw_requires_import", []))},
    }
    if new_patch != patch:
        derived["patch_size"] = new_patch
    summary = {"plans_file": str(path), "configuration": name, "parent": configuration, "group": chosen,
               "keep": keep, "fields_per_stage": list(fields), "features_per_stage": list(kwargs["features_per_stage"]),
               "field_size": get_group(chosen).field_size, "patch_size": new_patch,
               "network_class_name": NETWORK_CLASS}
    if new_patch != patch:
        summary["patch_size_planned"] = patch
    if not dry_run:
        plans["configurations"][name] = derived
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(plans, indent=4))
        os.replace(tmp, path)
    return summary


def run_plans_command(args) -> int:
    """Body of ``equivox nnunet plans`` (``args`` from :func:`equivox.cli.build_parser`)."""
    s = add_equivox_configuration(args.dataset_id, args.configuration, group=args.group, keep=args.keep,
                                  cube_group=args.cube_group, name=args.name, plans_identifier=args.plans,
                                  preprocessed_dir=args.preprocessed, plans_file=args.plans_file,
                                  keep_patch=args.keep_patch, dry_run=args.dry_run)
    verb = "would add" if args.dry_run else "added"
    print(f"{verb} configuration {s['configuration']!r} (inherits {s['parent']!r}) to {s['plans_file']}")
    print(f"  network: {s['network_class_name']}  group={s['group']} (field size {s['field_size']})  "
          f"keep={s['keep']}")
    print(f"  features per stage {s['features_per_stage']} -> hidden fields {s['fields_per_stage']}")
    if "patch_size_planned" in s:
        print(f"  patch size {s['patch_size_planned']} -> {s['patch_size']} (the group maps it onto itself; "
              f"--keep-patch keeps the planned one)")
    else:
        print(f"  patch size {s['patch_size']}")
    ds = args.dataset_id if args.dataset_id is not None else "DATASET"
    print(f"train with: nnUNetv2_train {ds} {s['configuration']} FOLD")
    return 0
