"""equivox.core: the one input validator (InputCheck) of every network and block."""
from __future__ import annotations

import pytest
import torch

def test_every_network_and_block_validates_with_the_same_input_check():
    from equivox.core import InputCheck
    from equivox.nets import (EquivariantConvolution, EquivariantHead, EquivariantMonaiUNet, EquivariantResidualUnit,
                              EquivariantUNet, InvariantClassifier)

    torch.manual_seed(0)
    mods = [EquivariantUNet(channels=(1, 1), strides=(2,)), InvariantClassifier(channels=(1, 1), strides=(2,)),
            EquivariantMonaiUNet(channels=(1, 1), strides=(2,)), EquivariantConvolution(3, 1, 1),
            EquivariantResidualUnit(3, 1, 1), EquivariantHead(3, 1, 2)]
    for m in mods:
        first = next(c for c in m.modules() if isinstance(c, InputCheck))  # the network's own (the encoder's)
        assert first.name == type(m).__name__
        assert all(isinstance(c.input_check, InputCheck) for c in m.modules() if hasattr(c, "input_check"))
        assert not any(hasattr(c, "_validate") for c in m.modules())
        with pytest.raises(ValueError, match="expects a 5D tensor"):
            m(torch.zeros(1, 8, 8, 8))
