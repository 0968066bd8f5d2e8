"""equivox.irreps.competitors: the old module name of equivox.benchmark.irreps_competitors still gives the same
objects (``--import equivox.irreps.competitors`` keeps working); the rows themselves are tested in
tests/benchmark/test_irreps_competitors.py."""
from __future__ import annotations


def test_old_module_name_gives_the_harness_objects():
    import equivox.benchmark.irreps_competitors as harness
    import equivox.irreps.competitors as old

    assert set(old.__all__) == set(harness.__all__)
    for name in old.__all__:
        assert getattr(old, name) is getattr(harness, name), name


def test_the_irreps_package_does_not_import_the_harness_rows():
    """Nothing in equivox.irreps imports the harness module: importing the irreps layers leaves it unloaded."""
    import subprocess
    import sys

    code = ("import sys, equivox.irreps, equivox.irreps.layers, equivox.irreps.bridge\n"
            "assert 'equivox.benchmark.irreps_competitors' not in sys.modules\n"
            "assert 'equivox.irreps.competitors' not in sys.modules\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
