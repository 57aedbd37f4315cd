"""One BLAS thread for small products, without changing the caller's own setting.

The simulator's many small matrix products and the batched window read's tone fit are too
small for a second BLAS thread to pay (it only adds waiting, and on a shared machine it
competes with the others' work); the caller's thread counts are restored on exit.
"""
from __future__ import annotations

import contextlib


class OneBlasThread:
    """Context factory: one BLAS thread for tiny products (a second thread only adds waiting).

    The caller's setting is restored on exit. Without ``threadpoolctl`` it does nothing.
    The BLAS libraries are found once (``threadpoolctl``) and each context only reads and sets
    their thread counts (~10 us; ``ThreadpoolController.limit`` inspects them anew each time)."""

    def __init__(self):
        self._libs = None

    def __call__(self):
        if self._libs is None:
            try:
                from threadpoolctl import ThreadpoolController
                self._libs = ThreadpoolController().select(user_api="blas").lib_controllers
            except ImportError:
                self._libs = []
        if not self._libs:
            return contextlib.nullcontext()
        return self._limit()

    @contextlib.contextmanager
    def _limit(self):
        before = [lib.num_threads for lib in self._libs]
        changed = [(lib, n) for lib, n in zip(self._libs, before) if n != 1]
        for lib, _ in changed:
            lib.set_num_threads(1)
        try:
            yield
        finally:
            for lib, n in changed:
                lib.set_num_threads(n)


one_blas_thread = OneBlasThread()  # process-wide; each ``with one_blas_thread():`` reads and restores the counts
