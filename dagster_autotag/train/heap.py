"""Give freed heap memory back to the OS between inference chunks (glibc), so that scoring a day
costs the same resident memory whatever the day's size.

Measured with bench/bert_memory.py (issue #15): scoring 100k texts with a tiny BERT grew RSS by
~270 MB more than scoring 10k, though every chunk has the same bounded size. glibc keeps what the
tokenizer's threads, torch's intra-op threads and the prefetch thread freed in their own arenas,
and raises its mmap threshold as ever wider batches are freed (texts are scored shortest first),
so later batches come from a heap that fragments. `malloc_trim(0)` returns the free pages of every
arena; it costs well under a millisecond against a chunk's hundreds.
"""

import ctypes
import ctypes.util
from functools import cache


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_free_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
