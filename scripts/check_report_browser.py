"""Open a report in headless Chromium: it renders, every image loads, no console errors; optional screenshot.

    python scripts/check_report_browser.py runs/demo/report.html [--screenshot report.png]

Exit code 0 when the page passes, 1 with the reasons on stderr, 2 when no Chromium is installed
(`apt-get install chromium` on Debian). A copy of the page gets a small script that records, after load,
how many images decoded and any JavaScript error; Chromium's `--dump-dom` prints the DOM with that record,
and `--enable-logging=stderr` its console messages.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
]
# Runs after load: counts images that decoded and records errors into a <pre id="rmteach-check"> element.
PROBE = """
<script>
window.__errors = [];
window.addEventListener("error", e => {
  const src = e.target && (e.target.src || e.target.href);
  window.__errors.push(e.message ? String(e.message) : "failed to load " + String(src || "?").slice(0, 60));
}, true);
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const pre = document.createElement("pre");
  pre.id = "rmteach-check";
  pre.textContent = `images=${imgs.length} loaded=${ok} errors=${window.__errors.length} ` +
    `height=${document.documentElement.scrollHeight} ` + window.__errors.join(" | ");
  document.body.appendChild(pre);
});
</script>
"""
# Console lines Chromium prints for page errors (levels differ across versions).
CONSOLE_ERROR = re.compile(r"(CONSOLE.*(error|Uncaught))|(Failed to load resource)|(ERR_)", re.IGNORECASE)


def find_browser() -> str | None:
    """The first Chromium-like executable on PATH, or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _run(browser: str, args: list[str], profile: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=timeout)


def check(report: Path, screenshot: Path | None = None, *, width: int = 1280, height: int = 5000,
          timeout: float = 120.0) -> list[str]:
    """Open `report` in headless Chromium; returns the problems found (empty when it passes).

    Arguments:
        report: the HTML file.
        screenshot: where to save a PNG of the page (`width` x `height` pixels), or None.
        timeout: seconds per Chromium call.
    """
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (apt-get install chromium)")
    problems = []
    with tempfile.TemporaryDirectory(prefix="rmteach-chromium-") as tmp:
        probe = Path(tmp) / "page.html"
        page = report.read_text(encoding="utf-8")
        probe.write_text(page.replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
        res = _run(browser, ["--dump-dom", probe.as_uri()], str(Path(tmp) / "profile1"), timeout)
        if res.returncode != 0:
            problems.append(f"chromium exited with {res.returncode}: {res.stderr.strip()[-500:]}")
        m = re.search(r'<pre id="rmteach-check">images=(\d+) loaded=(\d+) errors=(\d+) height=(\d+) ?(.*?)</pre>',
                      res.stdout, re.DOTALL)
        if m is None:
            problems.append("the page did not finish loading (no probe record in the DOM)")
        else:
            n, ok, errors, _, text = int(m[1]), int(m[2]), int(m[3]), int(m[4]), m[5]
            if n == 0:
                problems.append("the page has no images")
            if ok != n:
                problems.append(f"{n - ok} of {n} images did not load")
            if errors:
                problems.append(f"{errors} JavaScript errors: {text}")
        bad = [line for line in res.stderr.splitlines() if CONSOLE_ERROR.search(line)]
        if bad:
            problems.append("console errors: " + " / ".join(bad[:5]))
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            res = _run(browser, [f"--screenshot={screenshot.resolve()}", f"--window-size={width},{height}",
                                 report.resolve().as_uri()], str(Path(tmp) / "profile2"), timeout)
            if res.returncode != 0 or not screenshot.is_file():
                problems.append(f"no screenshot written ({res.stderr.strip()[-300:]})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the report.html to open")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a PNG of the page here")
    parser.add_argument("--height", type=int, default=5000, help="screenshot height in pixels (default 5000)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"check_report_browser: no such file: {args.report}", file=sys.stderr)
        return 2
    try:
        problems = check(args.report, args.screenshot, height=args.height)
    except FileNotFoundError as e:
        print(f"check_report_browser: {e}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"check_report_browser: {p}", file=sys.stderr)
    if not problems:
        print(f"{args.report}: renders, images load, no console errors"
              + (f"; screenshot {args.screenshot}" if args.screenshot else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
