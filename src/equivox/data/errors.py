"""The exception and warning types of :mod:`equivox.data` for bad user data, and shared checks."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

__all__ = ["DataError", "DataWarning", "check_finite"]


class DataError(ValueError):
    """Bad or inconsistent input data (missing file, unreadable/truncated file, shape/affine mismatch,
    out-of-range labels, empty mesh, malformed archive, NaN/inf values, ...).

    The message always names the offending file(s) and the problem. It subclasses ``ValueError`` so code
    catching ``ValueError`` keeps working. equivox never modifies or deletes the user's files when raising it.
    """


class DataWarning(UserWarning):
    """A file of a many-file dataset was skipped (unreadable, empty, ...); the message names it and says why."""


def check_finite(values, where: str, before: str = "training") -> None:
    """Raise :class:`DataError` naming ``where`` when the array ``values`` holds NaN or infinite values
    (counted, with the first offending index). Integer and boolean arrays pass without a scan. ``before``: what the
    message tells the user to fix the values before (``"training"``, ``"prediction"``)."""
    a = np.asarray(values)
    if a.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(a)
    if not bad.any():
        return
    n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    parts = ([f"{n_nan} NaN"] if n_nan else []) + ([f"{n_inf} inf"] if n_inf else [])
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise DataError(f"{where} holds {' and '.join(parts)} value(s) (first at index {first}) in an array of shape "
                    f"{a.shape}; replace or mask them before {before} (e.g. numpy.nan_to_num)")


def require_file(path: Union[str, Path], what: str = "file") -> Path:
    """``path`` as a :class:`~pathlib.Path` when it is an existing regular file; raises :class:`DataError`
    ``"<what> not found: <path>"`` (or ``"... is not a regular file"``) otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    if not path.is_file():
        raise DataError(f"{what} is not a regular file: {path}")
    return path
