"""nnU-Net v2 integration: EquivariantNnUNet from real nnU-Net plans, the plans command, nnU-Net's own training and
prediction (examples/nnunet/run_tiny.py), rotation-robust evaluation.

Equivariance is always checked by transforming inputs and outputs with torch.rot90 / flips written here, never by
shapes. run_tiny runs once (module fixture, ~1.5-2 min on 2 cores) in a subprocess, because nnU-Net reads its folder
variables when nnunetv2 is first imported.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("nnunetv2", reason="nnunetv2 not installed (pip install -e '.[nnunet]')")

from equivox.nnunet import NETWORK_CLASS, EquivariantNnUNet  # noqa: E402
from equivox.nnunet import rules  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN_TINY = ROOT / "examples" / "nnunet" / "run_tiny.py"
TOL = 1e-4  # relative; float32 rounding is ~1e-6


# ------------------------------------------------------------------------------------------------ helpers
def planned_arch(spacing, patch, n_classes=3):
    """The 3d_fullres ``architecture`` nnU-Net's ExperimentPlanner writes for ``spacing`` / initial ``patch``
    (its own get_pool_and_conv_props and features rule), as plain JSON values."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    _, strides, kernels, patch, _ = get_pool_and_conv_props(spacing, patch, 4, 999999)
    n = len(strides)
    return {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": n, "features_per_stage": [min(32 * 2 ** i, 320) for i in range(n)],
            "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [list(k) for k in kernels],
            "strides": [list(s) for s in strides], "n_conv_per_stage": [2] * n,
            "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }, [int(p) for p in patch]


def build(arch, in_ch=1, n_classes=3, deep_supervision=True):
    """nnU-Net's own get_network_from_plans (it also applies the class's ``initialize`` hook)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    torch.manual_seed(0)
    return get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                  in_ch, n_classes, allow_init=True, deep_supervision=deep_supervision).eval()


def as_equivox(arch, **extra):
    arch = copy.deepcopy(arch)
    arch["network_class_name"] = NETWORK_CLASS
    arch["arch_kwargs"].update(extra)
    return arch


def rel_errors(net, x, transform):
    """Relative error of every output: net(T x) vs T net(x)."""
    with torch.no_grad():
        ref, rot = net(x), net(transform(x))
    ref = ref if isinstance(ref, list) else [ref]
    rot = rot if isinstance(rot, list) else [rot]
    assert len(ref) == len(rot)
    return [float((transform(a) - b).abs().max() / a.abs().max()) for a, b in zip(ref, rot)]


# cube rotations written with torch.rot90 on (B, C, D, H, W): one quarter turn about each axis, a half turn and a
# composite (a 3-fold rotation about the cube diagonal)
CUBE_ROTATIONS = {
    "rot90_DH": lambda t: torch.rot90(t, 1, (2, 3)),
    "rot90_HW": lambda t: torch.rot90(t, 1, (3, 4)),
    "rot90_DW": lambda t: torch.rot90(t, 1, (2, 4)),
    "rot180_DH": lambda t: torch.rot90(t, 2, (2, 3)),
    "diag_3fold": lambda t: torch.rot90(torch.rot90(t, 1, (2, 3)), 1, (3, 4)),
}


# ------------------------------------------------------------------------------------------------ run_tiny
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("nnunet_tiny")
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    proc = subprocess.run([sys.executable, str(RUN_TINY), "--out", str(out)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout, json.loads((out / "run_tiny.json").read_text())


def test_run_tiny_trains_equivox_class_and_predicts(tiny):
    out, stdout, res = tiny
    assert f"trained network class: {NETWORK_CLASS}" in stdout
    assert res["network_class"] == NETWORK_CLASS
    pred = Path(res["prediction"])
    assert pred.is_file() and pred.name.endswith(".nii.gz") and "pred" in pred.parent.name
    import nibabel as nib

    seg = np.asarray(nib.load(str(pred)).dataobj)
    assert seg.shape == (16, 16, 16) and set(np.unique(seg)) <= {0, 1, 2}
    assert "equivariance error" in stdout
    assert len(res["equivariance_errors"]) == 2 and max(res["equivariance_errors"]) < TOL  # both DS outputs
    # nnU-Net's checkpoint records the plans' network class
    ckpt = torch.load(Path(res["model_folder"]) / "fold_0" / "checkpoint_final.pth", map_location="cpu",
                      weights_only=False)
    assert ckpt["init_args"]["configuration"] == "3d_fullres_equivox"


def test_run_tiny_rotation_scores_equal_on_grid_rotations(tiny):
    _, _, res = tiny
    grid = [v for k, v in res["dice"].items() if k.startswith("grid:")]
    assert len(grid) == 4
    assert max(grid) - min(grid) < 1e-6, res["dice"]


def test_nnunet_prediction_under_cube_rotation_equals_rotated_prediction(tiny):
    """nnU-Net's whole inference (its preprocessing, sliding window, mirroring TTA, export) on a rotated case gives
    the rotated probabilities and segmentation. Mirroring TTA keeps this exact (the set of flips is mapped onto
    itself by cube rotations); nnU-Net's Gaussian tile weighting does not (it is centred on voxel size // 2, off
    the centre of an even patch, and float16), so it is switched off here; logits are accumulated in float16,
    hence the 1e-3 tolerance."""
    from equivox.nnunet.evaluation import load_predictor

    _, _, res = tiny
    predictor = load_predictor(res["model_folder"], use_mirroring=True, use_gaussian=False)
    reader = predictor.plans_manager.image_reader_writer_class()
    img, props = reader.read_images([str(Path(res["raw"]) / "imagesTs" / "case_100_0000.nii.gz")])
    seg, prob = predictor.predict_single_npy_array(img, {"spacing": props["spacing"]}, None, None, True)
    assert prob.shape == (3, 16, 16, 16)
    assert prob.std(axis=(1, 2, 3)).max() > 1e-3  # not a constant prediction (a tiny CPU training may leave one
    # class nearly flat; the rotated comparison below is non-trivial as long as some class varies)
    for axes in ((1, 2), (2, 3), (1, 3)):  # quarter turns of the (C, D, H, W) image; outputs are (K, D, H, W)
        seg_r, prob_r = predictor.predict_single_npy_array(np.ascontiguousarray(np.rot90(img, 1, axes)),
                                                           {"spacing": props["spacing"]}, None, None, True)
        want_prob = np.rot90(prob, 1, axes)
        want_seg = np.rot90(seg, 1, (axes[0] - 1, axes[1] - 1))
        assert np.abs(prob_r - want_prob).max() < 1e-3, axes
        top2 = np.sort(want_prob, axis=0)[-2:]
        clear = (top2[1] - top2[0]) > 5e-3  # voxels whose argmax is not a float16 tie
        assert clear.mean() > 0.98
        assert np.array_equal(seg_r[clear], want_seg[clear]), axes
        # the check can fail: the un-rotated prediction differs from the rotated one
        assert np.abs(prob_r - prob).max() > 1e-2


def test_plans_command_writes_config_nnunet_reads(tiny, tmp_path):
    """`equivox nnunet plans` on the real plans nnU-Net's planner wrote; PlansManager + get_network_from_plans."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from equivox.cli import main

    out, _, _ = tiny
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
    net = build({"network_class_name": cm.network_arch_class_name, "arch_kwargs": cm.network_arch_init_kwargs,
                 "_kw_requires_import": cm.network_arch_init_kwargs_req_import})
    assert type(net) is EquivariantNnUNet and net.group == "octa" and net.keep == "params"
    assert net.fields_per_stage == tuple(max(1, round(f / 24 ** 0.5)) for f in [32, 64, 128])
    x = torch.randn(1, 1, 16, 16, 16)
    assert max(rel_errors(net, x, CUBE_ROTATIONS["diag_3fold"])) < TOL
    # the plain nnU-Net network of the same plans is not equivariant (the check can fail)
    plain = build({"network_class_name": parent.network_arch_class_name,
                   "arch_kwargs": parent.network_arch_init_kwargs,
                   "_kw_requires_import": parent.network_arch_init_kwargs_req_import})
    assert max(rel_errors(plain, x, CUBE_ROTATIONS["rot90_HW"])) > 1e-2


# ------------------------------------------------------------------------------------------------ networks
def test_isotropic_plan_network_exact_on_cube_rotations_with_deep_supervision():
    from dynamic_network_architectures.initialization.weight_init import InitWeights_He

    arch, patch = planned_arch((1.0, 1.0, 1.0), (32, 32, 32))
    assert arch["arch_kwargs"]["kernel_sizes"][0] == [3, 3, 3] and patch == [32, 32, 32]
    net = build(as_equivox(arch))
    assert type(net) is EquivariantNnUNet and net.group == "octa"
    net.apply(InitWeights_He(1e-2))  # nnU-Net's init applied once more: must not touch equivariant weights
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():
        outs = net(x)
    assert isinstance(outs, list) and len(outs) == arch["arch_kwargs"]["n_stages"] - 1
    for name, t in CUBE_ROTATIONS.items():
        errs = rel_errors(net, x, t)
        assert max(errs) < TOL, (name, errs)
    # nnU-Net's trainer switches deep supervision through decoder.deep_supervision
    net.decoder.deep_supervision = False
    with torch.no_grad():
        single = net(x)
    assert torch.allclose(single, outs[0], atol=1e-5)
    # the feature-map size hook the planner calls
    assert net.compute_conv_feature_map_size([32, 32, 32]) > 0


def test_anisotropic_plan_uses_axial_group_and_is_exact():
    from equivox.groups import available_groups

    arch, patch = planned_arch((3.0, 0.75, 0.75), (16, 64, 64))
    k, s = arch["arch_kwargs"]["kernel_sizes"], arch["arch_kwargs"]["strides"]
    assert k[0] == [1, 3, 3] and s[1] == [1, 2, 2]  # nnU-Net's anisotropic topology, thick axis first
    if "d4_axial_d" not in available_groups():
        with pytest.raises(ValueError, match=r"stage 0 has kernel \[1, 3, 3\].*axial group"):
            build(as_equivox(arch))
        pytest.skip("no axial group in equivox.groups yet: anisotropic plans raise (checked)")
    net = build(as_equivox(arch))
    assert net.group == "d4_axial_d"
    d, h, w = net.size_multiple
    x = torch.randn(1, 1, d, h, w)
    for name, t in {"rot90_HW": lambda t: torch.rot90(t, 1, (3, 4)), "rot180_DH": lambda t: torch.rot90(t, 2, (2, 3)),
                    "rot180_DW": lambda t: torch.rot90(t, 2, (2, 4))}.items():
        errs = rel_errors(net, x, t)
        assert max(errs) < TOL, (name, errs)
    # a reflection is not in D4 (rotations): the same check fails there
    assert max(rel_errors(net, x, lambda t: t.transpose(3, 4))) > 1e-2
    # a cube group cannot serve this plan: the error names the stage, kernel and stride
    with pytest.raises(ValueError, match=r"stage 0 has kernel \[1, 3, 3\] and stride \[1, 1, 1\]"):
        build(as_equivox(arch, group="octa"))


# ------------------------------------------------------------------------------------------------ errors
def test_unservable_plans_give_clear_errors(tmp_path):
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
    # even kernels, 2D conv ops, non-pointwise activations
    kw = dict(arch["arch_kwargs"], input_channels=1, num_classes=2)
    with pytest.raises(ValueError, match=r"stage 1 kernel \[2, 2, 2\]"):
        EquivariantNnUNet(**dict(kw, kernel_sizes=[[3, 3, 3], [2, 2, 2], [3, 3, 3], [3, 3, 3]]))
    with pytest.raises(ValueError, match="not 3D"):
        EquivariantNnUNet(**dict(kw, conv_op="torch.nn.modules.conv.Conv2d"))
    with pytest.raises(ValueError, match="pointwise"):
        EquivariantNnUNet(**dict(kw, nonlin="torch.nn.Softmax", nonlin_kwargs={"dim": 1}))
    # inputs that break the size rule
    net = EquivariantNnUNet(**kw)
    from equivox.nn import EquivarianceError

    with pytest.raises(EquivarianceError, match=r"spatial size \(12, 16, 16\) is not divisible by 8"):
        net(torch.randn(1, 1, 12, 16, 16))


def test_fields_rules_and_lazy_import():
    assert rules.fields_for_features([32, 64, 320], 24, "width") == (2, 3, 14)
    assert rules.fields_for_features([32, 64, 320], 24, "params") == (7, 13, 65)
    with pytest.raises(ValueError, match="keep"):
        rules.fields_for_features([32], 24, "memory")
    code = ("import sys, equivox, equivox.nnunet; from equivox.nnunet import EquivariantNnUNet; "
            "assert 'nnunetv2' not in sys.modules, 'equivox imported nnunetv2'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
