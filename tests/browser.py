"""Render a local HTML page in headless Chromium: a screenshot, and the state of its images as
the browser saw them after loading."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

# Without the background-networking flags Chromium spends its start on connections this
# closed network refuses.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")

# Appended to a copy of the page: after load, write every image's decoded size into the DOM,
# where --dump-dom can read it (the page under test is not changed).
PROBE = """<script>window.addEventListener('load', () => {
  const images = Array.from(document.images).map(i => ({
    alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}));
  const out = document.createElement('pre'); out.id = 'image-probe';
  out.textContent = JSON.stringify(images); document.body.appendChild(out);
});</script>"""


def chromium() -> str:
    """The Chromium binary; CI (SPARK_GMM_REQUIRE_BROWSER=1) fails instead of skipping."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("SPARK_GMM_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is required here (SPARK_GMM_REQUIRE_BROWSER=1) but not installed")
    pytest.skip("Chromium is not installed (CI installs Debian's chromium)")


def _run(arguments: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               *arguments], capture_output=True, text=True, timeout=120,
                              check=True)


def screenshot(page: str, png: str, width: int = 1280, height: int = 4000) -> None:
    """Render ``page`` (a local file) to ``png``."""
    _run([f"--window-size={width},{height}", f"--screenshot={png}", f"file://{page}"])


def loaded_images(page: str) -> list[dict]:
    """Every ``<img>`` of ``page`` as the browser loaded it: alt, complete, natural size."""
    with open(page, encoding="utf-8") as handle:
        html = handle.read()
    with tempfile.TemporaryDirectory() as directory:
        probed = os.path.join(directory, os.path.basename(page))
        with open(probed, "w", encoding="utf-8") as handle:
            handle.write(html.replace("</body>", PROBE + "</body>"))
        dom = _run(["--virtual-time-budget=10000", "--dump-dom", f"file://{probed}"]).stdout
    found = re.search(r'<pre id="image-probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: the page did not finish loading"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
