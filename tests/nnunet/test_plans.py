"""equivox.nnunet.plans: ``equivox nnunet plans`` derives a ``3d_fullres_equivox`` configuration from the plans
nnU-Net's planner wrote, which nnU-Net's PlansManager and get_network_from_plans read into an exactly equivariant
network (rotations written with torch.rot90); plans it cannot serve give clear errors (one line from the CLI)."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("nnunetv2", reason="nnunetv2 not installed (pip install -e '.[nnunet]')")

from equivox.nnunet import NETWORK_CLASS, EquivariantNnUNet  # noqa: E402

TOL = 1e-4  # relative; float32 rounding is ~1e-6


def test_plans_command_writes_config_nnunet_reads(tiny_run, tmp_path, build_from_plans, rel_errors,
                                                  cube_turns):
    """`equivox nnunet plans` on the real plans nnU-Net's planner wrote; PlansManager + get_network_from_plans."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from equivox.cli import main

    out, _, _ = tiny_run
    plans_src = next((out / "nnUNet_preprocessed").glob("Dataset501_*/nnUNetPlans.json"))
    plans = json.loads(plans_src.read_text())
    plans["configurations"].pop("3d_fullres_equivox")
    pre = tmp_path / "Dataset501_EquivoxTiny"
    pre.mkdir()
    (pre / "nnUNetPlans.json").write_text(json.dumps(plans))
    rc = main(["nnunet", "plans", "--dataset-id", "501", "--configuration", "3d_fullres", "--preprocessed",
               str(tmp_path), "--keep", "params"])
    assert rc == 0
    pm = PlansManager(str(pre / "nnUNetPlans.json"))
    cm = pm.get_configuration("3d_fullres_equivox")
    parent = pm.get_configuration("3d_fullres")
    assert cm.network_arch_class_name == NETWORK_CLASS
    assert cm.data_identifier == parent.data_identifier  # same preprocessed data
    assert cm.patch_size == parent.patch_size == [16, 16, 16]
    net = build_from_plans({"network_class_name": cm.network_arch_class_name, "arch_kwargs": cm.network_arch_init_kwargs,
                 "_kw_requires_import": cm.network_arch_init_kwargs_req_import})
    assert type(net) is EquivariantNnUNet and net.group == "octa" and net.keep == "params"
    assert net.fields_per_stage == tuple(max(1, round(f / 24 ** 0.5)) for f in [32, 64, 128])
    x = torch.randn(1, 1, 16, 16, 16)
    assert max(rel_errors(net, x, cube_turns["diag_3fold"])) < TOL
    # the plain nnU-Net network of the same plans is not equivariant (the check can fail)
    plain = build_from_plans({"network_class_name": parent.network_arch_class_name,
                   "arch_kwargs": parent.network_arch_init_kwargs,
                   "_kw_requires_import": parent.network_arch_init_kwargs_req_import})
    assert max(rel_errors(plain, x, cube_turns["rot90_HW"])) > 1e-2


def test_unservable_plans_give_clear_errors(tmp_path, planned_arch):
    from equivox.nnunet.plans import add_equivox_configuration

    arch, patch = planned_arch((1.0, 1.0, 1.0), (32, 32, 32))
    plans = {"dataset_name": "Dataset502_X", "configurations": {
        "3d_fullres": {"patch_size": [36, 32, 32], "data_identifier": "x", "architecture": arch},
        "2d": {"patch_size": [32, 32], "data_identifier": "y", "architecture": arch}}}
    f = tmp_path / "nnUNetPlans.json"
    f.write_text(json.dumps(plans))
    with pytest.raises(ValueError, match=r"patch_size \[36, 32, 32\] is not a multiple of the stride product "
                                         r"\[8, 8, 8\]"):
        add_equivox_configuration(plans_file=f)
    with pytest.raises(ValueError, match="2D"):
        add_equivox_configuration(plans_file=f, configuration="2d")
    # a non-cubic patch is cut to a cube for cube groups (tiles then rotate onto themselves), or kept on request
    plans["configurations"]["3d_fullres"]["patch_size"] = [48, 32, 40]
    f.write_text(json.dumps(plans))
    s = add_equivox_configuration(plans_file=f)
    assert s["patch_size"] == [32, 32, 32] and s["patch_size_planned"] == [48, 32, 40]
    assert json.loads(f.read_text())["configurations"]["3d_fullres_equivox"]["patch_size"] == [32, 32, 32]
    assert add_equivox_configuration(plans_file=f, keep_patch=True, dry_run=True)["patch_size"] == [48, 32, 40]
    # the CLI reports the same errors as one line, exit code 2
    from equivox.cli import main

    plans["configurations"]["3d_fullres"]["patch_size"] = [36, 32, 32]
    f.write_text(json.dumps(plans))
    assert main(["nnunet", "plans", "--plans-file", str(f)]) == 2
