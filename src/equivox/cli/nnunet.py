"""``equivox nnunet plans``: derive an equivariant configuration in nnU-Net plans (docs/nnunet.md)."""
from __future__ import annotations

from ._common import CLIError, user_input

NAME = "nnunet"


def add_parser(sub):
    p = sub.add_parser(NAME, help="nnU-Net v2: derive an equivariant configuration in nnU-Net plans",
                       description="nnU-Net v2 integration (needs pip install equivox[nnunet]); see docs/nnunet.md.")
    nsub = p.add_subparsers(dest="nnunet_command", metavar="ACTION")
    nsub.required = True
    q = nsub.add_parser("plans", help="add <configuration>_equivox to a dataset's nnUNetPlans.json",
                        description="Add an equivariant configuration that inherits from a planned one (same "
                                    "preprocessed data) to $nnUNet_preprocessed/DatasetXXX_*/nnUNetPlans.json; then "
                                    "run nnUNetv2_train N <configuration>_equivox FOLD unchanged.")
    q.add_argument("--dataset-id", dest="dataset_id", default=None, help="dataset id (e.g. 4) or DatasetXXX_Name")
    q.add_argument("--configuration", default="3d_fullres", help="planned 3D configuration to derive from")
    q.add_argument("--group", default=None, help="group (default: from the plan: --cube-group if isotropic, an "
                                                  "axial group if anisotropic)")
    q.add_argument("--cube-group", dest="cube_group", default="octa", help="group for isotropic plans (octa, "
                                                                           "full_octa, ...)")
    q.add_argument("--keep", default="width", choices=["width", "params"],
                   help="features -> fields: keep nnU-Net's tensor width (default) or its parameter count")
    q.add_argument("--name", default=None, help="name of the new configuration (default <configuration>_equivox)")
    q.add_argument("--plans", default="nnUNetPlans", help="plans identifier (file stem)")
    q.add_argument("--plans-file", dest="plans_file", default=None, help="edit this plans JSON file directly")
    q.add_argument("--preprocessed", default=None, help="nnU-Net preprocessed folder (default $nnUNet_preprocessed)")
    q.add_argument("--keep-patch", dest="keep_patch", action="store_true",
                   help="keep a planned patch the group does not map onto itself")
    q.add_argument("--dry-run", dest="dry_run", action="store_true", help="check and print, write nothing")
    return p


def run(args) -> int:
    from ..nnunet.plans import run_plans_command

    if args.dataset_id is None and args.plans_file is None:
        raise CLIError("give --dataset-id N (or --plans-file FILE)")
    with user_input():  # the plans checks report a plans file or options that do not fit as ValueError
        return run_plans_command(args)
