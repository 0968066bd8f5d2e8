"""equivox.config.options: each config field describes itself (help text, choices, command-line name) and is read
back as an Option record; one name everywhere (attribute, YAML key, option) with few declared exceptions; the
package that holds them imports no torch, so ``equivox --help`` stays instant."""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

from equivox.config import config_options, option
from equivox.config.options import section_options


def test_option_names_are_the_field_names():
    """YAML key = Python name = option: ``epochs`` / ``--epochs``; the declared exceptions are few."""
    exceptions = {o.name: o.flag for o in config_options() if o.flag != "--" + o.name.replace("_", "-")}
    assert exceptions == {"out_dir": "--out", "model": "--model-arg"}


def test_the_config_package_imports_no_torch():
    """``equivox --help`` reads the config's metadata: the package stays light."""
    import subprocess
    import sys

    code = ("import sys, equivox.config, equivox.cli; equivox.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'escnn', 'monai', 'equivox.training') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_option_metadata_is_read_back_with_its_kind():
    @dataclasses.dataclass
    class Section:
        count: int = option(3, "how many")
        ratio: Optional[float] = option(None, "a ratio", none_means="all")
        mode: str = option("a", "the mode", choices=("a", "b"))
        sizes: Tuple[int, ...] = option((2, 4), "sizes")
        names: List[str] = option(default_factory=list, help="names", flag="--name-list")
        spacing: Optional[Tuple[float, float, float]] = option(None, "spacing")
        on: bool = option(False, "a switch")
        extra: Dict[str, object] = option(default_factory=dict, help="KEY=VALUE")

    opts = {o.name: o for o in section_options(Section, "test")}
    assert [o.kind for o in opts.values()] == ["int", "float", "str", "ints", "names", "floats3", "flag", "mapping"]
    assert opts["count"].flag == "--count" and opts["names"].flag == "--name-list" and opts["names"].default == []
    assert opts["ratio"].optional and opts["ratio"].none_means == "all" and not opts["count"].optional
    assert opts["mode"].metavar == "{a,b}" and opts["mode"].closed_choices == ("a", "b")
    assert all(o.section == "test" for o in opts.values()) and opts["count"].help == "how many"
