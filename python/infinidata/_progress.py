"""Progress bars for long operations (the ``progress=`` keyword).

``progress=None`` (the default) shows a tqdm bar when tqdm is installed, stderr is a
terminal and the ``CI`` environment variable is unset or empty; ``True`` always shows one
(and raises ImportError naming tqdm when it is not installed); ``False`` never does.
tqdm is optional: nothing else here needs it.
"""

import os
import sys

__all__ = ["wanted", "start"]


def wanted(progress):
    """Whether to show a bar for this ``progress`` keyword value."""
    if progress is None:
        if os.environ.get("CI"):
            return False
        try:
            if sys.stderr is None or not sys.stderr.isatty():
                return False
        except (AttributeError, ValueError, OSError):
            return False
        try:
            import tqdm  # noqa: F401
        except ImportError:
            return False
        return True
    if progress is True:
        try:
            import tqdm  # noqa: F401
        except ImportError:
            raise ImportError("progress=True needs tqdm (pip install tqdm); "
                              "use progress=None or False without it") from None
        return True
    if progress is False:
        return False
    raise TypeError(f"progress must be None, True or False, not {type(progress).__name__}")


def start(progress, total, desc, unit="B"):
    """A tqdm bar with ``update(n)`` and ``close()``, or None when none is wanted.
    ``total`` < 0 means unknown."""
    if not wanted(progress):
        return None
    from tqdm import tqdm

    return tqdm(total=total if total is not None and total >= 0 else None, desc=desc, unit=unit,
                unit_scale=True, unit_divisor=1024 if unit == "B" else 1000, leave=False,
                file=sys.stderr, dynamic_ncols=True)
