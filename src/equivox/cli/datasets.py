"""``equivox data list | info | build``: the registered datasets."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ._common import CLIError, say

NAME = "data"


def add_parser(sub):
    p = sub.add_parser(NAME, help="registered datasets: list, info, build",
                       description="List the registered datasets (bundled ones with sizes; licences), show one, or "
                                   "rebuild a bundled one with its data_scripts/build_*.py script (repository "
                                   "checkout only).")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    dsub.add_parser("list", help="list registered datasets",
                    description="List the registered datasets with task, size, availability and licence.")
    q = dsub.add_parser("info", help="details of one dataset", description="Details and provenance of one dataset.")
    q.add_argument("name", help="dataset name or alias (see 'equivox data list')")
    q = dsub.add_parser("build", help="rebuild a dataset with its data_scripts/build_*.py",
                        description="Run data_scripts/build_<name>.py (needs a repository checkout and the source "
                                    "package named in the dataset's provenance).")
    q.add_argument("name", help="dataset name (see 'equivox data list')")
    q.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    return p


def run(args) -> int:
    from ..data import BUNDLED_DIR, get_dataset, list_datasets

    if args.data_command == "list":
        specs = list_datasets()
        w = max([len("name")] + [len(spec.name) for spec in specs]) + 2
        say(f"{'name':<{w}}{'file stem':<22}{'task':<16}{'size':>10}  available  licence")
        for spec in specs:
            d = spec.metadata()
            stem = spec.aliases[0] if spec.aliases else "-"
            size = f"{sum(f.get('bytes', 0) for f in d['files'].values()) / 1e6:>8.2f}MB" if d["files"] else \
                f"{'-':>10}"
            say(f"{spec.name:<{w}}{stem:<22}{d['task']:<16}{size}  {str(d['available']):<9}  {d['licence']}")
        say(f"(bundled files in {BUNDLED_DIR})")
        return 0
    spec = get_dataset(args.name)
    if args.data_command == "info":
        if not spec.installed:
            raise CLIError(f"dataset {spec.name} is not installed (no {spec.provenance}); rebuild it with "
                           f"'equivox data build {spec.name}'")
        d = spec.metadata()
        say(f"{spec.name}" + (f" ({', '.join(spec.aliases)})" if spec.aliases else "") + f": {d['description']}")
        for k in ("task", "licence", "source_package", "loader", "available", "citation", "build_script"):
            say(f"  {k}: {d[k]}")
        for f, meta in d["files"].items():
            say(f"  file {f}: {meta.get('bytes', 0) / 1e6:.2f} MB sha256 {str(meta.get('sha256', ''))[:16]}...")
        return 0
    # build
    script_name = spec.build_script
    if not script_name:
        raise CLIError(f"dataset {spec.name} has no build script (registered without build_script)")
    repo_root = Path(__file__).resolve().parents[3]
    script = repo_root / script_name
    if not script.is_file():
        raise CLIError(f"build script {script_name} not found next to this installation ({repo_root}); "
                       f"run it from an equivox repository checkout: python {script_name}")
    cmd = [sys.executable, str(script)] + list(args.script_args or [])
    say("running: " + " ".join(cmd))
    return subprocess.call(cmd, cwd=str(repo_root))
