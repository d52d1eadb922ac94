"""Which browser the browser tests drive, and how ``make test`` gets one.

In this order: the one ``RECIPES_CHROMIUM`` names; a Chromium or Google Chrome
installed on this machine; Playwright's own Chromium. ``python
tests/browsers.py --install`` (run by the Makefile before the tests) finds
one, or installs one: Debian's ``chromium`` package when it runs as root on
a Debian-like system, else Playwright's (``python -m playwright install
chromium``). Where none can be had, it says what would do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ON_PATH = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
APPS = (
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
)
MISSING = (
    "no browser for the browser tests; any one of these gives one:\n"
    "  1. RECIPES_CHROMIUM=/path/to/chromium-or-chrome make test\n"
    "  2. install Chromium or Google Chrome (Debian or Ubuntu: apt-get install chromium)\n"
    "  3. .venv/bin/python -m playwright install chromium"
)


def playwright_chromium() -> Path | None:
    """Playwright's own Chromium, if it has been installed."""
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = Path(p.chromium.executable_path)
    except Exception:  # no driver, or no browser downloaded yet
        return None
    return path if path.is_file() else None


def find() -> Path | None:
    named = os.environ.get("RECIPES_CHROMIUM")
    if named:
        return Path(named) if Path(named).is_file() else None
    for name in ON_PATH:
        found = shutil.which(name)
        if found:
            return Path(found)
    for app in APPS:
        if Path(app).is_file():
            return Path(app)
    return playwright_chromium()


def _apt_install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(command, env=env).returncode != 0:  # a stale package list: refresh it
        subprocess.run(["apt-get", "update", "-q"], env=env)
        subprocess.run(command, env=env)


def install() -> Path | None:
    if find() or os.environ.get("RECIPES_CHROMIUM"):
        return find()
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install()
    if find() is None:
        subprocess.run([sys.executable, "-m", "playwright", "install", "chromium"])
    return find()


def main(argv: list[str]) -> int:
    found = install() if "--install" in argv else find()
    if found is None:
        print(f"browsers: {MISSING}", file=sys.stderr)
        return 1
    print(f"browsers: the browser tests use {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
