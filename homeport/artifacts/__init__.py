"""Model artifact packaging: fast ``model.tar.gz`` creation and safe extraction.

:mod:`homeport.artifacts.tarball` owns the public API (:func:`pack_dir`, :func:`extract_safe`,
:class:`UnsafeArchiveError`); :mod:`homeport.artifacts.pgzip` owns the parallel gzip encoder it
streams through.
"""

from __future__ import annotations

from homeport.artifacts.tarball import UnsafeArchiveError, extract_safe, pack_dir

__all__ = ["UnsafeArchiveError", "extract_safe", "pack_dir"]
