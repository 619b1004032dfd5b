"""genseq as a user installs it: a wheel, used from a folder that is not the clone."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_runs_the_demo_outside_the_clone(tmp_path):
    """The wheel holds everything the demo needs (shipped models, clips, sprites): unpacked on its
    own and imported ahead of the clone, it writes the whole page from another folder."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w",
                            str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("genseq-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert not (site / "corpora").exists()  # the corpora stay in the clone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import genseq, genseq.cli; "
            f"assert genseq.__file__.startswith({str(site)!r}), genseq.__file__; "
            "genseq.cli.main(['demo', '-o', 'demo'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    page = (elsewhere / "demo" / "index.html").read_text(encoding="utf-8")
    assert page.count("<section>") == 13 and page.count("<audio") == 6
    assert len(list((elsewhere / "demo").glob("*.png"))) >= 9
