"""equivox._escnn: equivox's escnn set-up is scoped to quiet(); escnn is unchanged for other code."""
from __future__ import annotations

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
