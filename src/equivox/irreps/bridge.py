"""Bridge between equivox field types and e3nn: ``FieldSpec`` <-> ``e3nn.o3.Irreps``, tensors in either layout, and
the Wigner-D action of a grid element on the channel axis.

**The frame (written once, here).** e3nn's vectors ``(x, y, z)`` are the tensor axes ``(D, H, W)`` of a
``(B, C, D, H, W)`` volume, as in e3nn's own voxel convolution (``meshgrid(x, y, z, indexing="ij")``). A
:class:`~equivox.groups.GridElement` with matrix ``M`` in ``(d, h, w)`` coordinates is therefore the rotation
``R = FRAME @ M @ FRAME.T`` of e3nn (``FRAME`` is the identity), and it acts on an irreps field by
``Irreps.D_from_matrix(R)`` (e3nn's l=1 basis is ``(y, z, x)``, i.e. ``(H, W, D)``; e3nn handles that ordering).

**escnn's side.** equivox's type system is escnn's: a field is an escnn representation of SO(3) / O(3). The
irreps of escnn and e3nn are the same up to a change of basis per ``l`` (and escnn's O(3) irrep ``(j, l)`` is
e3nn's ``l`` with parity ``(-1)^j``); :func:`intertwiner` solves for it from escnn's own group elements, so every
escnn representation of those groups has an e3nn layout (:func:`to_e3nn_matrix`). Fields of the irreps groups
(``so3_irreps``, ``o3_irreps``) are stored in e3nn's basis already (the matrix is the identity); the Fourier fields
of ``so3`` / ``o3`` need the matrix.

Public names: :data:`FRAME`, :func:`rotation_of`, :func:`spec_to_irreps`, :func:`irreps_to_spec`,
:func:`to_e3nn_matrix`, :func:`to_e3nn`, :func:`from_e3nn`, :func:`wigner_d`, :func:`irreps_repr`.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Tuple

import numpy as np
import torch

__all__ = ["FRAME", "rotation_of", "spec_to_irreps", "irreps_to_spec", "to_e3nn_matrix", "to_e3nn", "from_e3nn",
           "wigner_d", "irreps_repr", "intertwiner", "is_irreps_group"]

#: e3nn (x, y, z) = FRAME @ (d, h, w): the identity (e3nn's voxel convention: tensor axes are x, y, z).
FRAME = np.eye(3)


def rotation_of(element) -> torch.Tensor:
    """e3nn rotation matrix (float64, ``(3, 3)``, det +-1) of a :class:`~equivox.groups.GridElement` (or of a 3x3
    matrix in ``(d, h, w)`` coordinates)."""
    m = np.asarray(getattr(element, "matrix", element), dtype=float)
    return torch.from_numpy(FRAME @ m @ FRAME.T)


def _fibergroup(group):
    from ..groups import get_group

    return get_group(group).gspace.fibergroup


def _has_reflections(fibergroup) -> bool:
    return type(fibergroup).__name__ == "O3"


def is_irreps_group(group) -> bool:
    """Whether ``group``'s fields can be described by e3nn irreps (SO(3) or O(3): ``so3``, ``o3``, ``so3_irreps``,
    ``o3_irreps``, or any registered group on those escnn groups)."""
    return type(_fibergroup(group)).__name__ in ("SO3", "O3")


def _escnn_irrep_id(fibergroup, l: int, p: int):
    return (0 if p == 1 else 1, l) if _has_reflections(fibergroup) else (l,)


def _e3nn_ir(fibergroup, irrep_id) -> Tuple[int, int]:
    """escnn irrep id -> e3nn ``(l, p)``; SO(3) fields take e3nn's spherical-harmonic parity ``(-1)^l``."""
    if _has_reflections(fibergroup):
        j, l = irrep_id
        return int(l), (1 if j == 0 else -1)
    (l,) = irrep_id
    return int(l), (-1) ** int(l)


def _sample_elements(gspace, n: int, seed: int):
    """``n`` escnn elements of the gspace's group with their e3nn rotation matrices (seeded: deterministic)."""
    from scipy.spatial.transform import Rotation

    from ..groups import _escnn_to_tensor_frame

    g = gspace.fibergroup
    mats = Rotation.random(n, random_state=seed).as_matrix()
    out = []
    for i, m in enumerate(mats):
        el = g.element(((i % 2), m) if _has_reflections(g) else m, "MAT")
        r = _escnn_to_tensor_frame(np.asarray(gspace.basespace_action(el)))
        out.append((el, FRAME @ r @ FRAME.T))
    return out


@functools.lru_cache(maxsize=None)
def _intertwiner_cached(gspace_key, l: int, p: int) -> np.ndarray:
    gspace = _GSPACES[gspace_key]
    from e3nn import o3

    g = gspace.fibergroup
    irrep = g.irrep(*_escnn_irrep_id(g, l, p))
    n = 2 * l + 1
    rows = []
    samples = _sample_elements(gspace, 6, seed=11)
    for el, r in samples:
        d = o3.Irrep(l, p).D_from_matrix(torch.from_numpy(r)).numpy()
        psi = np.asarray(irrep(el), dtype=float)
        # D Q - Q psi = 0, vec(Q) row-major: (D kron I - I kron psi^T) vec(Q)
        rows.append(np.kron(d, np.eye(n)) - np.kron(np.eye(n), psi.T))
    _, s, vt = np.linalg.svd(np.concatenate(rows))
    q = vt[-1].reshape(n, n)
    if s[-1] > 1e-5 or (n > 1 and s[-2] < 1e-3):
        raise RuntimeError(f"no unique intertwiner between escnn's irrep {irrep.name} and e3nn's {l}{'eo'[p < 0]} "
                           f"(singular values {s[-2:]}): the frame or the parity convention is wrong")
    q = q / np.sqrt((q ** 2).sum() / n)  # orthogonal
    q = q * np.sign(q.flat[np.argmax(np.abs(q))])  # a fixed sign
    for el, r in samples:  # check on the samples: D(R) == Q psi(g) Q^T
        d = o3.Irrep(l, p).D_from_matrix(torch.from_numpy(r)).numpy()
        assert np.abs(d - q @ np.asarray(irrep(el)) @ q.T).max() < 1e-5
    return q


_GSPACES: Dict[str, object] = {}


def intertwiner(gspace, l: int, p: int) -> np.ndarray:
    """Orthogonal ``Q`` ``(2l+1, 2l+1)`` with ``D_e3nn(R(g)) = Q psi(g) Q^T`` for every element ``g`` of the
    gspace's SO(3) / O(3), ``psi`` escnn's irrep of the same ``l`` (and parity), ``R(g)`` in :data:`FRAME`."""
    key = type(gspace.fibergroup).__name__
    _GSPACES.setdefault(key, gspace)
    return _intertwiner_cached(key, int(l), int(p))


def irreps_repr(gspace, irreps, name: str):
    """escnn representation of the gspace's SO(3) / O(3) acting on vectors in e3nn's basis as
    ``o3.Irreps(irreps).D_from_matrix(R)`` (registered on the group under ``name``; built once per name)."""
    from e3nn import o3
    from escnn.group import change_basis, directsum
    from scipy.linalg import block_diag

    g = gspace.fibergroup
    if name in g.representations:
        return g.representations[name]
    irreps = o3.Irreps(irreps)
    if not _has_reflections(g) and any(p != (-1) ** l for _, (l, p) in irreps):
        raise ValueError(f"irreps {irreps} on SO(3): use e3nn's spherical-harmonic parities (0e, 1o, 2e, ...)")
    blocks, reps = [], []
    for mul, (l, p) in irreps:
        for _ in range(mul):
            reps.append(g.irrep(*_escnn_irrep_id(g, l, p)))
            blocks.append(intertwiner(gspace, l, p))
    rep = change_basis(directsum(reps), block_diag(*blocks), name)
    g.representations[name] = rep
    return rep


def _repr_layout(gspace, rep) -> Tuple[List[Tuple[int, int]], np.ndarray]:
    """``(e3nn irreps [(l, p)] in order, B (size, size))`` with ``B @ x`` the e3nn-basis coordinates of a vector
    ``x`` of the escnn representation ``rep`` of the gspace's SO(3) / O(3)."""
    from scipy.linalg import block_diag

    irs = [_e3nn_ir(gspace.fibergroup, i) for i in rep.irreps]
    q = block_diag(*[intertwiner(gspace, l, p) for l, p in irs])
    b = q @ np.asarray(rep.change_of_basis_inv, dtype=float)
    b[np.abs(b) < 1e-12] = 0.0  # exact zeros (and an exact identity for fields already in e3nn's basis)
    return irs, b


def _irreps_of(pairs: List[Tuple[int, int]]):
    """e3nn ``Irreps`` of an ordered list of ``(l, p)``, consecutive equal ones merged (order kept)."""
    from e3nn import o3

    out: List[Tuple[int, Tuple[int, int]]] = []
    for lp in pairs:
        if out and out[-1][1] == lp:
            out[-1] = (out[-1][0] + 1, lp)
        else:
            out.append((1, lp))
    return o3.Irreps(out)


def _spec_pairs(spec) -> List[List[Tuple[int, int]]]:
    gspace = spec.group_obj.gspace
    return [_repr_layout(gspace, r)[0] for r in spec.representations()]


def spec_to_irreps(spec):
    """e3nn ``Irreps`` of a :class:`~equivox.nn.FieldSpec` of an SO(3) / O(3) group (channel order kept; for the
    Fourier fields of ``so3`` / ``o3`` the tensor must be moved with :func:`to_e3nn`, their basis differs).

    Raises ``ValueError`` for a group that is not SO(3) / O(3)."""
    if not is_irreps_group(spec.group):
        raise ValueError(f"group {spec.group!r} is not SO(3) or O(3): its fields have no e3nn irreps")
    return _irreps_of([lp for field in _spec_pairs(spec) for lp in field])


def irreps_to_spec(irreps, group):
    """:class:`~equivox.nn.FieldSpec` of ``group`` (an SO(3) / O(3) group) for a tensor with e3nn ``irreps``.

    Read from the left: where the group's hidden field begins, a hidden field; a ``0e``, a scalar (trivial) field;
    any other irrep, one field of that irrep alone (an escnn representation in e3nn's basis, registered as
    ``"e3nn_<l><p>"``). So ``irreps_to_spec(spec_to_irreps(spec), spec.group) == spec`` for specs of hidden and
    scalar fields. Raises ``ValueError`` for parities that do not exist in an SO(3) group (use ``1o``, ``2e``)."""
    from e3nn import o3

    from ..groups import get_group
    from ..nn.fields import FieldSpec

    g = get_group(group)
    if not is_irreps_group(g.name):
        raise ValueError(f"group {g.name!r} is not SO(3) or O(3): e3nn irreps cannot be fields of it")
    fib = g.gspace.fibergroup
    hidden, _ = _repr_layout(g.gspace, g.hidden_repr)
    pairs = [(ir.l, ir.p) for mul, ir in o3.Irreps(irreps) for _ in range(mul)]
    if not _has_reflections(fib):
        bad = [f"{l}{'eo'[p < 0]}" for l, p in pairs if p != (-1) ** l]
        if bad:
            raise ValueError(f"irreps {irreps} on the SO(3) group {g.name!r}: {bad} have the wrong parity (SO(3) "
                             "fields use e3nn's spherical-harmonic parities 0e, 1o, 2e, ...)")
    names, i = [], 0
    while i < len(pairs):
        if pairs[i:i + len(hidden)] == hidden:
            names.append(g.hidden_repr.name)
            i += len(hidden)
        elif pairs[i] == (0, 1):
            names.append(g.gspace.trivial_repr.name)
            i += 1
        else:
            l, p = pairs[i]
            names.append(irreps_repr(g.gspace, f"1x{l}{'eo'[p < 0]}", f"e3nn_{l}{'eo'[p < 0]}").name)
            i += 1
    return FieldSpec(g.name, tuple(names))


def to_e3nn_matrix(spec) -> torch.Tensor:
    """``B`` ``(C, C)`` (float32): ``B @ x`` are the e3nn-basis coordinates (irreps :func:`spec_to_irreps`) of the
    channels ``x`` of ``spec``. Orthogonal; the identity for the fields of the irreps groups."""
    from scipy.linalg import block_diag

    gspace = spec.group_obj.gspace
    return torch.from_numpy(block_diag(*[_repr_layout(gspace, r)[1] for r in spec.representations()])).float()


def to_e3nn(x: torch.Tensor, spec) -> torch.Tensor:
    """equivox features ``(B, C, D, H, W)`` of ``spec`` -> e3nn layout ``(B, D, H, W, C)`` in e3nn's basis (irreps
    :func:`spec_to_irreps`): what ``e3nn.o3.Linear``, ``e3nn.nn.Gate`` etc. take (channels last)."""
    b = to_e3nn_matrix(spec).to(x)
    return torch.einsum("ij,bj...->b...i", b, x)


def from_e3nn(z: torch.Tensor, spec) -> torch.Tensor:
    """Inverse of :func:`to_e3nn`: e3nn ``(B, D, H, W, C)`` -> equivox ``(B, C, D, H, W)`` of ``spec``."""
    b = to_e3nn_matrix(spec).to(z)
    return torch.einsum("ji,b...j->bi...", b, z).contiguous()


def wigner_d(element, spec) -> torch.Tensor:
    """Matrix ``(C, C)`` (float32) of the grid element's action on the channels of ``spec``, from e3nn:
    ``B^T Irreps.D_from_matrix(R) B`` with ``R`` = :func:`rotation_of` and ``B`` = :func:`to_e3nn_matrix`. A
    feature map ``f`` transforms as ``f'(p) = wigner_d(g) f(M^{-1} p)``, i.e. ``torch.einsum("ij,bj...->bi...",
    wigner_d(g, spec), g.apply(f))``."""
    b = to_e3nn_matrix(spec).double()
    d = spec_to_irreps(spec).D_from_matrix(rotation_of(element))
    return (b.T @ d @ b).float()
