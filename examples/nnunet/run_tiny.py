"""nnU-Net v2 end to end with an equivariant network, on a tiny synthetic dataset, on CPU (a few minutes, 2 cores).

    python examples/nnunet/run_tiny.py --out /tmp/equivox-nnunet

Steps (everything except the dataset is nnU-Net's own code):
1. writes 5 training cases + 1 held-out case (16^3 voxels, 1 mm, two classes: bright balls and dark boxes) in
   nnU-Net's raw format under OUT/nnUNet_raw/Dataset{ID}_EquivoxTiny (``nnUNet_raw``, ``nnUNet_preprocessed`` and
   ``nnUNet_results`` are set to folders in OUT before nnunetv2 is imported);
2. runs nnU-Net's fingerprint extraction, planning and preprocessing (3d_fullres, one process);
3. derives ``3d_fullres_equivox`` (:func:`equivox.nnunet.add_equivox_configuration`, = ``equivox nnunet plans``);
4. trains fold 0 with nnU-Net's default ``nnUNetTrainer`` on CPU, as ``nnUNetv2_train ID 3d_fullres_equivox 0``
   does (``get_trainer_from_args`` -> ``run_training``; ``--validate`` adds its final ``perform_actual_validation``),
   with the schedule cut to 3 epochs x 8 iterations (+1 validation iteration per epoch);
5. predicts the held-out case with ``nnUNetPredictor`` into OUT/pred (``case_100.nii.gz``);
6. prints the trained network class and its equivariance error (24 cube rotations, every deep-supervision output),
   and scores the model under a few cube and random rotations (:func:`equivox.nnunet.evaluate_nnunet_model`, no
   mirroring, uniform tile weights: nnU-Net's float16 Gaussian is slightly off-centre, see docs/nnunet.md).
A JSON summary is written to OUT/run_tiny.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DATASET_ID = 501
DATASET_NAME = f"Dataset{DATASET_ID:03d}_EquivoxTiny"
SIZE = 16
N_TRAIN = 5
EPOCHS, ITERS, LR = 3, 8, 1e-2  # nnU-Net's default is 1000 x 250 at lr 1e-2


def make_case(rng: np.random.Generator, size: int = SIZE):
    """One synthetic volume ``(D, H, W)`` float32 and its labels (0 background, 1 balls, 2 boxes)."""
    image = rng.normal(0.0, 0.3, (size,) * 3).astype(np.float32)
    label = np.zeros((size,) * 3, dtype=np.uint8)
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij"), -1).astype(np.float32)
    for cls in (1, 2):
        c = rng.uniform(5.5, size - 5.5, 3)
        if cls == 1:
            r = rng.uniform(3.5, 5.0)
            mask = ((grid - c) ** 2).sum(-1) <= r * r
        else:
            half = rng.uniform(2.5, 4.0, 3)
            mask = (np.abs(grid - c) <= half).all(-1)
        label[mask] = cls
    image += np.where(label == 1, 2.0, np.where(label == 2, -2.0, 0.0)).astype(np.float32)
    return image, label


def write_dataset(raw: Path, seed: int = 0) -> Path:
    """nnU-Net raw dataset (imagesTr/labelsTr/imagesTs/labelsTs + dataset.json) of NIfTI files, 1 mm isotropic."""
    import nibabel as nib

    root = raw / DATASET_NAME
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    affine = np.eye(4)
    cases = [(f"case_{i:03d}", "Tr") for i in range(N_TRAIN)] + [("case_100", "Ts")]
    for name, split in cases:
        image, label = make_case(rng)
        nib.save(nib.Nifti1Image(image, affine), str(root / f"images{split}" / f"{name}_0000.nii.gz"))
        nib.save(nib.Nifti1Image(label, affine), str(root / f"labels{split}" / f"{name}.nii.gz"))
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    generate_dataset_json(str(root), channel_names={0: "MRI"},
                          labels={"background": 0, "ball": 1, "box": 2}, num_training_cases=N_TRAIN,
                          file_ending=".nii.gz", dataset_name=DATASET_NAME)
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="working folder (nnU-Net raw/preprocessed/results, predictions)")
    ap.add_argument("--group", default=None, help="group (default: from the plan, octa for this isotropic data)")
    ap.add_argument("--keep", default="width", choices=["width", "params"], help="features -> fields rule")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--validate", action="store_true", help="also run nnU-Net's final validation of fold 0 "
                                                             "(as nnUNetv2_train does; ~15 s more)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # nnU-Net reads its folders (and worker counts) from the environment at import time
    os.environ["nnUNet_raw"] = str(out / "nnUNet_raw")
    os.environ["nnUNet_preprocessed"] = str(out / "nnUNet_preprocessed")
    os.environ["nnUNet_results"] = str(out / "nnUNet_results")
    os.environ["nnUNet_n_proc_DA"] = str(args.threads)  # the planner sets torch threads to this
    os.environ.setdefault("nnUNet_def_n_proc", "1")
    os.environ.setdefault("nnUNet_compile", "false")
    import torch

    torch.set_num_threads(args.threads)
    from equivox.nnunet import NETWORK_CLASS, add_equivox_configuration, evaluate_nnunet_model
    raw = write_dataset(out / "nnUNet_raw")
    print(f"[run_tiny] dataset: {raw} ({N_TRAIN} training cases + 1 held-out, {SIZE}^3)", flush=True)

    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                      preprocess)

    extract_fingerprints([DATASET_ID], num_processes=1, check_dataset_integrity=True, verbose=False)
    plan_experiments([DATASET_ID])
    preprocess([DATASET_ID], configurations=("3d_fullres",), num_processes=(1,), verbose=False)
    summary = add_equivox_configuration(DATASET_ID, "3d_fullres", group=args.group, keep=args.keep)
    print(f"[run_tiny] derived {summary['configuration']}: group {summary['group']}, features "
          f"{summary['features_per_stage']} -> fields {summary['fields_per_stage']}, patch {summary['patch_size']}",
          flush=True)

    from nnunetv2.run.run_training import get_trainer_from_args

    os.environ["nnUNet_n_proc_DA"] = "0"  # training: data augmentation in the main process (no worker processes)
    torch.set_num_threads(args.threads)
    trainer_name, config = "nnUNetTrainer", summary["configuration"]
    t_train = time.perf_counter()
    trainer = get_trainer_from_args(str(DATASET_ID), config, 0, trainer_name, device=torch.device("cpu"))
    trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch = EPOCHS, ITERS, 1
    trainer.initial_lr = LR
    trainer.run_training()
    if args.validate:
        trainer.perform_actual_validation(False)
    t_train = time.perf_counter() - t_train
    model_folder = out / "nnUNet_results" / DATASET_NAME / f"{trainer_name}__nnUNetPlans__{config}"

    from equivox.nnunet.evaluation import load_predictor, network_equivariance_errors

    predictor = load_predictor(model_folder, folds=(0,), checkpoint_name="checkpoint_final.pth")
    pred_dir = out / "pred"
    pred_dir.mkdir(exist_ok=True)
    predictor.predict_from_files_sequential(str(raw / "imagesTs"), str(pred_dir), save_probabilities=False,
                                            overwrite=True, folder_with_segs_from_prev_stage=None)
    pred_file = pred_dir / "case_100.nii.gz"
    if not pred_file.is_file():
        raise SystemExit(f"[run_tiny] prediction {pred_file} was not written")

    net = predictor.network
    net.load_state_dict(predictor.list_of_parameters[0])
    net.deep_supervision = True
    cls = type(net).__module__ + "." + type(net).__name__
    patch = summary["patch_size"]
    x = torch.randn(1, 1, *patch, generator=torch.Generator().manual_seed(0))
    errs = network_equivariance_errors(net, x)
    net.deep_supervision = False
    print(f"[run_tiny] trained network class: {cls} (group {net.group}, fields {list(net.fields_per_stage)}, "
          f"{sum(p.numel() for p in net.parameters())} parameters)")
    print(f"[run_tiny] equivariance error (max relative over {net.group}'s grid elements, trained weights, "
          f"input {list(patch)}): " + ", ".join(f"{e:.2e}" for e in errs) + " (outputs, highest resolution first)")

    from equivox.evaluation import rotation_set

    rots = rotation_set("grid", group=net.group)[:4] + rotation_set("so3", n_random=2, seed=0)[1:]
    rep = evaluate_nnunet_model(model_folder, [(raw / "imagesTs" / "case_100_0000.nii.gz",
                                                raw / "labelsTs" / "case_100.nii.gz")], rots, use_mirroring=False,
                                use_gaussian=False)  # uniform tile weights: exact under grid rotations
    dice = {r["rotation"]: r["dice"] for r in rep.rows}
    print("[run_tiny] held-out Dice per rotation: " + ", ".join(f"{k} {v:.3f}" for k, v in dice.items()))
    wall = time.perf_counter() - t0
    print(f"[run_tiny] prediction: {pred_file}")
    print(f"[run_tiny] wall time {wall:.1f} s (training {t_train:.1f} s)")
    result = {"network_class": cls, "expected_class": NETWORK_CLASS, "group": net.group,
              "fields_per_stage": list(net.fields_per_stage), "equivariance_errors": errs,
              "prediction": str(pred_file), "model_folder": str(model_folder), "dataset_id": DATASET_ID,
              "configuration": config, "trainer": trainer_name, "patch_size": patch, "dice": dice,
              "wall_s": round(wall, 1), "train_s": round(t_train, 1), "raw": str(raw)}
    (out / "run_tiny.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
