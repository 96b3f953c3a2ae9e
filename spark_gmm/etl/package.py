"""A zip of the spark_gmm package for ``spark-submit --py-files`` (executors import it).

The benchmark (``bench/``) stays out: no executor loads it, and it is run where spark-gmm is
installed with its ``bench`` extra.
"""

from __future__ import annotations

import os
import pathlib
import zipfile


def build_archive(output: str = "dist/spark_gmm.zip") -> str:
    """Write ``spark_gmm/`` (sources and data, no caches, no benchmark) into a zip; return
    its path."""
    package = pathlib.Path(__file__).resolve().parents[1]
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*")):
            relative = path.relative_to(package)
            if (path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
                    and relative.parts[0] != "bench"):
                archive.write(path, pathlib.Path("spark_gmm") / relative)
    return os.path.abspath(output)
