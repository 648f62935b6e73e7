"""Tests for plot.py, on synthetic metrics.jsonl files written in tmp_path the way train.py writes them."""
import glob
import json
import os
import re
import struct
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import plot  # noqa: E402

PNGS = ("val_loss_vs_step.png", "val_loss_vs_flops.png", "sparsity.png")


def mst_phase(step):
    if step < 20:
        return "initial" if step < 5 else "sparsify"
    return "ultra" if step < 80 else "restoration" if step < 100 else "final"


def write_run(path, mst, max_iters=100, eval_interval=25, log_interval=10, header=True, params=1000,
              tokens_per_iter=8192, train_tokens=500_000, loss_offset=None, settings=None):
    """train.py's record order: the header, then the eval of step s (before training it), then the log record
    after step s."""
    header = {"run": {"max_iters": max_iters, "n_layer": 2, "n_embd": 64, "dataset": "synthetic", "mst": mst,
                      **(settings or {})},
              "params": params, "tokens_per_iter": tokens_per_iter, "train_tokens": train_tokens,
              "resumed_at": 0} if header else None
    if loss_offset is None:
        loss_offset = 0.4321 if mst else 0.1234
    records, flops, flops_dense = [header] if header else [], 0.0, 0.0
    for step in range(max_iters + 1):
        phase = mst_phase(step) if mst else "dense"
        attn_mode, attn_window = ("blocksparse", 64) if phase == "ultra" else ("dense", 256)
        target = {"sparsify": 0.9 * step / 20, "ultra": 0.9, "restoration": 0.9 * (100 - step) / 20}.get(phase, 0.0)
        if step % eval_interval == 0 or step == max_iters:
            val_loss = 10.0 / (1 + step / 10) + loss_offset
            records.append({"step": step, "train_loss": val_loss - 0.1, "val_loss": val_loss, "phase": phase,
                            "attn_mode": attn_mode, "attn_window": attn_window, "flops": flops,
                            "flops_dense": flops_dense})
        if step == max_iters:
            break
        flops_dense += 3e12
        flops += 3e12 * (1 - 0.75 * target) if mst else 3e12
        if step % log_interval == 0 or step == max_iters - 1:
            ms = 500.0 if step == 0 else 40.0 + step % 7
            records.append({"step": step, "loss": 3.0, "lr": 1e-3, "phase": phase, "target_sparsity": target,
                            "sparsity": target * 0.98, "attn_mode": attn_mode, "attn_window": attn_window,
                            "ms_per_step": ms, "tokens_per_s": tokens_per_iter / (ms / 1000), "mfu": 0.3,
                            "flops": flops, "flops_dense": flops_dense, "flops_ratio": flops / flops_dense,
                            "topology_changes": 0})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return records


def final(records):
    """The final val loss and counted FLOPs, read off the records by hand."""
    last_eval = [r for r in records if "val_loss" in r][-1]
    return last_eval["val_loss"], last_eval["flops"]


def run_plot(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "plot.py"), *args], capture_output=True, text=True,
                          timeout=60)


def table(stdout):
    """The printed markdown table's header and rows, as lists of cells (the separator line left out)."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return rows[:1] + rows[2:]


def by_label(stdout):
    """{label: [cells]} from the rows of curves' table."""
    return {row[0]: row[1:] for row in table(stdout)[1:]}


def assert_one_line_error(result):
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def assert_png(path):
    width, height = png_size(path)
    assert 400 <= width <= 4000 and 300 <= height <= 4000, (path, width, height)


def test_curves_plots_and_table(tmp_path):
    dense = write_run(str(tmp_path / "dense.jsonl"), mst=False)
    mst = write_run(str(tmp_path / "out_mst" / "metrics.jsonl"), mst=True)
    out = tmp_path / "plots"
    result = run_plot("curves", f"dense run={tmp_path / 'dense.jsonl'}", str(tmp_path / "out_mst"), "--out", str(out),
                      "--title", "synthetic")
    assert result.returncode == 0, result.stderr
    for name in PNGS:
        assert_png(out / name)

    rows = by_label(result.stdout)
    assert list(rows) == ["dense run", "out_mst"]  # a LABEL=PATH label, and an out_dir's name
    assert rows["dense run"][0] == f"{final(dense)[0]:.3f}"
    assert rows["out_mst"][0] == f"{final(mst)[0]:.3f}"
    ratio = final(mst)[1] / final(dense)[1]
    assert 0.3 < ratio < 0.8
    assert rows["dense run"][2] == "1.000x"
    assert rows["out_mst"][2] == f"{ratio:.3f}x"


def test_curves_without_mst_write_no_sparsity_plot(tmp_path):
    write_run(str(tmp_path / "a.jsonl"), mst=False)
    write_run(str(tmp_path / "b.jsonl"), mst=False, max_iters=50, header=False)  # an old run, from before headers
    out = tmp_path / "plots"
    result = run_plot("curves", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == ["val_loss_vs_flops.png", "val_loss_vs_step.png"]
    assert "no sparsity.png" in result.stdout
    assert list(by_label(result.stdout)) == ["a", "b"]  # the files' stems


@pytest.mark.parametrize("content", [
    None, "", '{"step": 0, "val_loss": 3.0',  # missing, empty, not JSON
    '{"step": 0, "val_loss": 3.0}',  # an eval record without most of its keys
    '{"val_loss": 3.0, "phase": "dense"}',  # neither a header (no "run") nor a record (no "step")
    '{"run": {}, "params": 10, "tokens_per_iter": 8, "resumed_at": 0}',  # a header without train_tokens
    '{"run": {}, "params": 10, "tokens_per_iter": 8, "train_tokens": 100, "resumed_at": 0}',  # a header, no evals
])
def test_bad_input_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "metrics.jsonl"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "plots"
    result = run_plot("curves", str(path), "--out", str(out))
    assert_one_line_error(result)
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["RUN"],  # no subcommand: the command line from before curves
    ["curves"],
    ["frontier", "--family", "dense"],  # a family with no run
    ["regime", "--pair", "label", "RUN"],  # a pair without its dense run
])
def test_bad_command_lines_are_one_line_errors(tmp_path, args):
    write_run(str(tmp_path / "run.jsonl"), mst=False)
    args = [str(tmp_path / "run.jsonl") if a == "RUN" else a for a in args]
    out = tmp_path / "plots"
    assert_one_line_error(run_plot(*args, "--out", str(out)))
    assert not out.exists()


def test_summary_numbers():
    run = {"evals": [{"step": 0, "val_loss": 9.0, "flops": 0.0}, {"step": 20, "val_loss": 4.0, "flops": 2e10}],
           "logs": [{"step": s, "ms_per_step": ms, "tokens_per_s": tps, "flops": 1e9 * (s + 1)}
                    for s, ms, tps in [(0, 900, 1), (5, 100, 2), (10, 20, 100), (15, 20, 200), (19, 20, 999)]]}
    s = plot.summarize(run)
    assert s["val_loss"] == 4.0 and s["flops"] == 2e10
    assert s["steps"] == 20  # the eval at step 20 comes after steps 0 to 19
    # tokens/s: the first two log records (start-up) and the last (a partial interval) are left out
    assert s["tokens_per_s"] == pytest.approx(150)
    # wall: each record's ms_per_step times the steps since the previous record (1 step for step 0)
    assert s["wall_s"] == pytest.approx((900 + 100 * 5 + 20 * 5 + 20 * 5 + 20 * 4) / 1000)


def test_resumed_run_keeps_the_later_records_and_header(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = write_run(str(path), mst=False)
    with open(path, "a") as f:  # a resume from step 75 writes a header, then records for steps it had logged
        f.write(json.dumps(dict(records[0], resumed_at=75, train_tokens=600_000)) + "\n")
        f.writelines(json.dumps(dict(r, val_loss=r["val_loss"] - 1) if "val_loss" in r else r) + "\n"
                     for r in records[1:] if r["step"] >= 75)
    run = plot.load_run(f"x={path}")
    assert run["label"] == "x"
    assert run["header"]["resumed_at"] == 75 and run["header"]["train_tokens"] == 600_000
    assert [r["step"] for r in run["evals"]] == [0, 25, 50, 75, 100]
    assert run["evals"][-1]["val_loss"] == pytest.approx(records[-1]["val_loss"] - 1)


def test_committed_results_use_the_new_names():
    names = sorted(glob.glob(os.path.join(REPO, "results", "**", "*.jsonl"), recursive=True))
    plotted = {os.path.join(REPO, "results", "docmix", path) for path in
               re.findall(r"(\d+m/[\w.]+\.jsonl)", open(os.path.join(REPO, "results", "docmix", "plots.sh")).read())}
    assert len(plotted) > 10 and plotted <= set(names)  # every run the plots draw is committed
    for name in names:
        run = plot.load_run(name)
        phases = {r["phase"] for r in run["evals"] + run["logs"]}
        assert phases <= {"initial", "sparsify", "ultra", "restoration", "final", "dense"}, (name, phases)
        assert plot.summarize(run)["flops"] > 0


def test_spans_of_phases():
    records = [{"step": s, "phase": mst_phase(s)} for s in (0, 10, 20, 30, 80, 90, 99, 100)]
    assert plot.spans(records, "phase") == [["initial", 0, 10], ["sparsify", 10, 20], ["ultra", 20, 80],
                                            ["restoration", 80, 100], ["final", 100, 100]]


def test_frontier(tmp_path):
    runs = {name: write_run(str(tmp_path / f"{name}.jsonl"), mst=name.startswith("mst"), max_iters=iters)
            for name, iters in [("mst_long", 100), ("mst_short", 60), ("dense_long", 100), ("dense_short", 40)]}
    out = tmp_path / "plots"
    # each family's runs out of FLOP order, and the families in the order they are to keep
    result = run_plot("frontier", "--family", "MST", str(tmp_path / "mst_long.jsonl"),
                      f"short={tmp_path / 'mst_short.jsonl'}", "--family", "dense", str(tmp_path / "dense_long.jsonl"),
                      str(tmp_path / "dense_short.jsonl"), "--out", str(out), "--title", "synthetic")
    assert result.returncode == 0, result.stderr
    assert_png(out / "frontier.png")

    header, *rows = table(result.stdout)
    assert header == ["family", "run", "final val loss", "counted FLOPs", "FLOPs vs dense_long"]
    assert [row[:2] for row in rows] == [["MST", "short"], ["MST", "mst_long"], ["dense", "dense_short"],
                                         ["dense", "dense_long"]]
    largest = final(runs["dense_long"])[1]
    for row, name in zip(rows, ["mst_short", "mst_long", "dense_short", "dense_long"]):
        val_loss, flops = final(runs[name])
        assert row[2:] == [f"{val_loss:.3f}", f"{flops:.3e}", f"{flops / largest:.3f}x"], name
    assert rows[-1][4] == "1.000x"


def test_frontier_reference(tmp_path):
    mst = write_run(str(tmp_path / "mst.jsonl"), mst=True)
    dense = write_run(str(tmp_path / "dense.jsonl"), mst=False)
    baseline = write_run(str(tmp_path / "baseline.jsonl"), mst=False, max_iters=50)  # in no family
    result = run_plot("frontier", "--family", "MST", str(tmp_path / "mst.jsonl"), "--family", "dense",
                      str(tmp_path / "dense.jsonl"), "--reference", f"half={tmp_path / 'baseline.jsonl'}",
                      "--out", str(tmp_path / "plots"))
    assert result.returncode == 0, result.stderr
    header, *rows = table(result.stdout)
    assert header[-1] == "FLOPs vs half" and [row[1] for row in rows] == ["mst", "dense"]
    assert rows[0][-1] == f"{final(mst)[1] / final(baseline)[1]:.3f}x"
    assert rows[1][-1] == "2.000x" == f"{final(dense)[1] / final(baseline)[1]:.3f}x"


def test_isoflop(tmp_path):
    runs = {  # name: (width, peak sparsity, loss offset); two seeds of the 48-wide MST model
        "dense32": (32, 0.0, 0.30), "mst48_s1": (48, 0.5, 0.20), "mst48_s2": (48, 0.5, 0.26), "mst64": (64, 0.8, 0.50)}
    for name, (width, peak, offset) in runs.items():
        write_run(str(tmp_path / f"{name}.jsonl"), mst=peak > 0, loss_offset=offset,
                  settings={"n_embd": width, "peak_sparsity": 0.8 if peak == 0 else peak})  # dense: the key unused
    write_run(str(tmp_path / "small.jsonl"), mst=True, loss_offset=0.9, settings={"n_embd": 64, "peak_sparsity": 0.9})
    out = tmp_path / "plots"
    result = run_plot("isoflop", "--budget", "big", *(str(tmp_path / f"{name}.jsonl") for name in
                                                     ("mst64", "mst48_s2", "dense32", "mst48_s1")),
                      "--budget", "small", str(tmp_path / "small.jsonl"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert_png(out / "isoflop.png")
    header, *rows = table(result.stdout)
    assert header == ["budget", "run", "width", "peak sparsity", "final val loss", "counted FLOPs"]
    assert [row[:4] for row in rows] == [["big", "dense32", "32", "0.000"], ["big", "mst48_s2", "48", "0.500"],
                                         ["big", "mst48_s1", "48", "0.500"], ["big", "mst64", "64", "0.800"],
                                         ["small", "small", "64", "0.900"]]
    assert rows[1][4] == f"{10.0 / 11 + 0.26:.3f}"  # the final val loss of step 100
    write_run(str(tmp_path / "bare.jsonl"), mst=True, header=False)
    result = run_plot("isoflop", "--budget", "x", str(tmp_path / "bare.jsonl"), "--out", str(out))
    assert result.returncode == 2 and "has no header record" in result.stderr


def test_regime(tmp_path):
    gpt = {"vocab_size": 1000, "block_size": 24}  # with n_embd 64: 65,536 embedding parameters
    pairs = [  # (series, MST run's records, dense run's records)
        ("small", write_run(str(tmp_path / "mst_a.jsonl"), mst=True, params=99_000, settings=gpt),
         write_run(str(tmp_path / "dense_a.jsonl"), mst=False, params=81_536, settings=gpt)),
        ("other", write_run(str(tmp_path / "mst_c.jsonl"), mst=True, params=99_000, settings=gpt, loss_offset=0.05),
         write_run(str(tmp_path / "dense_c.jsonl"), mst=False, params=81_536, settings=gpt)),
        ("small", write_run(str(tmp_path / "mst_b.jsonl"), mst=True, max_iters=50, params=99_000, settings=gpt,
                            tokens_per_iter=4096, loss_offset=0.05),
         write_run(str(tmp_path / "dense_b.jsonl"), mst=False, max_iters=50, params=81_536, settings=gpt,
                   tokens_per_iter=4096)),
    ]
    out = tmp_path / "plots"
    result = run_plot("regime", *[arg for series, name in zip(("small", "other", "small"), "acb")
                                  for arg in ("--pair", series, str(tmp_path / f"mst_{name}.jsonl"),
                                              str(tmp_path / f"dense_{name}.jsonl"))],
                      "--out", str(out), "--title", "synthetic")
    assert result.returncode == 0, result.stderr
    assert_png(out / "regime.png")

    header, *rows = table(result.stdout)
    assert header == ["pair", "tokens/param", "tokens/non-emb param", "epochs", "MST val loss", "MST FLOPs",
                      "dense val loss", "dense FLOPs", "FLOPs MST/dense", "MST - dense"]
    assert [row[0] for row in rows] == [series for series, _, _ in pairs]
    for row, (_, mst, dense) in zip(rows, pairs):
        (mst_loss, mst_flops), (dense_loss, dense_flops) = final(mst), final(dense)
        assert row[4:] == [f"{mst_loss:.3f}", f"{mst_flops:.3e}", f"{dense_loss:.3f}", f"{dense_flops:.3e}",
                           f"{mst_flops / dense_flops:.3f}x", f"{mst_loss - dense_loss:+.3f}"]
    # by hand, from the dense run: 100 steps x 8192 tokens over 81,536 parameters, 16,000 of them outside the
    # embeddings, and a 500,000-token training set; then 50 x 4096
    assert [row[1:4] for row in rows] == [["10.05", "51.2", "1.64"], ["10.05", "51.2", "1.64"],
                                          ["2.512", "12.8", "0.41"]]
    assert [row[-1][0] for row in rows] == ["+", "-", "-"]  # MST's offset 0.43 against dense's 0.12, then 0.05


@pytest.mark.parametrize("broken", ["mst without header", "dense without header", "dense without vocab_size"])
def test_regime_needs_both_headers(tmp_path, broken):
    gpt = {"vocab_size": 1000, "block_size": 24}
    write_run(str(tmp_path / "mst.jsonl"), mst=True, header=broken != "mst without header", settings=gpt)
    write_run(str(tmp_path / "dense.jsonl"), mst=False, header=broken != "dense without header",
              settings={} if broken == "dense without vocab_size" else gpt)
    out = tmp_path / "plots"
    result = run_plot("regime", "--pair", "x", str(tmp_path / "mst.jsonl"), str(tmp_path / "dense.jsonl"),
                      "--out", str(out))
    assert_one_line_error(result)
    culprit = "mst.jsonl" if broken.startswith("mst") else "dense.jsonl"
    assert str(tmp_path / culprit) in result.stderr
    assert ("vocab_size" if broken.endswith("vocab_size") else "header") in result.stderr
    assert not out.exists()
