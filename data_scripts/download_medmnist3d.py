#!/usr/bin/env python
"""Download MedMNIST-3D ``.npz`` files (e.g. nodulemnist3d, organmnist3d) from Zenodo.

MedMNIST v2 (Yang et al., Scientific Data 2023), CC BY 4.0. Each file holds
``{train,val,test}_images`` uint8 (N, S, S, S) and ``{train,val,test}_labels``
(N, 1); S = 28 (default) or 64 (``--size 64``). URLs and MD5s are those of the
``medmnist`` package (Zenodo record 10519652).

``load_medmnist3d_npz`` validates and loads a file (tests run it on a small file
in the same format); ``download_medmnist3d`` fetches it (resumable, atomic,
md5-checked, clear error when offline).

Usage::

    python data_scripts/download_medmnist3d.py nodulemnist3d organmnist3d [--size 64] [--root DIR]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import _download  # noqa: E402

RECORD = "https://zenodo.org/records/10519652/files"
# flag -> (md5 of the 28^3 file, md5 of the 64^3 file, class names)
DATASETS = {
    "organmnist3d": ("a0c5a1ff56af4f155c46d46fbb45a2fe", "58a2205adf14a9d0a189cb06dc78bf10",
                     ["liver", "kidney-right", "kidney-left", "femur-right", "femur-left",
                      "bladder", "heart", "lung-right", "lung-left", "spleen", "pancreas"]),
    "nodulemnist3d": ("8755a7e9e05a4d9ce80a24c3e7a256f3", "c47c5b7d457bf6332200d2ea6d64ecd8",
                      ["benign", "malignant"]),
    "adrenalmnist3d": ("bbd3c5a5576322bc4cdfea780653b1ce", "17721accfe9fb005146a47d33bc54b2f",
                       ["normal", "hyperplasia"]),
    "fracturemnist3d": ("6aa7b0143a6b42da40027a9dda61302f", "f01d7e6316aedf4210da0da5b7437b42",
                        ["buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"]),
    "vesselmnist3d": ("b41fd4f7e7e2feedddb201585ecafa1b", "6bb274a8846e1097066dcd64e2c4520f",
                      ["vessel", "aneurysm"]),
    "synapsemnist3d": ("1235b78a3cd6280881dd7850a78eadb6", "43bd14ebf3af9d3dd072446fedc14d5e",
                       ["inhibitory synapse", "excitatory synapse"]),
}
LICENCE = "CC BY 4.0 (MedMNIST v2); cite Yang J et al., Scientific Data 10:41, 2023"
SPLITS = ("train", "val", "test")


def file_name(flag: str, size: int = 28) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def url_and_md5(flag: str, size: int = 28) -> tuple[str, str]:
    if flag not in DATASETS:
        raise ValueError(f"unknown MedMNIST-3D flag {flag!r}; known: {sorted(DATASETS)}")
    if size not in (28, 64):
        raise ValueError("MedMNIST-3D sizes are 28 and 64")
    md5 = DATASETS[flag][0] if size == 28 else DATASETS[flag][1]
    return f"{RECORD}/{file_name(flag, size)}?download=1", md5


def load_medmnist3d_npz(path: str | Path, n_classes: int | None = None) -> dict[str, dict]:
    """Load and validate a MedMNIST-3D npz.

    Returns ``{split: {"images": uint8 (N, S, S, S), "labels": int64 (N,)}}``.
    Raises ValueError if keys, shapes or labels are inconsistent.
    """
    out = {}
    with np.load(path, allow_pickle=False) as z:
        for s in SPLITS:
            ki, kl = f"{s}_images", f"{s}_labels"
            if ki not in z.files or kl not in z.files:
                raise ValueError(f"{path}: missing {ki!r}/{kl!r} (keys: {sorted(z.files)})")
            img, lab = z[ki], z[kl]
            if img.ndim == 5 and img.shape[-1] == 1:
                img = img[..., 0]
            if img.ndim != 4 or len(set(img.shape[1:])) != 1:
                raise ValueError(f"{path}: {ki} has shape {img.shape}, expected (N, S, S, S)")
            lab = np.asarray(lab).reshape(len(lab), -1)
            if lab.shape != (len(img), 1):
                raise ValueError(f"{path}: {kl} has shape {lab.shape}, expected ({len(img)}, 1)")
            lab = lab[:, 0].astype(np.int64)
            if n_classes is not None and len(lab) and (lab.min() < 0 or lab.max() >= n_classes):
                raise ValueError(f"{path}: labels outside [0, {n_classes})")
            out[s] = {"images": img.astype(np.uint8, copy=False), "labels": lab}
    return out


def download_medmnist3d(flag: str, root: str | Path | None = None, size: int = 28, **kw) -> Path:
    url, md5 = url_and_md5(flag, size)
    root = Path(root) if root else _download.data_root() / "medmnist"
    return _download.download(url, root / file_name(flag, size), md5=md5, **kw)


def main(argv=None):
    ap = _common.script_parser(__doc__)
    ap.add_argument("flags", nargs="+", choices=sorted(DATASETS))
    ap.add_argument("--size", type=int, default=28, choices=(28, 64))
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--timeout", type=float, default=_download.DEFAULT_TIMEOUT)
    args = ap.parse_args(argv)
    for flag in args.flags:
        try:
            p = download_medmnist3d(flag, args.root, args.size, timeout=args.timeout)
        except _download.DownloadError as e:
            raise SystemExit(f"error: {e}")
        d = load_medmnist3d_npz(p, n_classes=len(DATASETS[flag][2]))
        print(f"{flag}: {p}")
        for s, v in d.items():
            counts = np.bincount(v["labels"], minlength=len(DATASETS[flag][2])).tolist()
            print(f"  {s}: images {v['images'].shape}, label counts {counts}")


if __name__ == "__main__":
    main()
