"""Register a symmetry group from user code and build, check and export equivox models with it.

The group here is C2: the two half turns about the W axis
(escnn's ``rot2dOnR3(n=2)`` conjugated onto W), a group equivox itself does not register. Run:

    python examples/custom_group.py
"""
import torch

from escnn import gspaces
from equivox.groups import AXIS_FRAMES, GroupSpec, get_group, register_group
from equivox.nets import EquivariantUNet, InvariantClassifier
from equivox.testing import equivariance_errors

spec = register_group(GroupSpec(
    "my_c2_about_w", "C2: half turns about the W axis (user-registered)", lambda: gspaces.rot2dOnR3(n=2),
    frame=AXIS_FRAMES["w"], exact_spacing="axial", slice_axis=2), replace=True)


def main() -> dict:
    group = get_group(spec.name)
    print(f"registered {group.name}: {len(group.grid_elements)} grid-exact elements "
          f"{[e.name for e in group.grid_elements]}, field size {group.field_size}")
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16, 8)
    results = {}
    for model in (EquivariantUNet(channels=(2, 4), strides=(2,), group=spec.name, out_channels=3),
                  InvariantClassifier(channels=(2, 4), strides=(2,), group=spec.name, out_channels=3)):
        model.eval()
        err = max(e.relative for e in equivariance_errors(model, x, spec.name))
        plain = model.export()
        diff = (plain(x) - model(x)).abs().max().item()
        name = type(model).__name__
        print(f"{name}: max relative equivariance error {err:.2e}; exported (plain torch) max abs diff {diff:.2e}")
        assert err < 1e-4 and diff < 1e-4, (name, err, diff)
        # a half turn about W, written with torch.rot90 here: the model's output follows it
        turn = lambda t: torch.rot90(t, 2, (2, 3))  # noqa: E731
        y = model(x)
        moved = (model(turn(x)) - (turn(y) if y.dim() == 5 else y)).abs().max().item() / y.abs().max().item()
        assert moved < 1e-4, moved
        results[name] = {"equivariance_error": err, "export_diff": diff}
    return results


if __name__ == "__main__":
    main()
