"""The one contract of equivox modules: :class:`EquivariantModule` (field types in and out, one input validator,
its own equivariance check, ``export()``), and :func:`as_field_spec`, the one coercion of field-type arguments.

Modelled on escnn's ``EquivariantModule`` (``in_type`` / ``out_type``, ``check_equivariance``, ``export``;
containers export by recursing) but on plain tensors: an equivox module takes and returns ``torch.Tensor`` s
``(B, C, D, H, W)``.

>>> from equivox.nn import FieldNormAct
>>> norm = FieldNormAct("c4_axial", n_fields=2)
>>> norm.in_spec.size, norm.evaluate_output_shape((1, 8, 4, 4, 4))
(8, (1, 8, 4, 4, 4))
>>> errors = norm.check_equivariance()      # raises AssertionError naming the element if it is not
>>> plain = norm.export()                   # torch.nn layers only
"""
from __future__ import annotations

import torch
from monai.networks import eval_mode
from torch import nn

from typing import List, Optional, Sequence, Tuple

from ..core import InputCheck
from ..export import export, export_children
from ..groups import get_group, group_of_field_type
from ..testing import output_class_permutation  # the one reader of the output spec's class permutation
from .fields import FieldSpec

__all__ = ["EquivariantModule", "as_field_spec", "input_check", "output_class_permutation", "wrapped_channels"]


def as_field_spec(field_type, group=None) -> FieldSpec:
    """A :class:`FieldSpec` from a ``FieldSpec`` (returned as is) or an escnn ``FieldType``.

    Args:
        field_type: the field type.
        group: registered group of an escnn ``FieldType`` (name or ``Group``); default: the registered group whose
            gspace it lives on (:func:`equivox.groups.group_of_field_type`; ambiguous for groups that differ only
            in their axis frame: pass ``group`` or a ``FieldSpec`` then).

    Raises:
        TypeError: neither a ``FieldSpec`` nor an escnn ``FieldType`` of a registered group.
    """
    if isinstance(field_type, FieldSpec):
        if group is not None and get_group(group).name != field_type.group:
            raise TypeError(f"field spec of group {field_type.group!r} where group {get_group(group).name!r} was "
                            "expected")
        return field_type
    if not hasattr(field_type, "gspace") or not hasattr(field_type, "representations"):
        raise TypeError(f"expected a FieldSpec or an escnn FieldType, got {type(field_type).__name__}")
    name = get_group(group).name if group is not None else group_of_field_type(field_type).name
    return FieldSpec.from_escnn(field_type, name)


def wrapped_channels(model: nn.Module) -> Tuple[Optional[int], Optional[int]]:
    """``(in_channels, out_channels)`` of a wrapped model (any ``nn.Module``): its ``in_spec`` / ``out_spec`` sizes,
    else its ``in_channels`` / ``out_channels`` attributes (equivox, MONAI), else those of its first / last
    ``Conv3d`` / ``Linear`` layer; ``None`` where none says. What wrappers of plain models (canonicalization,
    test-time augmentation) put in their field types."""
    def spec_size(name):
        spec = getattr(model, name, None)
        return spec.size if isinstance(spec, FieldSpec) else None

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Linear))]
    cin = spec_size("in_spec") or getattr(model, "in_channels", None)
    if cin is None and layers:
        first = layers[0]
        cin = first.in_features if isinstance(first, nn.Linear) else first.in_channels
    cout = spec_size("out_spec") or getattr(model, "out_channels", None)
    if cout is None and layers:
        last = layers[-1]
        cout = last.out_features if isinstance(last, nn.Linear) else last.out_channels
    return (None if cin is None else int(cin)), (None if cout is None else int(cout))


def input_check(spec: FieldSpec, multiple: int, name: str, detail: bool = False) -> InputCheck:
    """The :class:`~equivox.export.InputCheck` of a module reading ``spec`` fields (sizes divisible by
    ``multiple``); ``detail``: explain wrong channel counts in fields (MONAI-style blocks)."""
    g = get_group(spec.group)
    hidden = len(spec) > 0 and spec.reprs[0] != g.gspace.trivial_repr.name
    return InputCheck(spec.size, multiple, name, g.field_size if (hidden or detail) else 1, g.name, hidden, detail)


class EquivariantModule(nn.Module):
    """Base of every equivox layer, block and network.

    Contract:

    * ``in_spec`` / ``out_spec``: the :class:`FieldSpec` of the input and output (set by the subclass; an encoder
      returning one tensor per level has ``out_specs``);
    * inputs of networks and MONAI-style blocks are validated by one :class:`~equivox.export.InputCheck`
      submodule (``self.input_check``; the same module, with the same eager / TorchScript / ``torch.compile``
      behaviour, checks the exported model);
    * :meth:`check_equivariance` checks ``f(g . x) == g . f(x)`` for the grid-exact elements of its group, the
      output fields transformed by their representation (hidden fields included;
      :func:`equivox.testing.assert_equivariant`);
    * :meth:`export` returns a plain-torch module computing the eval-mode function; a subclass defines what it
      becomes by overriding :meth:`_export`. The default keeps the class and exports every child, so a subclass
      whose ``forward`` only calls its children, ``torch`` functions and attributes of plain types exports
      without writing anything (write that ``forward`` scriptable to keep the export scriptable). A module (or a
      configuration of one) that has no plain form says so: its ``_export`` raises
      :class:`~equivox.core.ExportError` naming the module and the reason;
    * label-permuting outputs (left/right classes swapping under reflections) carry their permutation in the
      output spec (:attr:`FieldSpec.class_permutation`), read by :func:`output_class_permutation` and applied by
      :meth:`check_equivariance` under improper elements;
    * wrappers of arbitrary models (:class:`~equivox.canonicalization.Canonicalized`,
      :class:`~equivox.evaluation.GroupTTA`) take plain (scalar) fields of their group in and give invariant
      (``(B, K)``) or equivariant scalar fields out.
    """

    __jit_unused_properties__ = ["out_tensor_channels"]
    # field types are Python-side metadata: TorchScript would try to compile the FieldSpec dataclass
    __jit_ignored_attributes__ = ["in_spec", "out_spec", "out_specs"]

    def export(self, fold_batchnorm: bool = False) -> nn.Module:
        """Plain PyTorch module (``torch.nn`` layers only) computing this module's eval-mode function.

        See :func:`equivox.export.export` (also for ``fold_batchnorm``): scriptable, ``torch.export``-able, same
        input checks. The module itself is not modified.
        """
        return export(self, fold_batchnorm)

    def check_equivariance(self, x: Optional[torch.Tensor] = None, elements: Optional[Sequence] = None,
                           rtol: Optional[float] = None) -> List:
        """Check ``self(g . x) == g . self(x)`` for grid-exact elements ``g`` of the module's group (default: all),
        transforming input and output fields by their representations and moving the voxels.

        Returns the per-element errors (:class:`equivox.testing.ElementError`); raises ``AssertionError`` naming
        the element, the output and the error when one exceeds ``rtol`` (default by dtype). See
        :func:`equivox.testing.assert_equivariant` for ``x`` / ``elements``."""
        from ..testing import assert_equivariant

        return assert_equivariant(self, x, elements, rtol)

    def _export(self) -> nn.Module:
        """The plain module replacing this one in an export (called in eval mode, under ``no_grad``).

        Default: this class with every child replaced by its export (:func:`equivox.export.export_children`)."""
        return export_children(self)

    @property
    def out_tensor_channels(self) -> int:
        """Tensor channels of the output (``out_spec.size``)."""
        return self.out_spec.size

    def evaluate_output_shape(self, input_shape) -> tuple:
        """Output shape for an input of ``input_shape`` ``(B, C, D, H, W)`` (computed by a forward pass on zeros in
        eval mode, so it holds for every module)."""
        ref = next(iter(self.parameters()), None)
        x = torch.zeros(tuple(input_shape), device=ref.device if ref is not None else None)
        with eval_mode(self):
            y = self(x)
        return tuple(y.shape) if isinstance(y, torch.Tensor) else tuple(tuple(t.shape) for t in y)
