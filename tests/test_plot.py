"""Tests for plot.py, on synthetic metrics.jsonl files written in tmp_path the way train.py writes them."""
import json
import os
import struct
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import plot  # noqa: E402

PNGS = ("val_loss_vs_step.png", "val_loss_vs_flops.png", "sparsity.png")


def mst_phase(step):
    return "warmup" if step < 20 else "ultra" if step < 80 else "restoration" if step < 100 else "final"


def write_run(path, mst, max_iters=100, eval_interval=25, log_interval=10):
    """train.py's record order: the eval of step s (before training it), then the log record after step s."""
    records, flops_mst, flops_dense = [], 0.0, 0.0
    for step in range(max_iters + 1):
        phase = mst_phase(step) if mst else "dense"
        attn_mode = "blocksparse" if phase == "ultra" else "dense"
        target = {"warmup": 0.9 * step / 20, "ultra": 0.9, "restoration": 0.9 * (100 - step) / 20}.get(phase, 0.0)
        if step % eval_interval == 0 or step == max_iters:
            val_loss = 10.0 / (1 + step / 10) + (0.4321 if mst else 0.1234)
            records.append({"step": step, "train_loss": val_loss - 0.1, "val_loss": val_loss, "phase": phase,
                            "attn_mode": attn_mode, "flops_mst": flops_mst, "flops_dense": flops_dense})
        if step == max_iters:
            break
        flops_dense += 3e12
        flops_mst += 3e12 * (1 - 0.75 * target) if mst else 3e12
        if step % log_interval == 0 or step == max_iters - 1:
            ms = 500.0 if step == 0 else 40.0 + step % 7
            records.append({"step": step, "loss": 3.0, "lr": 1e-3, "phase": phase, "target_sparsity": target,
                            "sparsity": target * 0.98, "attn_mode": attn_mode, "ms_per_step": ms,
                            "tokens_per_s": 8192 / (ms / 1000), "mfu": 0.3, "flops_mst": flops_mst,
                            "flops_dense": flops_dense, "flops_ratio": flops_mst / flops_dense,
                            "topology_changes": 0})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return records


def run_plot(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "plot.py"), *args], capture_output=True, text=True,
                          timeout=60)


def table(stdout):
    """{label: [cells]} from the rows of the printed markdown table."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in rows[2:]}


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_plots_and_table(tmp_path):
    dense = write_run(str(tmp_path / "dense.jsonl"), mst=False)
    mst = write_run(str(tmp_path / "out_mst" / "metrics.jsonl"), mst=True)
    out = tmp_path / "plots"
    result = run_plot(f"dense run={tmp_path / 'dense.jsonl'}", str(tmp_path / "out_mst"), "--out", str(out),
                      "--title", "synthetic")
    assert result.returncode == 0, result.stderr
    for name in PNGS:
        width, height = png_size(out / name)
        assert 400 <= width <= 4000 and 300 <= height <= 4000, (name, width, height)

    rows = table(result.stdout)
    assert list(rows) == ["dense run", "out_mst"]  # a LABEL=PATH label, and an out_dir's name
    final = lambda records: [r for r in records if "val_loss" in r][-1]["val_loss"]  # noqa: E731
    assert rows["dense run"][0] == f"{final(dense):.3f}"
    assert rows["out_mst"][0] == f"{final(mst):.3f}"
    ratio = max(r["flops_mst"] for r in mst) / max(r["flops_mst"] for r in dense)
    assert 0.3 < ratio < 0.8
    assert rows["dense run"][2] == "1.000x"
    assert rows["out_mst"][2] == f"{ratio:.3f}x"


def test_runs_without_mst_write_no_sparsity_plot(tmp_path):
    write_run(str(tmp_path / "a.jsonl"), mst=False)
    write_run(str(tmp_path / "b.jsonl"), mst=False, max_iters=50)
    out = tmp_path / "plots"
    result = run_plot(str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == ["val_loss_vs_flops.png", "val_loss_vs_step.png"]
    assert "no sparsity.png" in result.stdout
    assert list(table(result.stdout)) == ["a", "b"]  # the files' stems


@pytest.mark.parametrize("content", [None, "", '{"step": 0, "val_loss": 3.0'])  # missing, empty, not JSON
def test_bad_input_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "metrics.jsonl"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "plots"
    result = run_plot(str(path), "--out", str(out))
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr and not out.exists()


def test_summary_numbers():
    run = {"evals": [{"step": 0, "val_loss": 9.0, "flops_mst": 0.0}, {"step": 20, "val_loss": 4.0, "flops_mst": 2e10}],
           "logs": [{"step": s, "ms_per_step": ms, "tokens_per_s": tps, "flops_mst": 1e9 * (s + 1)}
                    for s, ms, tps in [(0, 900, 1), (5, 100, 2), (10, 20, 100), (15, 20, 200), (19, 20, 999)]]}
    s = plot.summarize(run)
    assert s["val_loss"] == 4.0 and s["flops"] == 2e10
    # tokens/s: the first two log records (start-up) and the last (a partial interval) are left out
    assert s["tokens_per_s"] == pytest.approx(150)
    # wall: each record's ms_per_step times the steps since the previous record (1 step for step 0)
    assert s["wall_s"] == pytest.approx((900 + 100 * 5 + 20 * 5 + 20 * 5 + 20 * 4) / 1000)


def test_resumed_run_keeps_the_later_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = write_run(str(path), mst=False)
    with open(path, "a") as f:  # a resume from step 75 appends records for steps it had already logged
        f.writelines(json.dumps(dict(r, val_loss=r["val_loss"] - 1) if "val_loss" in r else r) + "\n"
                     for r in records if r["step"] >= 75)
    run = plot.load_run(f"x={path}")
    assert run["label"] == "x"
    assert [r["step"] for r in run["evals"]] == [0, 25, 50, 75, 100]
    assert run["evals"][-1]["val_loss"] == pytest.approx(records[-1]["val_loss"] - 1)


def test_spans_of_phases():
    records = [{"step": s, "phase": mst_phase(s)} for s in (0, 10, 20, 30, 80, 90, 99, 100)]
    assert plot.spans(records, "phase") == [["warmup", 0, 20], ["ultra", 20, 80], ["restoration", 80, 100],
                                            ["final", 100, 100]]
