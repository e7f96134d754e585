"""report.html of a real drill, opened in a real headless browser (Debian's chromium): it
renders, the verdict and the timeline picture are on screen, and the page asks for
nothing (its Content-Security-Policy would refuse it, and chromium would say so)."""

import os

import matplotlib.image

from .browser import CHROMIUM, browse


def test_a_drills_page_renders_with_its_verdict_and_picture(make_lab, run_ptor, tmp_path):
    assert CHROMIUM, "chromium is not installed (.ci/setup installs it)"
    lab = make_lab("sync")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--parallel-workers", "2",
                   "--warmup-duration", "1", "--duration", "20", "--observe-after", "2",
                   "--lab-dir", lab.dir, "--fault", "kill-primary:1")
    assert run.code == 0, run
    page = os.path.join(run.report["run_dir"], "report.html")
    dom = browse(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "PASS</span>" in dom.stdout and "What happened" in dom.stdout
    assert run.report["account"][0].split(" ")[0] in dom.stdout
    # the PostgreSQL version as the primary says it, in "Where it ran"
    ((version,),) = lab.nodes["node1"].query("SHOW server_version")
    assert run.report["servers"]["postgres_version"] == version
    assert f"<td>{version}</td>" in dom.stdout
    assert "Refused to" not in dom.stderr and "net::ERR" not in dom.stderr, dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    done = browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,2400",
                  "--hide-scrollbars")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    pixels = matplotlib.image.imread(str(shot))[:, :, :3]
    assert pixels.shape[:2] == (2400, 1200)

    def seen(rgb) -> int:
        colour = [c / 255 for c in rgb]
        return int((abs(pixels - colour).max(axis=2) < 0.02).sum())
    assert seen((0x2c, 0xa0, 0x2c)) > 100  # the PASS badge
    assert seen((0x2b, 0x7b, 0xba)) > 1000  # the timeline's bars of ok ops: the picture
