"""bench.py's code path on a tiny model on the CPU (timings are not checked: CPU CI cannot)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_smoke_writes_every_row(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "bench.py"), "--smoke"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path) == ["out"]  # the report goes under out/, not into the working directory
    out = tmp_path / "out" / "bench.md"
    table = out.read_text()
    rows = [line.split("|")[3].strip() for line in table.splitlines() if line.startswith("| 64 | 2 |")]
    # (a)-(c), then again with the FP8 output layer (the CPU has FP8 products in torch >= 2.5), then (d)
    assert rows == ["dense", "masked", "hsa", "dense fp8 head", "masked fp8 head", "hsa fp8 head", "update"]
    assert "frames compiled by 4 extra mode flips: 0" in table  # eager on the CPU: nothing compiles
    assert "| 64 | flash causal |" in table
