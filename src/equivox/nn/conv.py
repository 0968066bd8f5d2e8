"""Steerable 3D convolution on escnn's kernel bases, built for speed and robustness.

escnn's ``R3Conv`` solves for the most general equivariant kernel between two field types. equivox uses it to
compute that kernel basis (once per pair of representations and kernel size, then stored in the disk cache,
:mod:`equivox.cache`), and runs the convolution as a plain ``torch.nn.functional.conv3d`` on the filter
``sum_b w_b * basis_b``. Compared with using ``R3Conv`` directly this module

* builds in milliseconds once the basis is cached, with a fast He initialisation (escnn's takes minutes when wide);
* has one ``state_dict`` in train and eval mode and one weight tensor per representation pair, in sorted order;
* stores a fingerprint of its basis in the ``state_dict``: weights made with a basis ordered or signed otherwise
  (another process or escnn build) are remapped, any other mismatch fails loudly;
* pickles (no escnn object is stored), and exports to ``torch.nn.Conv3d`` (:meth:`to_conv3d`).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .._escnn import ESCNN_VERSION, enn, quiet
from ..cache import cached_tensors
from .fields import FieldSpec
from .module import EquivariantModule, as_field_spec

__all__ = ["EquivariantConv3d", "pair_basis"]

_FINGERPRINT_PROBES = 4


def pair_basis(group, in_repr, out_repr, kernel_size: int) -> Dict[str, torch.Tensor]:
    """Kernel basis between one input field and one output field (escnn ``R3Conv``'s, cached on disk).

    Returns ``{"basis": (n_basis, out_size, in_size, k**3), "bias": (out_size, n_bias)}`` where ``bias`` maps the
    trivial components of the output field to its channels (``n_bias`` may be 0).
    """
    data = _pair_data(group, in_repr, out_repr, kernel_size)
    return {"basis": data["basis"], "bias": data["bias"]}


# In-process memo of the (validated) disk-cache entries and of the per-basis numbers derived from them: every layer
# with the same pair of representations shares one read-only basis tensor, and the file is read, checksummed,
# fingerprinted and measured once per process instead of once per layer.
_PAIR_MEMO: Dict[str, Dict[str, object]] = {}


def _pair_key(group_name: str, in_repr, out_repr, kernel_size: int) -> str:
    return (
        f"basis|escnn={ESCNN_VERSION}|group={group_name}|in={in_repr.name}|out={out_repr.name}|k={kernel_size}"
        f"|sizes={in_repr.size},{out_repr.size}"
    )


def _pair_data(group, in_repr, out_repr, kernel_size: int) -> Dict[str, object]:
    """``pair_basis`` plus ``fingerprint`` and ``energy`` (per output channel and input field), memoized."""
    from ..groups import get_group

    g = get_group(group)
    key = _pair_key(g.name, in_repr, out_repr, kernel_size)
    hit = _PAIR_MEMO.get(key)
    if hit is not None:
        return hit
    tensors = g.spec.fields.kernel_basis(g, in_repr, out_repr, kernel_size)  # the field kind's own basis, if any
    if tensors is None:
        tensors = _load_pair_basis(g, in_repr, out_repr, kernel_size, key)
    basis = tensors["basis"]
    data: Dict[str, object] = {
        "basis": basis,
        "bias": tensors["bias"],
        "fingerprint": _fingerprint(basis),
        "energy": basis.pow(2).sum(dim=(0, 2, 3)).mean().item() if basis.shape[0] else 0.0,
        "compressed": _compress(basis),
    }
    _PAIR_MEMO[key] = data
    return data


def _compress(basis: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """``(values (n_b, n_u), index (o * i * S,))`` with ``basis.reshape(n_b, -1) == values[:, index]``, or None.

    For fields on which the grid-exact elements act by permutations (regular and scalar fields of ``octa`` /
    ``full_octa``, the grid-exact subgroup of ``ico``) an equivariant kernel is constant on the orbits of
    (output channel, input channel, kernel tap): every basis element has the same value on a whole orbit. Storing
    one column per orbit makes the per-step filter expansion ``weights @ basis`` ~|G| times cheaper (a gather
    restores the full filter). Columns are grouped when they agree to 1e-6 of the largest basis value; each group
    gets its mean (exactly constant on the orbit). Returns None when grouping saves less than half the columns
    (e.g. the Fourier fields of ``so3``/``o3``).
    """
    n_b = basis.shape[0]
    if n_b == 0:
        return None
    flat = basis.reshape(n_b, -1)
    probes = torch.randn(3, n_b, generator=torch.Generator().manual_seed(0), dtype=flat.dtype) / n_b ** 0.5
    proj = probes @ flat  # (3, N): equal columns have equal projections
    scale = proj.abs().max().clamp_min(1e-30)
    _, index = torch.unique(torch.round(proj[:2] / (scale * 1e-5)).long(), dim=1, return_inverse=True)
    n_u = int(index.max()) + 1
    if n_u > flat.shape[1] // 2:
        return None
    values = torch.zeros(n_b, n_u, dtype=torch.float64).index_add_(1, index, flat.double())
    values = (values / torch.bincount(index, minlength=n_u).double()).to(flat.dtype)
    # a third, independent projection exposes two different columns that shared a key: then do not group
    if ((probes[2] @ values)[index] - proj[2]).abs().max() > 1e-4 * scale:
        return None
    return values, index


def _load_pair_basis(g, in_repr, out_repr, kernel_size: int, key: str) -> Dict[str, torch.Tensor]:
    """Read the basis from the disk cache, or build it with escnn's ``R3Conv`` (and store it)."""

    def build():
        gs = g.gspace
        with quiet():
            conv = enn.R3Conv(
                enn.FieldType(gs, [in_repr]), enn.FieldType(gs, [out_repr]), kernel_size,
                padding=0, bias=True, initialize=False,
            )
        expansion = conv.basisexpansion
        pair = (in_repr.name, out_repr.name)
        if pair in expansion._representations_pairs:
            block = getattr(expansion, f"block_expansion_{expansion._escape_pair(pair)}")
            basis = block.sampled_basis.detach().clone()
        else:  # no equivariant kernel exists between these two fields
            basis = torch.zeros(0, out_repr.size, in_repr.size, kernel_size ** 3)
        bias = conv.bias_expansion.detach().clone() if conv.bias is not None else torch.zeros(out_repr.size, 0)
        frame = tuple(g.spec.frame)
        if frame != (0, 1, 2) and basis.shape[0]:  # conjugate the group: sample the kernel with permuted axes
            k = kernel_size
            basis = basis.reshape(*basis.shape[:3], k, k, k).permute(0, 1, 2, *(3 + a for a in frame))
            basis = basis.reshape(*basis.shape[:3], k ** 3)
        return {"basis": basis.float().contiguous(), "bias": bias.float()}

    return cached_tensors(key, build)


def _fingerprint(basis: torch.Tensor) -> torch.Tensor:
    """Order- and sign-revealing signature of each basis element: projections on fixed pseudo-random probes."""
    gen = torch.Generator().manual_seed(1234)
    probes = torch.randn(basis[0].numel() if basis.shape[0] else 1, _FINGERPRINT_PROBES, generator=gen,
                         dtype=torch.float64)
    return basis.reshape(basis.shape[0], -1).double() @ probes if basis.shape[0] else torch.zeros(0, 4)


#: the largest filter block (entries) expanded by ``torch.take`` with a full-size index (an int64 per filter entry,
#: shared by the layers of the same shape); larger blocks gather columns with ``index_select`` (an index
#: ``n_out`` times smaller, two views more per step)
TAKE_MAX_ENTRIES = 1 << 22


def _expansion(data: Dict[str, object], n_in: int, n_out: int, kernel_size: int
               ) -> Tuple[str, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``(layout, matrix, column, index)`` of a layer with ``n_out`` x ``n_in`` fields of this pair, memoized in the
    pair's data (layers of the same shape share the tensors).

    The layer's filter block ``(n_out, o, n_in, i, S)`` (output field, its channel, input field, its channel, tap) is
    ``F[x, o, y, i, s] = sum_b w[x, y, b] basis[b, o, i, s]``; ``f = bmm(w, matrix)`` (``(n_out, n_in, n_cols)``)
    gives it, by the layout (:func:`_layout`):

    * ``"direct"``: ``f`` already holds ``F`` in memory order (a view); ``matrix`` is the full basis
      ``(n_b, o * i * S)`` (decompressed: the very numbers the gathers read);
    * ``"take"`` / ``"select"``: one gather of ``f`` by ``index`` (:func:`_gather_index`); ``matrix`` is the
      orbit-compressed basis (``column``: the column of each entry ``(o, i, s)`` of the full basis,
      ``basis[b, o, i, s] = matrix[b, column(o, i, s)]``) or, when the basis does not compress, the full one
      (``column`` None).

    Each is a pure reordering of the one product: every filter entry is the same sum of the same terms.
    """
    basis = data["basis"]
    o, i = basis.shape[1], basis.shape[2]
    memo = data.setdefault("expansions", {})
    layout = _layout(o, i, kernel_size, n_in, n_out)
    key = (layout, n_in, n_out, kernel_size)
    hit = memo.get(key)
    if hit is None:
        compressed = data["compressed"]
        values, column = compressed if compressed is not None else (basis.reshape(basis.shape[0], -1), None)
        if layout == "direct":  # one decompressed basis for every direct layer of the pair
            if "direct" not in memo:
                memo["direct"] = values if column is None else values.index_select(1, column).contiguous()
            hit = (layout, memo["direct"], None, None)
        else:
            hit = (layout, values, column,
                   _gather_index(layout, column, values.shape[1], o, i, kernel_size, n_in, n_out))
        memo[key] = hit
    return hit


def _layout(o: int, i: int, kernel_size: int, n_in: int, n_out: int) -> str:
    """``"direct"`` when ``n_in == 1`` or ``o == 1`` (the product's rows ``(x, y)`` and columns ``(o, i, s)`` are
    the filter's memory order), else ``"take"`` (``torch.take`` with an index of the block's shape), or
    ``"select"`` for a block of more than :data:`TAKE_MAX_ENTRIES` entries (``index_select`` along the columns with
    an index ``n_out`` times smaller, then a view)."""
    if n_in == 1 or o == 1:
        return "direct"
    return "take" if n_out * o * n_in * i * kernel_size ** 3 <= TAKE_MAX_ENTRIES else "select"


def _gather_index(layout: str, column: Optional[torch.Tensor], n_cols: int, o: int, i: int, kernel_size: int,
                  n_in: int, n_out: int) -> torch.Tensor:
    """The gather index of a ``"take"`` / ``"select"`` layout over ``f = bmm(w, matrix)`` (``n_cols`` columns;
    ``column`` None: the identity).

    ``"select"``: ``index[(o, y, i, s)] = y * n_cols + column(o, i, s)``, so that
    ``f.view(n_out, n_in * n_cols).index_select(1, index)`` is the block ``(n_out, o, n_in, i, S)``;
    ``"take"``: ``index[x, o, y, i, s] = x * n_in * n_cols + y * n_cols + column(o, i, s)`` shaped as the block
    ``(n_out * o, n_in * i, k, k, k)`` (``torch.take(f, index)`` is the block)."""
    taps = kernel_size ** 3
    if column is None:
        column = torch.arange(o * i * taps)
    select = (torch.arange(n_in, device=column.device).reshape(1, n_in, 1, 1) * n_cols
              + column.reshape(o, 1, i, taps)).reshape(-1)
    if layout == "select":
        return select.contiguous()
    per_out = n_in * n_cols
    return (torch.arange(n_out, device=column.device).reshape(n_out, 1) * per_out + select.reshape(1, -1)
            ).reshape(n_out * o, n_in * i, kernel_size, kernel_size, kernel_size)


def _take_allowed(f: torch.Tensor) -> bool:
    """Whether the filter may be gathered by ``torch.take``: its backward (``put_`` with accumulation) has no
    deterministic kernel off the CPU, so with deterministic algorithms on (``deterministic: true``) a GPU gathers
    the same entries with ``index_select`` instead (deterministic backward, same forward values)."""
    return f.device.type == "cpu" or not torch.are_deterministic_algorithms_enabled()


def _same_indices(reprs: Tuple[str, ...], sizes: Dict[str, int], name: str) -> torch.Tensor:
    idx, pos = [], 0
    for r in reprs:
        if r == name:
            idx.extend(range(pos, pos + sizes[r]))
        pos += sizes[r]
    return torch.tensor(idx, dtype=torch.long)


class EquivariantConv3d(EquivariantModule):
    """Equivariant 3D convolution between two field types (stride 1, "same" padding).

    Args:
        in_type: input field type: an escnn ``FieldType`` or a :class:`FieldSpec`.
        out_type: output field type, same group.
        kernel_size: odd kernel size (an even size has no centre voxel and cannot be exactly equivariant).
        bias: learn a bias on the trivial (invariant) components of the output fields.
        padding_mode: ``"zeros"`` (default) or any mode of ``torch.nn.functional.pad`` that is symmetric
            (``"reflect"``, ``"replicate"``, ``"circular"``).

    Shapes: ``(B, in_type.size, D, H, W) -> (B, out_type.size, D, H, W)``. Plain tensors in and out; an escnn
    ``GeometricTensor`` of type ``in_type`` is accepted too and a ``GeometricTensor`` is then returned.

    Exactness: equivariant to float rounding for the group's grid-exact elements (the kernel is sampled on the
    voxel grid, which those elements permute); for other elements of ``ico``/``so3``/``o3`` up to the
    discretisation of the kernel.
    """

    def __init__(self, in_type, out_type, kernel_size: int = 3, bias: bool = True, padding_mode: str = "zeros"):
        super().__init__()
        group = next((t.group for t in (out_type, in_type) if isinstance(t, FieldSpec)), None)
        self.in_spec = as_field_spec(in_type, group)
        if isinstance(out_type, FieldSpec) and out_type.group != self.in_spec.group:
            raise TypeError(f"input fields of group {self.in_spec.group!r}, output of {out_type.group!r}")
        self.out_spec = as_field_spec(out_type, self.in_spec.group)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive for exact equivariance, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.padding_mode = padding_mode
        self.in_channels = self.in_spec.size
        self.out_channels = self.out_spec.size

        in_reps = {r.name: r for r in self.in_spec.representations()}
        out_reps = {r.name: r for r in self.out_spec.representations()}
        sizes = {**{n: r.size for n, r in in_reps.items()}, **{n: r.size for n, r in out_reps.items()}}
        self._pairs: List[Tuple[str, str]] = []
        self._pair_sizes: List[Tuple[int, int]] = []  # (output field size, input field size) per pair
        self._layouts: List[str] = []  # "direct", "take" or "select" per pair (_expansion)
        fan_in = self.in_channels * self.kernel_size ** 3
        for in_name, out_name in sorted((a, b) for a in in_reps for b in out_reps):
            tensors = _pair_data(self.in_spec.group, in_reps[in_name], out_reps[out_name], self.kernel_size)
            basis = tensors["basis"]
            if basis.shape[0] == 0:
                continue
            k = len(self._pairs)
            self._pairs.append((in_name, out_name))
            n_in = self.in_spec.reprs.count(in_name)
            n_out = self.out_spec.reprs.count(out_name)
            self._pair_sizes.append((basis.shape[1], basis.shape[2]))
            # how the filter is expanded (_expansion): the matrix the weights multiply, the gather index and the
            # orbit column of each basis entry it is made from (kept: pickles carry it instead of the index)
            layout, matrix, column, index = _expansion(tensors, n_in, n_out, self.kernel_size)
            self._layouts.append(layout)
            self.register_buffer(f"basis_{k}", matrix, persistent=False)
            self.register_buffer(f"column_{k}", column, persistent=False)
            self.register_buffer(f"index_{k}", index, persistent=False)
            self.register_buffer(f"basis_fingerprint_{k}", tensors["fingerprint"].clone())
            self.register_buffer(f"in_index_{k}", _same_indices(self.in_spec.reprs, sizes, in_name), persistent=False)
            self.register_buffer(f"out_index_{k}", _same_indices(self.out_spec.reprs, sizes, out_name),
                                 persistent=False)
            # He rule (as escnn's generalized_he_init): each output channel receives variance 2 / fan_in per input
            # channel and kernel tap, i.e. 2 in total; the basis decides how the weight variance spreads.
            energy = tensors["energy"]  # mean squared basis norm per output channel and input field
            std = math.sqrt(2.0 * (n_in * in_reps[in_name].size * self.kernel_size ** 3 / fan_in) / (n_in * energy))
            self.register_parameter(f"weight_{k}", nn.Parameter(torch.randn(n_out, n_in, basis.shape[0]) * std))
        if not self._pairs:
            raise ValueError(f"no equivariant kernel exists from {self.in_spec} to {self.out_spec}")

        self.bias = None
        if bias:
            cols = []
            for name in self.out_spec.reprs:
                cols.append(pair_basis(self.in_spec.group, in_reps[next(iter(in_reps))], out_reps[name],
                                       self.kernel_size)["bias"])
            expansion = torch.block_diag(*cols) if cols else torch.zeros(self.out_channels, 0)
            if expansion.shape[1] > 0:
                self.register_buffer("bias_expansion", expansion, persistent=False)
                self.bias = nn.Parameter(torch.zeros(expansion.shape[1]))
        self._single = len(self._pairs) == 1 and len(in_reps) == 1 and len(out_reps) == 1
        self._derive()
        self._register_load_state_dict_pre_hook(self._remap_on_load, with_module=False)

    def _derive(self) -> None:
        """The plain attributes read by the filter expansion, derived from the parameters and buffers."""
        # scalar (trivial) output fields: the bias expansion is the identity and the bias is used as it is (exact:
        # the product with an identity matrix only adds exact zeros)
        self._bias_identity = self.bias is not None and torch.equal(
            self.bias_expansion,
            torch.eye(self.out_channels, dtype=self.bias_expansion.dtype, device=self.bias_expansion.device))
        self._filter_shape = (self.out_channels, self.in_channels) + (self.kernel_size,) * 3
        # per pair: (output fields, columns of the product per output field, filter block shape)
        self._pair_views: List[Tuple[int, int, Tuple[int, ...]]] = []
        for k, (o, i) in enumerate(self._pair_sizes):
            n_out, n_in, _ = getattr(self, f"weight_{k}").shape
            n_cols = getattr(self, f"basis_{k}").shape[1]
            self._pair_views.append((n_out, n_in * n_cols, (n_out * o, n_in * i) + (self.kernel_size,) * 3))

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        """Pickled (and deep-copied) without the gather indices (as large as the filter for ``"take"``): they are
        rebuilt from the basis columns on unpickling, so a pickled architecture (the checkpoints of wrapped models)
        weighs what the bases do."""
        state = self.__dict__.copy()
        state["_buffers"] = {name: (None if name.startswith("index_") else t) for name, t in self._buffers.items()}
        state["_indices_dropped"] = True
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_layouts" not in self.__dict__:  # pickled before the one-product expansion
            self._upgrade_pickle()
        elif self.__dict__.pop("_indices_dropped", False):
            self._rebuild_indices()

    def _rebuild_indices(self) -> None:
        for k, layout in enumerate(self._layouts):
            if layout != "direct":
                n_out, n_in, _ = getattr(self, f"weight_{k}").shape
                o, i = self._pair_sizes[k]
                basis = self._buffers[f"basis_{k}"]
                column = self._buffers[f"column_{k}"]
                index = _gather_index(layout, column, basis.shape[1], o, i, self.kernel_size, n_in, n_out)
                self._buffers[f"index_{k}"] = index.to(basis.device)

    def _upgrade_pickle(self) -> None:
        """A layer pickled before the one-product expansion (buffers ``basis_k``: the orbit-compressed or full basis,
        ``gather_k``: the orbit columns or None): its layouts, matrices and indices from its own basis buffers (the
        same numbers; no escnn call)."""
        self._layouts = []
        for k, (o, i) in enumerate(self._pair_sizes):
            n_out, n_in, _ = getattr(self, f"weight_{k}").shape
            column = self._buffers.pop(f"gather_{k}", None)
            self._non_persistent_buffers_set.discard(f"gather_{k}")
            layout = _layout(o, i, self.kernel_size, n_in, n_out)
            self._layouts.append(layout)
            if layout == "direct" and column is not None:
                self._buffers[f"basis_{k}"] = self._buffers[f"basis_{k}"].index_select(1, column).contiguous()
                column = None
            self._buffers[f"column_{k}"] = column
            self._buffers[f"index_{k}"] = None
            self._non_persistent_buffers_set.update((f"column_{k}", f"index_{k}"))
        self._rebuild_indices()
        self._derive()

    # ------------------------------------------------------------------ filter
    def expand_parameters(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Return ``(filter (out, in, k, k, k), bias (out,) or None)`` from the current weights.

        Per representation pair one batched matrix product of the weights with a precomputed basis matrix, which is
        the filter block itself (a view) or becomes it by one gather (see ``_expansion``): no permute/reshape chain
        and no copy besides the gather.
        """
        if self._single:
            filt = self._pair_block(0)
        else:
            filt = None
            for k in range(len(self._pairs)):
                f = self._pair_block(k)
                if filt is None:
                    filt = f.new_zeros(self.out_channels, self.in_channels, self.kernel_size ** 3)
                oi = getattr(self, f"out_index_{k}")
                ii = getattr(self, f"in_index_{k}")
                filt = filt.index_put((oi[:, None], ii[None, :]), f.view(oi.numel(), ii.numel(), -1),
                                      accumulate=True)
            filt = filt.view(self._filter_shape)
        bias = self.bias
        if bias is not None and not self._bias_identity:
            bias = torch.mv(self.bias_expansion, bias)
        return filt, bias

    def _pair_block(self, k: int) -> torch.Tensor:
        """The filter block of pair ``k``, ``(n_out * o, n_in * i, k, k, k)``."""
        n_out, per_out, block = self._pair_views[k]
        basis = getattr(self, f"basis_{k}")
        # batched over the output fields, the basis broadcast (a stride-0 view): the weights are used in their stored
        # shape (n_out, n_in, n_b), without a view in forward or backward
        f = torch.bmm(getattr(self, f"weight_{k}"), basis.expand(n_out, basis.shape[0], basis.shape[1]))
        layout = self._layouts[k]
        if layout == "direct":
            return f.view(block)
        index = getattr(self, f"index_{k}")
        if layout == "take":
            if _take_allowed(f):
                return torch.take(f, index)
            index = index.view(n_out, -1)[0]  # the first output field's entries: the "select" index
        return f.view(n_out, per_out).index_select(1, index).view(block)

    def _filter(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        # Expanded afresh on every call, in every mode: a cache keyed on tensor versions would miss weight writes
        # through ``p.data`` (EMA, ``vector_to_parameters``), and the expansion costs ~1% of an eval forward
        # (EquivariantUNet at 32^3, CPU); ``export()`` gives a plain Conv3d for deployment.
        return self.expand_parameters()

    def forward(self, x):
        geometric = isinstance(x, enn.GeometricTensor)
        if geometric:
            if FieldSpec.from_escnn(x.type, self.in_spec.group) != self.in_spec:
                raise TypeError(f"GeometricTensor of type {x.type} does not match this layer's input {self.in_spec}")
            x = x.tensor
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects (B, {self.in_channels}, D, H, W) for {len(self.in_spec)} input "
                f"fields of group {self.in_spec.group!r}; got shape {tuple(x.shape)}"
            )
        filt, bias = self._filter()
        p = self.kernel_size // 2
        if self.padding_mode == "zeros":
            y = F.conv3d(x, filt, bias, padding=p)
        else:
            y = F.conv3d(F.pad(x, (p,) * 6, mode=self.padding_mode), filt, bias)
        return enn.GeometricTensor(y, self.out_spec.to_escnn()) if geometric else y

    # ------------------------------------------------------------------ robustness
    def _remap_on_load(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        """Match incoming weights to this layer's basis elements via the stored basis fingerprints."""
        for k in range(len(self._pairs)):
            fp_key, w_key = f"{prefix}basis_fingerprint_{k}", f"{prefix}weight_{k}"
            if fp_key not in state_dict or w_key not in state_dict:
                continue
            theirs = state_dict[fp_key].to(torch.float64)
            ours = getattr(self, f"basis_fingerprint_{k}").to(torch.float64)
            if theirs.shape == ours.shape and torch.allclose(theirs, ours, rtol=1e-4, atol=1e-5):
                continue
            if theirs.shape != ours.shape:
                raise RuntimeError(f"{prefix[:-1] or 'conv'}: checkpoint basis has {theirs.shape[0]} elements, "
                                   f"this layer {ours.shape[0]}: the checkpoint was made for another architecture")
            # find for each of our elements the checkpoint element equal up to sign
            dist_pos = torch.cdist(ours, theirs)
            dist_neg = torch.cdist(ours, -theirs)
            best = torch.minimum(dist_pos, dist_neg)
            perm = best.argmin(dim=1)
            scale = ours.abs().max().clamp_min(1e-12)
            if perm.unique().numel() != perm.numel() or best.min(dim=1).values.max() > 1e-4 * scale:
                raise RuntimeError(
                    f"{prefix[:-1] or 'conv'}: the checkpoint's kernel basis does not match this layer's (not a "
                    f"reordering); it was built with another escnn version or kernel settings"
                )
            sign = torch.where(dist_pos.gather(1, perm[:, None]) <= dist_neg.gather(1, perm[:, None]), 1.0, -1.0)
            w = state_dict[w_key]
            state_dict[w_key] = w[..., perm] * sign[:, 0].to(w.dtype)
            state_dict[fp_key] = ours.to(state_dict[fp_key].dtype)

    # ------------------------------------------------------------------ export
    def _export(self) -> nn.Conv3d:
        return self.to_conv3d()

    def to_conv3d(self) -> nn.Conv3d:
        """A plain ``torch.nn.Conv3d`` computing the same function (weights copied, not shared)."""
        with torch.no_grad():
            filt, bias = self.expand_parameters()
        conv = nn.Conv3d(self.in_channels, self.out_channels, self.kernel_size, padding=self.kernel_size // 2,
                         bias=bias is not None, padding_mode=self.padding_mode)
        conv = conv.to(device=filt.device, dtype=filt.dtype)
        with torch.no_grad():
            conv.weight.copy_(filt)
            if bias is not None:
                conv.bias.copy_(bias)
        return conv

    def extra_repr(self) -> str:
        return (f"{self.in_spec.group}: {len(self.in_spec)} fields ({self.in_channels} ch) -> {len(self.out_spec)} "
                f"fields ({self.out_channels} ch), kernel_size={self.kernel_size}")
