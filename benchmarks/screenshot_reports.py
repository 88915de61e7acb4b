"""Open report.html / compare.html pages in headless Chromium (Debian's `chromium`), fail on
console errors, and save a PNG screenshot of each.

    python benchmarks/screenshot_reports.py PAGE.html [PAGE.html ...] [--out DIR]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--window-size=1200,2400"]
# Chromium logs page console messages as ...:INFO:CONSOLE:12] "message", source: file:///... (12)
# (older builds: CONSOLE(12)]); an uncaught exception reads "Uncaught ReferenceError: ...".
CONSOLE = re.compile(r"CONSOLE[:(]\d+\)?\] \"(?P<msg>.*)\", source: (?P<src>\S+)")


def screenshot(page: Path, png: Path) -> list[str]:
    """Screenshot ``page`` into ``png``; return the console errors it logged."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                               page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    errors = [m.group("msg") for m in CONSOLE.finditer(proc.stderr) if "error" in m.group("msg").lower()]
    if not png.is_file():
        errors.append(f"no screenshot written (exit {proc.returncode})")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    failed = False
    for page in args.pages:
        png = args.out / f"{page.resolve().parent.name}-{page.stem}.png"  # report.html of several runs
        errors = screenshot(page, png)
        print(f"{page}: screenshot {png} ({png.stat().st_size if png.is_file() else 0:,} bytes), "
              f"{len(errors)} console errors")
        for e in errors:
            print(f"  {e}")
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
