"""Give freed heap memory back to the operating system between chunks.

Localizing a stack allocates and frees arrays of tens of MB per forward pass
(maps, activations, peak-finder temporaries) while the tables of the chunks
already done stay alive. glibc serves blocks of that size from its heap once
its dynamic mmap threshold has risen, and the surviving tables split the
freed space, so the heap grows with every chunk and is never given back
(about 40 MB per chunk of 128 frames of 256 x 256 whose table holds under
1 MB).
``malloc_trim(0)`` returns the heap's free pages, also those in its middle
(glibc 2.8 and later); once per chunk it costs a few milliseconds. Elsewhere
(macOS, Windows, musl) :func:`trim_heap` does nothing.
"""

import ctypes
import sys

__all__ = ["trim_heap"]


def _find_malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library of this process
    except (OSError, AttributeError):  # a C library without it (musl)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def trim_heap():
    """Return the free pages of the C heap to the operating system.

    Returns
    -------
    trimmed : bool
        Whether memory was given back (always False where the C library has
        no ``malloc_trim``).
    """
    return bool(_MALLOC_TRIM(0)) if _MALLOC_TRIM is not None else False
