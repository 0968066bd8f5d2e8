"""equivox._escnn_cg: the fast Clebsch-Gordan solver for finite groups returns exactly escnn's own coefficients, and
is installed in escnn only inside equivox's escnn scope (``quiet()``)."""
import pytest


@pytest.mark.parametrize("group", ["octa", "full_octa", "ico"])
def test_fast_clebsh_gordan_equals_escnn_bit_for_bit(group):
    """equivox's finite-group CG solver (installed in escnn) returns exactly escnn's own coefficients."""
    import itertools

    import numpy as np

    from equivox import _escnn_cg
    from equivox._escnn import escnn
    from equivox.groups import get_group

    G = get_group(group).gspace.fibergroup
    from equivox._escnn import quiet

    with quiet():  # installed in escnn only inside equivox's escnn scope
        assert escnn.group._clebsh_gordan._clebsh_gordan_tensor.func is _escnn_cg.clebsh_gordan_tensor
    assert escnn.group._clebsh_gordan._clebsh_gordan_tensor.func is _escnn_cg._FALLBACK  # escnn's own outside
    irreps = [psi.id for psi in G.irreps()][:4]
    triples = list(itertools.product(irreps, irreps, irreps))[::3]
    nonzero = 0
    for J, l, j in triples:
        ours = _escnn_cg.clebsh_gordan_tensor(J, l, j, type(G).__name__, **G._keys)
        with quiet():  # escnn's deterministic (dense SVD) path, also when scikit-learn is installed
            theirs = _escnn_cg._FALLBACK(J, l, j, type(G).__name__, **G._keys)
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs), (J, l, j)
        nonzero += ours.shape[-2] > 0
    assert nonzero >= 3  # the comparison covered real coefficients, not only empty ones
