"""The output folder of a training run: checked writable before any work (:func:`check_output_folder`), an
earlier run found (:func:`existing_run`, :func:`existing_run_message`) and set aside while a new run replaces it
(:func:`set_run_aside`), and everything a failed run wrote removed again (:func:`created_output_folder`). Only
rank zero (:func:`is_rank_zero`) refuses, replaces or cleans up a folder."""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List

__all__ = ["check_output_folder", "is_rank_zero", "existing_run", "existing_run_message", "ASIDE_PREFIX",
           "set_run_aside", "created_output_folder"]


def check_output_folder(path) -> Path:
    """Create ``path`` (and parents) and prove it takes a file, before any work is done.

    Raises:
        NotADirectoryError / OSError: one line naming the folder and the cause (not a folder, read-only, full
        disk, no permission).
    """
    import tempfile

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".equivox-write-test-") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        cls = NotADirectoryError if isinstance(err, NotADirectoryError) else OSError
        raise cls(f"output folder {out} is not writable ({err.strerror or type(err).__name__}); choose another "
                  f"with --out / out_dir") from None
    return out


def is_rank_zero() -> bool:
    """Whether this process owns the output folder: not a DDP worker that Lightning or torchrun started (``RANK``,
    ``LOCAL_RANK``, ``NODE_RANK``, ``SLURM_PROCID`` non-zero). Only it refuses, replaces or cleans up a folder."""
    return all(int(os.environ.get(v, "0") or 0) == 0 for v in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def existing_run(out_dir) -> List[Path]:
    """The files and folders of an earlier run in ``out_dir``: ``checkpoints/*.ckpt`` and ``logs/version_*``
    (empty when there is none)."""
    out = Path(out_dir)
    found: List[Path] = []
    if (out / "checkpoints").is_dir():
        found += sorted(p for p in (out / "checkpoints").iterdir() if p.suffix == ".ckpt")
    if (out / "logs").is_dir():
        found += sorted(p for p in (out / "logs").iterdir() if p.is_dir() and p.name.startswith("version_"))
    return found


def existing_run_message(out_dir, found: List[Path], resume: bool = True) -> str:
    """One line: ``out_dir`` holds a run (naming a few of its files) and the options (``--overwrite``, ``--resume``
    when the folder has a ``last.ckpt`` and ``resume`` is offered, another ``--out``)."""
    out = Path(out_dir)
    names = ", ".join(str(p.relative_to(out)) for p in found[:3]) + (", ..." if len(found) > 3 else "")
    last = out / "checkpoints" / "last.ckpt"
    cont = f", --resume {last} to continue it" if resume and last.is_file() else ""
    return f"output folder {out} already holds a run ({names}); give --overwrite to replace it{cont}, or another --out"


#: prefix of the hidden folder an earlier run waits in while a new run replaces it (see :func:`set_run_aside`)
ASIDE_PREFIX = ".equivox-earlier-run-"


def set_run_aside(out_dir, found: List[Path]) -> Path:
    """Move an earlier run's files (:func:`existing_run`) into a new hidden folder ``out_dir/.equivox-earlier-run-*``
    (renames on the same disk): the new run writes fresh ``last.ckpt`` and ``logs/version_0``. Delete the folder when
    the new run has saved a checkpoint; :func:`created_output_folder` moves the files back when it fails before."""
    import tempfile

    out = Path(out_dir)
    aside = Path(tempfile.mkdtemp(prefix=ASIDE_PREFIX, dir=out))
    for q in found:
        target = aside / q.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(q, target)
    return aside


def _restore_aside(out: Path, aside: Path) -> None:
    """Move the files :func:`set_run_aside` put in ``aside`` back to their places in ``out``; remove ``aside``."""
    import shutil

    for sub in sorted(aside.iterdir()):
        for q in sorted(sub.iterdir()):
            (out / sub.name).mkdir(exist_ok=True)
            target = out / sub.name / q.name
            if target.is_dir():  # the failed run's own files of that name (its logs/version_0)
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(q, target)
    shutil.rmtree(aside, ignore_errors=True)


def _tree(folder: Path) -> Dict[Path, Any]:
    """Every path under ``folder`` -> ``None`` (a folder) or ``(mtime_ns, size)`` (a file)."""
    out: Dict[Path, Any] = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[Path(root) / d] = None
        for f in files:
            with contextlib.suppress(OSError):
                st = os.stat(Path(root) / f)
                out[Path(root) / f] = (st.st_mtime_ns, st.st_size)
    return out


@contextlib.contextmanager
def created_output_folder(path):
    """:func:`check_output_folder`, and on an error inside the block everything the block wrote into the folder is
    removed again (new files and folders; earlier files are never touched; an earlier run a replacing run had set
    aside, :func:`set_run_aside`, is put back), then the folder and its parents when the block created them: a
    failed run leaves nothing behind. Unless it saved a checkpoint (``checkpoints/*.ckpt`` new or rewritten): then
    the run's files stay (resume from them) and a warning names the newest checkpoint."""
    out = Path(path).absolute()
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    before = _tree(out) if out.is_dir() else {}
    folder = check_output_folder(out)
    try:
        yield folder
    except BaseException as err:
        import shutil

        if not is_rank_zero():  # a DDP worker: the folder is rank 0's to clean up
            raise

        after = _tree(out) if out.is_dir() else {}
        asides = [q for q in after if q.parent == out and q.name.startswith(ASIDE_PREFIX) and q not in before]
        after = {q: st for q, st in after.items() if not any(a in q.parents or a == q for a in asides)}
        saved = [q for q, st in after.items() if st is not None and q.suffix == ".ckpt"
                 and q.parent.name == "checkpoints" and before.get(q) != st]
        if saved:
            for a in asides:  # the failed run did replace the earlier one
                shutil.rmtree(a, ignore_errors=True)
            if not getattr(err, "_equivox_kept", False):
                newest = max(saved, key=lambda q: after[q][0])
                warnings.warn(f"the run failed after saving {newest}: kept its files in {out} (continue with --resume "
                              f"{newest} / resume=..., or remove the folder)", UserWarning, stacklevel=3)
                with contextlib.suppress(Exception):
                    err._equivox_kept = True
            raise
        for q in sorted((q for q in after if q not in before), key=lambda q: -len(q.parts)):
            with contextlib.suppress(OSError):
                q.rmdir() if after[q] is None else q.unlink()  # folders: only when left empty
        for a in asides:  # the earlier run a replacing run had set aside goes back in place
            _restore_aside(out, a)
        if existing != out:
            with contextlib.suppress(OSError):
                out.rmdir()
            parent = out.parent
            while parent != existing and parent.exists():
                try:
                    os.rmdir(parent)
                except OSError:
                    break
                parent = parent.parent
        raise
