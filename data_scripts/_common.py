"""Shared helpers for the equivox data scripts (provenance, hashing, paths).

Every build script writes, next to its output, a ``<name>.json`` provenance
record: source package and version, licence, citation, the build command,
the build date and the sha256 of every output file.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "src" / "equivox" / "data" / "bundled"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def debian_package_version(pkg: str) -> str | None:
    """Installed version of a Debian package (``dpkg-query``), or None."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", pkg],
            capture_output=True, text=True, timeout=20, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def python_package_version(dist: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001 - metadata lookup only
        return None


def build_command() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name] + sys.argv)


def write_provenance(out_dir: Path, name: str, outputs: list[Path], **fields) -> Path:
    """Write ``out_dir/<name>.json`` with provenance + sha256 of ``outputs``."""
    record = dict(fields)
    record.setdefault("name", name)
    record["build_command"] = build_command()
    record["build_date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    record["build_platform"] = f"python {platform.python_version()} on {platform.system()}"
    record["files"] = {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in outputs
    }
    path = Path(out_dir) / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.1f} GB"


def atomic_savez(path: Path, **arrays) -> Path:
    """np.savez_compressed to a temp file, then atomic rename."""
    import numpy as np

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def atomic_nifti_save(img, path: Path) -> Path:
    import nibabel as nib

    path = Path(path)
    tmp = path.with_name(path.name[: -len(".nii.gz")] + ".tmp.nii.gz")
    nib.save(img, str(tmp))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- resampling
def resample_affine(affine: np.ndarray, factors) -> np.ndarray:
    """Affine of a grid downsampled by ``factors`` covering the same FOV."""
    f = np.asarray(factors, dtype=float)
    S = np.eye(4)
    S[:3, :3] = np.diag(f)
    S[:3, 3] = (f - 1.0) / 2.0
    return affine @ S


def downsample_linear(vol: np.ndarray, factors, out_shape, smooth: bool = True) -> np.ndarray:
    """Anti-aliased (Gaussian, sigma = 0.4 f) trilinear resampling by ``factors``
    (output/input spacing) onto a grid of ``out_shape`` covering the same FOV."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    f = np.asarray(factors, dtype=float)
    if smooth:
        vol = gaussian_filter(vol, sigma=np.maximum(0.4 * f, 0) * (f > 1), mode="nearest")
    grids = np.meshgrid(*[(np.arange(n) + 0.5) * fi - 0.5 for n, fi in zip(out_shape, f)],
                        indexing="ij")
    return map_coordinates(vol, np.stack(grids), order=1, mode="nearest")


def downsample_labels(lab: np.ndarray, groups: dict, factors, out_shape, progress=None) -> np.ndarray:
    """Soft-majority label downsampling.

    ``groups`` maps output class index -> list of input label values. Each class's
    one-hot map is resampled with :func:`downsample_linear`; an output voxel takes
    the class with the largest fraction, provided it exceeds 0.5 (else 0).
    """
    best = np.full(out_shape, 0.5, dtype=np.float32)
    out = np.zeros(out_shape, dtype=np.uint8)
    for c, ids in groups.items():
        prob = downsample_linear(np.isin(lab, ids).astype(np.float32), factors, out_shape)
        win = prob > best
        out[win] = c
        best = np.where(win, prob, best)
        if progress is not None:
            progress.update()
    return out


def install_pkg_resources_shim() -> None:
    """pylidc 0.2.3 does ``import pkg_resources`` (removed from recent setuptools).

    Only ``resource_filename`` is used, so a tiny stand-in module is enough.
    Installed only when the real ``pkg_resources`` is not importable.
    """
    if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
        return
    mod = types.ModuleType("pkg_resources")

    def resource_filename(package: str, resource: str) -> str:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(package)
        return os.path.join(os.path.dirname(spec.origin), resource)

    mod.resource_filename = resource_filename
    sys.modules["pkg_resources"] = mod


def print_build_summary(npz: Path, seconds: float, summary: dict, failures: list) -> None:
    """The closing lines of a dataset build: the file written, its size and time, the counts, the first failures."""
    print(f"\nwrote {npz} ({human_size(npz.stat().st_size)}), {seconds:.0f} s")
    for k, v in summary.items():
        print(f"  {k}: {v}")
    for f in failures[:10]:
        print("  failed:", f)


def script_parser(doc: str) -> argparse.ArgumentParser:
    """The argument parser of a data script: its docstring's first paragraph as the description, the rest as the
    epilog (verbatim)."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0], epilog=doc.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
