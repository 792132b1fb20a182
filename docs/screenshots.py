"""Render pages of the built site in headless Chromium and save screenshots.

    python docs/screenshots.py [OUT_DIR] [--build DIR]

OUT_DIR defaults to /work/screens (outside the repository); a long page is saved as several
1280 x 2000 screens, from the top (needs matplotlib to cut them). The site must be built first
(``sphinx-build -W --keep-going -b html docs docs/_build/html``). Needs Debian's ``chromium``
package (``apt-get install -y chromium``). Prints each screenshot's path.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> (page, how many 2000-pixel screens of it, from the top)
PAGES = {
    "index": ("index.html", 2),
    "tutorial-exercise": ("tutorials/exercise.html", 3),
    "tutorial-taylor": ("tutorials/taylor.html", 2),
    "howto-notebooks-and-plots": ("howto/notebooks-and-plots.html", 2),
    "api-check": ("reference/generated/fastgc.check.html", 1),
    "api-index": ("reference/api.html", 1),
}
HEIGHT = 2000


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no chromium found: apt-get install -y chromium")


def screenshot(page: Path, out: Path, width: int = 1280, height: int = HEIGHT,
               dark: bool = False) -> None:
    """The top ``width x height`` pixels of one page, to ``out`` (PNG)."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--hide-scrollbars", "--virtual-time-budget=5000", f"--user-data-dir={profile}",
               f"--window-size={width},{height}", f"--screenshot={out}"]
        if dark:
            cmd.append("--force-dark-mode")
        cmd.append(page.as_uri())
        subprocess.run(cmd, check=True, capture_output=True, timeout=120,
                       env=dict(os.environ, HOME=profile))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="/work/screens")
    parser.add_argument("--build", default=str(HERE / "_build" / "html"))
    args = parser.parse_args(argv)
    build, out = Path(args.build).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (rel, screens) in PAGES.items():
        page = build / rel
        if not page.exists():
            sys.exit(f"{page} does not exist: build the site first")
        target = out / f"{name}.png"
        screenshot(page, target, height=HEIGHT * screens)
        if screens == 1:
            print(target)
            continue
        # one file per screen, so that each can be looked at at full resolution
        import matplotlib.image

        image = matplotlib.image.imread(target)
        target.unlink()
        for k in range(screens):
            part = out / f"{name}-{k + 1}.png"
            matplotlib.image.imsave(part, image[k * HEIGHT:(k + 1) * HEIGHT])
            print(part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
