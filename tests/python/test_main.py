"""python -m damoyolo detect prints what the C++ CLI prints."""

import json
import subprocess
import sys

from conftest import DEMO_IMAGE, DEMO_MODEL, REPO


def test_detect_matches_cli_table(cli, tmp_path):
    args = ["detect", str(DEMO_IMAGE), "-m", str(DEMO_MODEL), "--top", "10"]
    py = subprocess.run([sys.executable, "-m", "damoyolo", *args, "--json", str(tmp_path / "py.json")],
                        check=True, capture_output=True, text=True, cwd=tmp_path).stdout.splitlines()
    c = subprocess.run([str(cli), *args, "--no-draw"], check=True, capture_output=True, text=True,
                       cwd=REPO).stdout.splitlines()
    # First line: same image, size and count (the times differ); then the table.
    assert py[0].split(", ")[:2] == c[0].split(", ")[:2]
    table = [l for l in py if l.startswith("  ")]
    assert table == [l for l in c if l.startswith("  ") and "timings" not in l]
    assert len(table) == 7  # header + the README's 6 detections
    assert py[-1] == "1 image(s) processed, 6 detections, 0 failed"
    rec = json.loads((tmp_path / "py.json").read_text())
    assert len(rec) == 1 and len(rec[0]["detections"]) == 6


def test_detect_missing_file_fails(tmp_path):
    p = subprocess.run([sys.executable, "-m", "damoyolo", "detect", str(tmp_path / "no.jpg"), "-m", str(DEMO_MODEL)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 1 and "no.jpg" in p.stderr
