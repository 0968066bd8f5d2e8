"""equivox.nn.canonical: CanonicalPose maps a volume and its rotation to the same pose up to a cube rotation."""
import pytest
import torch

from equivox.groups import cube_rotations
from equivox.nn import CanonicalPose


def _blob():
    """An asymmetric mass (three different principal moments) inside a padded 16^3 box."""
    x = torch.zeros(1, 1, 16, 16, 16)
    x[0, 0, 5:11, 6:10, 7:9] = 1.0
    x[0, 0, 5:7, 6:8, 7:9] += 1.0
    return x


def test_rotated_input_gives_the_same_pose_up_to_a_cube_rotation():
    pose = CanonicalPose()
    x = _blob()
    ref = pose(x)
    y = pose(torch.rot90(x, 1, (2, 4)))  # a quarter turn written here
    best = min(float((g.apply(y) - ref).abs().max()) for g in cube_rotations())
    assert best < 1e-3 * float(ref.abs().max())


def test_output_mass_is_centred_with_principal_axes_on_the_tensor_axes():
    idx = torch.arange(16, dtype=torch.float64)
    d, h, w_ = torch.meshgrid(idx - 8.5, idx - 6.5, idx - 8.0, indexing="ij")  # off centre
    c, s = 0.8660254, 0.5  # a 30-degree turn in the (D, H) plane: axes not on the grid
    u, v = c * d + s * h, -s * d + c * h
    x = ((u / 5) ** 2 + (v / 3) ** 2 + (w_ / 2) ** 2 <= 1).float()[None, None]
    raw = x[0, 0].double().reshape(-1)
    assert _off_diagonal(raw) > 0.2  # the input's axes are not principal
    y = CanonicalPose()(x)[0, 0].double().reshape(-1)
    w = y / y.sum()
    assert torch.allclose(w @ COORDS, torch.full((3,), 7.5, dtype=torch.float64), atol=0.3)
    assert _off_diagonal(y) < 0.05


COORDS = torch.stack(torch.meshgrid(*(torch.arange(16, dtype=torch.float64),) * 3, indexing="ij"), -1).reshape(-1, 3)


def _off_diagonal(mass):
    """Largest off-diagonal entry of the mass covariance, relative to the largest entry."""
    w = mass / mass.sum()
    rel = COORDS - w @ COORDS
    cov = (w[:, None] * rel).T @ rel
    return float((cov - torch.diag(torch.diag(cov))).abs().max() / cov.abs().max())


def test_non_cubic_input_is_refused():
    with pytest.raises(ValueError, match="cubic volumes"):
        CanonicalPose()(torch.zeros(1, 1, 8, 8, 6))
