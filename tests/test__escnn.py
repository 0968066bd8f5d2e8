"""equivox._escnn: equivox's escnn set-up is scoped to quiet() (re-entrant; restored on leaving the outermost
block), silences escnn's prints and warnings inside it, and leaves escnn unchanged for other code."""
from __future__ import annotations

import warnings

import pytest


def test_importing_equivox_leaves_escnn_unchanged_for_other_code():
    """equivox's escnn set-up (cache folder, fast Clebsch-Gordan solver, quiet numerics) is active only inside
    ``quiet()``; outside it escnn's own functions are in place, also after building models."""
    import subprocess
    import sys

    code = """
import escnn.group._clebsh_gordan as cg, escnn.group.groups.octa as octa, escnn.group._numerical as num
own = (cg._clebsh_gordan_tensor, octa._build_octa_irrep_picklable, getattr(num, "randomized_svd", None))
import equivox.nets
from equivox._escnn import quiet, setup
setup(); setup()
with quiet():
    inside = (cg._clebsh_gordan_tensor, octa._build_octa_irrep_picklable, getattr(num, "randomized_svd", None))
equivox.nets.InvariantClassifier(channels=(1,), strides=(), group="octa")
after = (cg._clebsh_gordan_tensor, octa._build_octa_irrep_picklable, getattr(num, "randomized_svd", None))
assert after == own, "escnn changed outside quiet()"
assert inside[0] is not own[0] and inside[1] is not own[1] and inside[2] is None
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_quiet_is_reentrant_and_restores_escnn_only_when_the_outermost_block_ends():
    import escnn.group._clebsh_gordan as cg

    from equivox._escnn import quiet

    own = cg._clebsh_gordan_tensor
    with quiet():
        inside = cg._clebsh_gordan_tensor
        assert inside is not own
        with quiet():
            assert cg._clebsh_gordan_tensor is inside
        assert cg._clebsh_gordan_tensor is inside  # the inner block ending does not restore escnn
    assert cg._clebsh_gordan_tensor is own


def test_quiet_silences_prints_and_warnings_inside_the_block_only(capsys):
    from equivox._escnn import quiet

    with quiet():
        print("escnn chatter")
        warnings.warn("escnn numerics", UserWarning)
    assert capsys.readouterr().out == ""
    with pytest.warns(UserWarning, match="after the block"):
        warnings.warn("after the block", UserWarning)
    print("visible")
    assert capsys.readouterr().out == "visible\n"


def test_quiet_restores_escnn_when_the_block_raises():
    import escnn.group._clebsh_gordan as cg

    from equivox._escnn import quiet

    own = cg._clebsh_gordan_tensor
    with pytest.raises(RuntimeError, match="boom"):
        with quiet():
            assert cg._clebsh_gordan_tensor is not own
            raise RuntimeError("boom")
    assert cg._clebsh_gordan_tensor is own
