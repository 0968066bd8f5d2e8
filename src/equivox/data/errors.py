"""The one exception type raised by :mod:`equivox.data` for bad user data."""
from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad or inconsistent input data (missing file, unreadable/truncated file, shape/affine mismatch,
    out-of-range labels, empty mesh, malformed archive, ...).

    The message always names the offending file(s) and the problem. It subclasses ``ValueError`` so code
    catching ``ValueError`` keeps working. equivox never modifies or deletes the user's files when raising it.
    """
