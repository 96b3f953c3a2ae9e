"""A zip of the spark_gmm package for ``spark-submit --py-files`` (executors import it)."""

from __future__ import annotations

import os
import pathlib
import zipfile


def build_archive(output: str = "dist/spark_gmm.zip") -> str:
    """Write ``spark_gmm/`` (sources and data, no caches) into a zip; return its path."""
    package = pathlib.Path(__file__).resolve().parents[1]
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, pathlib.Path("spark_gmm") / path.relative_to(package))
    return os.path.abspath(output)
