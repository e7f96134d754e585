"""A real headless browser for the tests of ptor's pages (Debian's chromium, which
.ci/setup installs): the page as chromium built it (`--dump-dom`), or a screenshot."""

import shutil
import subprocess

CHROMIUM = shutil.which("chromium")


def browse(page: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """chromium on `page` (a file), with a profile of its own and its log on stderr, so a
    request the page's policy refused shows there ("Refused to ...")."""
    assert CHROMIUM, "chromium is not installed (.ci/setup installs it)"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
         *args, f"file://{page}"],
        capture_output=True, text=True, timeout=120, check=False, cwd=str(tmp_path))
