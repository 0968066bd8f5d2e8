"""equivox.nn.module: the one coercion of field-type arguments (as_field_spec) and output shapes."""
from __future__ import annotations

import pytest

def test_one_coercion_of_field_types_and_output_shapes():
    """``as_field_spec`` takes a FieldSpec or an escnn FieldType (every layer coerces through it);
    ``evaluate_output_shape`` as escnn's."""
    from equivox.groups import get_group
    from equivox.nets import EquivariantConvolution
    from equivox.nn import EquivariantConvBlock, FieldSpec, as_field_spec

    g = get_group("octa")
    assert as_field_spec(g.hidden_type(2)) == FieldSpec.hidden("octa", 2)
    assert as_field_spec(FieldSpec.scalar("octa", 1), "octa") == FieldSpec.scalar("octa", 1)
    with pytest.raises(TypeError, match="FieldSpec or an escnn FieldType"):
        as_field_spec("octa")
    with pytest.raises(TypeError, match="group 'so3' was expected"):
        as_field_spec(FieldSpec.scalar("octa", 1), "so3")
    block = EquivariantConvBlock(g.scalar_type(1), 2, n_convs=1)  # an escnn FieldType in
    assert block.in_spec == FieldSpec.scalar("octa", 1) and block.out_spec == FieldSpec.hidden("octa", 2)
    conv = EquivariantConvolution(3, 1, 2, group="octa", strides=2)
    assert conv.evaluate_output_shape((1, 1, 8, 8, 8)) == (1, 2 * g.field_size, 4, 4, 4)
    assert conv.out_tensor_channels == 2 * g.field_size
