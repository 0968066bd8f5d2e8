#!/usr/bin/env python
"""Download a Medical Segmentation Decathlon task (default ``Task09_Spleen``) and extract it.

MSD (Antonelli et al., Nature Communications 2022; Simpson et al. 2019), CC BY-SA 4.0.
Tar layout: ``TaskNN_Name/dataset.json``, ``imagesTr/*.nii.gz``, ``labelsTr/*.nii.gz``,
``imagesTs/*.nii.gz``. URLs and MD5s are those used by MONAI's ``DecathlonDataset``
(mirror ``msd-for-monai`` on AWS S3).

``extract_decathlon_tar`` extracts safely (refuses absolute paths, ``..``, links and
devices) and atomically (into a temp dir, then renamed); ``read_decathlon_index``
parses ``dataset.json`` into ``[{"image": path, "label": path}, ...]`` and checks the
files exist. Tests run both on a tiny tar in the same layout.

Usage::

    python data_scripts/download_decathlon.py [Task09_Spleen] [--root DIR]
    python data_scripts/download_decathlon.py --tar Task09_Spleen.tar   # already downloaded
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import _download  # noqa: E402

BASE = "https://msd-for-monai.s3-us-west-2.amazonaws.com"
MD5 = {
    "Task01_BrainTumour": "240a19d752f0d9e9101544901065d872",
    "Task02_Heart": "06ee59366e1e5124267b774dbd654057",
    "Task03_Liver": "a90ec6c4aa7f6a3d087205e23d4e6397",
    "Task04_Hippocampus": "9d24dba78a72977dbd1d2e110310f31b",
    "Task05_Prostate": "35138f08b1efaef89d7424d2bcc928db",
    "Task06_Lung": "8afd997733c7fc0432f71255ba4e52dc",
    "Task07_Pancreas": "4f7080cfca169fa8066d17ce6eb061e4",
    "Task08_HepaticVessel": "641d79e80ec66453921d997fbf12a29c",
    "Task09_Spleen": "410d4a301da4e5b2f6f86ec3ddba524e",
    "Task10_Colon": "bad7a188931dc2f6acf72b08eb6202d0",
}
LICENCE = "CC BY-SA 4.0 (Medical Segmentation Decathlon); cite Antonelli M et al., Nat Commun 13:4128, 2022"


def _safe_members(tf: tarfile.TarFile):
    for m in tf.getmembers():
        name = m.name
        if name.startswith(("/", "\\")) or ".." in Path(name).parts:
            raise ValueError(f"unsafe path in archive: {name!r}")
        if m.issym() or m.islnk() or m.isdev():
            raise ValueError(f"refusing link/device in archive: {name!r}")
        if Path(name).name.startswith("._"):  # macOS resource forks shipped in some MSD tars
            continue
        yield m


def extract_decathlon_tar(tar_path: str | Path, dest: str | Path) -> Path:
    """Extract a Decathlon task tar into ``dest``; returns the task directory
    (the one holding ``dataset.json``). Existing complete extractions are reused."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as tf:
        members = list(_safe_members(tf))
        tops = {Path(m.name).parts[0] for m in members if Path(m.name).parts}
        jsons = [m.name for m in members if Path(m.name).name == "dataset.json"]
        if len(tops) != 1 or not jsons:
            raise ValueError(f"{tar_path}: expected one top-level Task directory with dataset.json, "
                             f"found top-level {sorted(tops)}")
        top = tops.pop()
        final = dest / top
        if (final / "dataset.json").exists():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            try:
                tf.extractall(tmp, members=members, filter="data")
            except TypeError:  # Python < 3.11.4 has no filter argument
                tf.extractall(tmp, members=members)
            os.replace(tmp / top, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_decathlon_index(task_dir: str | Path, section: str = "training",
                         check_files: bool = True) -> list[dict]:
    """Parse ``dataset.json``. ``section`` "training" gives ``{"image", "label"}`` dicts of
    absolute paths, "test" gives ``{"image"}`` dicts. Also returns nothing silently missing:
    raises FileNotFoundError listing absent files when ``check_files``."""
    task_dir = Path(task_dir)
    meta = json.loads((task_dir / "dataset.json").read_text())
    if section not in meta:
        raise KeyError(f"dataset.json has no {section!r} section (keys: {sorted(meta)})")
    items = []
    for entry in meta[section]:
        if isinstance(entry, str):
            entry = {"image": entry}
        items.append({k: str((task_dir / v).resolve()) for k, v in entry.items()})
    if check_files:
        missing = [p for it in items for p in it.values() if not Path(p).exists()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} files listed in dataset.json are missing, "
                                    f"e.g. {missing[:3]}")
    return items


def decathlon_labels(task_dir: str | Path) -> dict[int, str]:
    meta = json.loads((Path(task_dir) / "dataset.json").read_text())
    return {int(k): v for k, v in meta.get("labels", {}).items()}


def download_decathlon(task: str = "Task09_Spleen", root: str | Path | None = None, **kw) -> Path:
    if task not in MD5:
        raise ValueError(f"unknown task {task!r}; known: {sorted(MD5)}")
    root = Path(root) if root else _download.data_root() / "decathlon"
    return _download.download(f"{BASE}/{task}.tar", root / f"{task}.tar", md5=MD5[task], **kw)


def main(argv=None):
    ap = _common.script_parser(__doc__)
    ap.add_argument("task", nargs="?", default="Task09_Spleen", choices=sorted(MD5))
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--tar", type=Path, default=None, help="use an already downloaded tar")
    ap.add_argument("--timeout", type=float, default=_download.DEFAULT_TIMEOUT)
    args = ap.parse_args(argv)
    root = args.root or _download.data_root() / "decathlon"
    try:
        tar = args.tar or download_decathlon(args.task, root, timeout=args.timeout)
    except _download.DownloadError as e:
        raise SystemExit(f"error: {e}")
    task_dir = extract_decathlon_tar(tar, root)
    train = read_decathlon_index(task_dir, "training")
    test = read_decathlon_index(task_dir, "test") if "test" in json.loads(
        (task_dir / "dataset.json").read_text()) else []
    print(f"{task_dir}: {len(train)} labelled training cases, {len(test)} test images, "
          f"labels {decathlon_labels(task_dir)}")
    return task_dir


if __name__ == "__main__":
    main()
