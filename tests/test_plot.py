"""Tests for plot.py, on synthetic metrics.jsonl files written in tmp_path the way train.py writes them."""
import glob
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
    if step < 20:
        return "initial" if step < 5 else "sparsify"
    return "ultra" if step < 80 else "restoration" if step < 100 else "final"


def write_run(path, mst, max_iters=100, eval_interval=25, log_interval=10, header=True, params=1000,
              tokens_per_iter=8192, train_tokens=500_000, loss_offset=None, settings=None, flops_per_step=3e12,
              val_losses=None, train_losses=None):
    """train.py's record order: the header, then the eval of step s (before training it), then the log record
    after step s. The val loss of step s is 10 / (1 + s / 10) + loss_offset, or the evaluations' val_losses;
    the train loss 0.1 below it, or the evaluations' train_losses."""
    header = {"run": {"max_iters": max_iters, "n_layer": 2, "n_embd": 64, "dataset": "synthetic", "mst": mst,
                      **(settings or {})},
              "params": params, "tokens_per_iter": tokens_per_iter, "train_tokens": train_tokens,
              "resumed_at": 0} if header else None
    if loss_offset is None:
        loss_offset = 0.4321 if mst else 0.1234
    records, flops, flops_dense = [header] if header else [], 0.0, 0.0
    given, given_train = iter(val_losses or ()), iter(train_losses or ())
    for step in range(max_iters + 1):
        phase = mst_phase(step) if mst else "dense"
        attn_mode, attn_window = ("blocksparse", 64) if phase == "ultra" else ("dense", 256)
        target = {"sparsify": 0.9 * step / 20, "ultra": 0.9, "restoration": 0.9 * (100 - step) / 20}.get(phase, 0.0)
        if step % eval_interval == 0 or step == max_iters:
            val_loss = next(given) if val_losses else 10.0 / (1 + step / 10) + loss_offset
            train_loss = next(given_train) if train_losses else val_loss - 0.1
            records.append({"step": step, "train_loss": train_loss, "val_loss": val_loss, "phase": phase,
                            "attn_mode": attn_mode, "attn_window": attn_window, "flops": flops,
                            "flops_dense": flops_dense})
        if step == max_iters:
            break
        flops_dense += flops_per_step
        flops += flops_per_step * (1 - 0.75 * target) if mst else flops_per_step
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


def test_committed_results_are_readable_runs():
    names = sorted(glob.glob(os.path.join(REPO, "results", "**", "*.jsonl"), recursive=True))
    assert len(names) > 10
    for name in names:
        run = plot.load_run(name)
        phases = {r["phase"] for r in run["evals"] + run["logs"]}
        assert phases <= {"initial", "sparsify", "ultra", "restoration", "final", "dense"}, (name, phases)
        assert plot.summarize(run)["flops"] > 0


def test_committed_dense_runs_are_one_family_at_every_rate():
    """The committed 12 x 128 runs, made months apart (older headers lack newer settings, which ran at their
    defaults; other out_dirs and min_lr), are one family; its best rate is bracketed."""
    paths = sorted(glob.glob(os.path.join(REPO, "results", "docmix", "0078x", "dense_12x128_*.jsonl")))
    finals = {}
    for path in paths:
        run = plot.load_run(path)
        finals.setdefault(run["header"]["run"]["learning_rate"], []).append(run["evals"][-1]["val_loss"])
    [budget] = plot.sweep([plot.load_run(path) for path in paths])
    [family] = budget["families"]
    assert family["name"] == "dense 12x128" and len(finals) >= 5 and family["bracketed"]
    assert family["means"] == pytest.approx({rate: sum(v) / len(v) for rate, v in finals.items()})
    # ranked on seed 1337, the one seed every rate ran (seed 2 ran at and next to the best only)
    first_seed = {}
    for path in paths:
        run = plot.load_run(path)
        if run["header"]["run"]["seed"] == 1337:
            first_seed[run["header"]["run"]["learning_rate"]] = run["evals"][-1]["val_loss"]
    assert sorted(first_seed) == sorted(finals) and family["best"] == min(first_seed, key=first_seed.get)


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


def test_frontier_averages_seeds(tmp_path, monkeypatch):
    """Two seeds of one run are one point of the line, at their mean, with a dot each and one label, though
    one header is older; a run that differs in more than its seed (its length), and one without a header,
    are points of their own."""
    # the second seed's header is newer: it records a setting at its default that the first one lacks
    seeds = [write_run(str(tmp_path / f"s{seed}.jsonl"), mst=False, loss_offset=offset,
                       settings={"learning_rate": 2e-3, "seed": seed, "out_dir": f"out/s{seed}", "device": device,
                                 **newer})
             for seed, offset, device, newer in [(1, 0.1, "cuda", {}), (2, 0.3, "cpu", {"density_lr_scaling": False})]]
    short = write_run(str(tmp_path / "short.jsonl"), mst=False, max_iters=50, settings={"learning_rate": 2e-3})
    bare = write_run(str(tmp_path / "bare.jsonl"), mst=False, max_iters=30, header=False)
    figures = []
    monkeypatch.setattr(plot.plt, "close", figures.append)
    plot.main(["frontier", "--family", "dense", *(str(tmp_path / f"{n}.jsonl") for n in ("s2", "bare", "short", "s1")),
               "--out", str(tmp_path / "plots")])
    [ax] = figures[0].axes
    [line] = [line for line in ax.lines if line.get_label() == "dense"]
    expected = [final(bare), final(short), ((final(seeds[0])[0] + final(seeds[1])[0]) / 2, final(seeds[0])[1])]
    assert list(line.get_xdata()) == pytest.approx([flops / 1e15 for _, flops in expected])
    assert list(line.get_ydata()) == pytest.approx([loss for loss, _ in expected])
    [dots] = ax.collections
    assert sorted(y for _, y in dots.get_offsets()) == pytest.approx(sorted(final(r)[0] for r in seeds))
    assert sorted(t.get_text() for t in ax.texts) == ["2x64 at 2e-3, 2 seeds", "bare", "short"]


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


# -----------------------------------------------------------------------------
# rates, and --best-rate

DENSE_2x64 = {"mst": False, "n_layer": 2, "n_embd": 64, "n_head": 1}
DENSE_4x48 = {"mst": False, "n_layer": 4, "n_embd": 48, "n_head": 1}
MST_2x96 = {"mst": True, "n_layer": 2, "n_embd": 96, "n_head": 2, "peak_sparsity": 0.4321, "flops_budget": 3e14,
            "drop_fraction": 0.0}
SWEEP = [  # (family settings, max_iters, peak rate, seed, loss offset); train.py's final val loss is 10 / 11 + offset
    (DENSE_2x64, 100, 1e-3, 1337, 0.50), (DENSE_2x64, 100, 1e-3, 2, 0.54), (DENSE_2x64, 100, 2e-3, 1337, 0.30),
    (DENSE_2x64, 100, 2e-3, 2, 0.36), (DENSE_2x64, 100, 4e-3, 1337, 0.40),
    (DENSE_4x48, 100, 1e-3, 1337, 0.45), (DENSE_4x48, 100, 2e-3, 1337, 0.38), (DENSE_4x48, 100, 4e-3, 1337, 0.31),
    (DENSE_4x48, 100, 4e-3, 2, 0.33),
    (MST_2x96, 100, 5e-4, 1337, 0.35), (MST_2x96, 100, 1e-3, 1337, 0.25), (MST_2x96, 100, 1e-3, 2, 0.27),
    (MST_2x96, 100, 2e-3, 1337, 0.28),
    (dict(MST_2x96, drop_fraction=0.3), 100, 1e-3, 1337, 0.60),
    (DENSE_2x64, 50, 1e-3, 1337, 0.20), (DENSE_2x64, 50, 2e-3, 1337, 0.10),  # half the FLOPs: a second budget
]


def write_sweep(tmp_path, sweep=SWEEP):
    """One metrics file a run; the MST runs count 1% fewer FLOPs than the dense ones, within one budget."""
    paths = []
    for i, (family, max_iters, rate, seed, offset) in enumerate(sweep):
        path = str(tmp_path / f"run{i}.jsonl")
        # out_dir, min_lr and eval_interval differ from run to run: they make no family
        write_run(path, mst=False, max_iters=max_iters, loss_offset=offset, eval_interval=25 + i,
                  flops_per_step=3e12 * (0.99 if family["mst"] else 1.0),
                  settings=dict(family, learning_rate=rate, min_lr=rate / (10 + i), seed=seed, out_dir=f"out/{i}"))
        paths.append(path)
    return paths


def test_rates_table(tmp_path):
    paths = write_sweep(tmp_path)
    records = [json.loads(line) for line in open(paths[2])]
    with open(paths[2], "a") as f:  # resumed at step 75: a second header, then the records from there on
        f.write(json.dumps({**records[0], "run": dict(records[0]["run"], init_from="resume"), "resumed_at": 75}) + "\n")
        f.writelines(json.dumps(r) + "\n" for r in records[1:] if r["step"] >= 75)
    out = tmp_path / "plots" / "rates.png"
    result = run_plot("rates", *paths, "--out", str(out), "--reference-flops=6e14", "--title", "synthetic")
    assert result.returncode == 0, result.stderr
    assert_png(out)
    header, *rows = table(result.stdout)
    assert header == ["budget", "family", "best rate", "bracketed", "final val loss by seed", "mean",
                      "next lower rate", "next higher rate", "vs best family"]
    big, small = 10 / 11, 10 / 6  # the final loss of 100 and of 50 steps, less the offset
    mst, dense4, dense2 = big + (0.25 + 0.27) / 2, big + (0.31 + 0.33) / 2, big + (0.30 + 0.36) / 2
    assert rows == [
        # 50 steps: 1.5e14 of 6e14 FLOPs; two rates only, so the better one is not bracketed
        ["0.25x", "dense 2x64, max_iters=50", "2e-3", "**no**", f"1337: {small + 0.10:.3f}",
         f"{small + 0.10:.3f}", f"1e-3: {small + 0.20:.3f}", "none", "best"],
        # 100 steps: 3e14 FLOPs, the MST runs' 2.97e14 within 2%; families by their mean at their best rate
        ["0.50x", "MST 2x96 @0.43", "1e-3", "yes", f"1337: {big + 0.25:.3f}, 2: {big + 0.27:.3f}", f"{mst:.3f}",
         f"5e-4: {big + 0.35:.3f}", f"2e-3: {big + 0.28:.3f}", "best"],
        ["0.50x", "dense 4x48", "4e-3", "**no**", f"1337: {big + 0.31:.3f}, 2: {big + 0.33:.3f}",
         f"{dense4:.3f}", f"2e-3: {big + 0.38:.3f}", "none", f"+{dense4 - mst:.3f}"],  # best at the top rate
        ["0.50x", "dense 2x64", "2e-3", "yes", f"1337: {big + 0.30:.3f}, 2: {big + 0.36:.3f}", f"{dense2:.3f}",
         f"1e-3: {big + 0.50:.3f}", f"4e-3: {big + 0.40:.3f}", f"+{dense2 - mst:.3f}"],  # on seed 1337
        ["0.50x", "MST 2x96 @0.43, drop_fraction=0.3", "1e-3", "**no**", f"1337: {big + 0.60:.3f}",
         f"{big + 0.60:.3f}", "none", "none", f"+{0.60 - 0.26:.3f}"],  # one rate
    ]
    assert "Best rate: the lowest final val loss on the seeds that every rate of the family ran" in result.stdout


def test_rates_are_ranked_on_the_seeds_every_rate_ran(tmp_path):
    """2e-3 ran two seeds (0.30, 0.40: mean 0.35), 1e-3 and 4e-3 seed 1337 only (0.33, 0.45). On the mean 1e-3
    would win on seed 2's offset alone; on seed 1337, the one they share, 2e-3 is best, and bracketed."""
    sweep = [(DENSE_2x64, 100, 1e-3, 1337, 0.33), (DENSE_2x64, 100, 2e-3, 1337, 0.30),
             (DENSE_2x64, 100, 2e-3, 2, 0.40), (DENSE_2x64, 100, 4e-3, 1337, 0.45)]
    result = run_plot("rates", *write_sweep(tmp_path, sweep), "--out", str(tmp_path / "rates.png"))
    assert result.returncode == 0, result.stderr
    big = 10 / 11
    [row] = table(result.stdout)[1:]
    assert row[2:8] == ["2e-3", "yes", f"1337: {big + 0.30:.3f}, 2: {big + 0.40:.3f}", f"{big + 0.35:.3f}",
                        f"1e-3: {big + 0.33:.3f}", f"4e-3: {big + 0.45:.3f}"]


def test_rates_table_file_and_budgets_by_flops(tmp_path):
    paths = write_sweep(tmp_path)
    table_path, out = tmp_path / "tables" / "rates.md", tmp_path / "rates.png"
    result = run_plot("rates", *paths, "--out", str(out), "--table", str(table_path))
    assert result.returncode == 0, result.stderr
    assert "|" not in result.stdout and str(table_path) in result.stdout
    assert_png(out)
    rows = table(table_path.read_text())[1:]
    assert [row[0] for row in rows] == ["1.500e+14 counted FLOPs"] + ["3.000e+14 counted FLOPs"] * 4


def test_rates_without_out_writes_the_table_and_no_plot(tmp_path):
    table_path = tmp_path / "rates.md"
    result = run_plot("rates", *write_sweep(tmp_path), "--table", str(table_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".jsonl") == ["rates.md"]
    rows = table(table_path.read_text())
    assert len(rows) == 6 and rows == table(run_plot("rates", *write_sweep(tmp_path)).stdout)


def test_rates_family_names_follow_the_runs_given(tmp_path):
    """Without the 100-step dense families, 50 steps is what most dense families ran, and no longer named."""
    sweep = [s for s in SWEEP if s[0]["mst"] or s[1] == 50]
    result = run_plot("rates", *write_sweep(tmp_path, sweep), "--out", str(tmp_path / "rates.png"))
    assert result.returncode == 0, result.stderr
    assert [row[1] for row in table(result.stdout)[1:]] == ["dense 2x64", "MST 2x96 @0.43",
                                                             "MST 2x96 @0.43, drop_fraction=0.3"]


def test_rates_family_names_keep_a_lever_named_when_most_families_pull_it(tmp_path):
    """Two MST families with drop_fraction=0.3 and one at train.py's default 0.0: the lever is what is named."""
    sweep = [s for s in SWEEP if s[0]["mst"]] + [(dict(MST_2x96, drop_fraction=0.3, n_embd=80), 100, 1e-3, 1337, 0.7)]
    result = run_plot("rates", *write_sweep(tmp_path, sweep), "--out", str(tmp_path / "rates.png"))
    assert result.returncode == 0, result.stderr
    assert [row[1] for row in table(result.stdout)[1:]] == ["MST 2x96 @0.43", "MST 2x96 @0.43, drop_fraction=0.3",
                                                             "MST 2x80 @0.43, drop_fraction=0.3"]


def test_rates_families_that_share_a_name_get_what_tells_them_apart(tmp_path):
    sweep = [(DENSE_2x64, 100, 1e-3, 1337, 0.5), (dict(DENSE_2x64, n_head=2), 100, 1e-3, 1337, 0.4)]
    result = run_plot("rates", *write_sweep(tmp_path, sweep), "--out", str(tmp_path / "rates.png"))
    assert result.returncode == 0, result.stderr
    assert [row[1] for row in table(result.stdout)[1:]] == ["dense 2x64, n_head=2", "dense 2x64, n_head=1"]


@pytest.mark.parametrize("broken", ["no header", "same seed twice", "unfinished", "not a png", "zero reference"])
def test_rates_bad_input_is_a_one_line_error(tmp_path, broken):
    paths = write_sweep(tmp_path, SWEEP[:3])
    out = tmp_path / "plots" / ("rates.svg" if broken == "not a png" else "rates.png")
    if broken == "no header":
        write_run(paths[1], mst=False, header=False)
    elif broken == "same seed twice":
        paths.append(write_sweep(tmp_path / "again", SWEEP[:1])[0])
    elif broken == "unfinished":  # the header says 100 steps; the records stop after the eval of step 50
        lines = open(paths[0]).read().splitlines()  # evaluated every 25 steps
        last = max(i for i, line in enumerate(lines) if '"val_loss"' in line and '"step": 50,' in line)
        open(paths[0], "w").write("\n".join(lines[:last + 1]) + "\n")
    result = run_plot("rates", *paths, "--out", str(out), *["--reference-flops=0"] * (broken == "zero reference"))
    assert_one_line_error(result)
    culprit = {"no header": "no header record", "same seed twice": "one family at one rate and seed",
               "unfinished": "ends at step 50 of 100", "not a png": "not a .png",
               "zero reference": "must be a positive number"}[broken]
    assert culprit in result.stderr
    assert not out.parent.exists()


def test_isoflop_and_frontier_at_best_rates(tmp_path):
    paths = write_sweep(tmp_path)
    best = [paths[i] for i in (2, 3, 7, 8, 10, 11, 13)]  # by hand from SWEEP: each 100-step family's best rate
    result = run_plot("isoflop", "--budget", "all", *paths[:14], "--best-rate", "--out", str(tmp_path / "iso"))
    assert result.returncode == 0, result.stderr
    assert_png(tmp_path / "iso" / "isoflop.png")
    assert sorted(row[1] for row in table(result.stdout)[1:]) == sorted(os.path.basename(p)[:-6] for p in best)
    result = run_plot("frontier", "--family", "dense", *paths[:9], *paths[14:], "--family", "MST", *paths[9:14],
                      "--best-rate", "--out", str(tmp_path / "frontier"))
    assert result.returncode == 0, result.stderr
    labels = [row[1] for row in table(result.stdout)[1:]]
    assert sorted(labels) == sorted(os.path.basename(p)[:-6] for p in best + [paths[15]])  # and 50 steps' best
    result = run_plot("isoflop", "--budget", "all", *paths[:14], "--out", str(tmp_path / "iso"))
    assert len(table(result.stdout)) - 1 == 14  # without --best-rate, every run


def test_rate_text():
    assert [plot.rate_text(r) for r in (6e-4, 1.2e-3, 2.4e-3, 1e-2, 0.5)] == ["6e-4", "1.2e-3", "2.4e-3", "1e-2",
                                                                             "5e-1"]


# -----------------------------------------------------------------------------
# point labels


def label_geometry(fig):
    """The label boxes, the axes box, the lines' vertices and 400 points along each of their segments, and
    the marker centres, in pixels, as the saved figure has them."""
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
    along, markers = [], []
    for line in ax.lines:
        xy = line.get_transform().transform(line.get_xydata())
        if line.get_linestyle() not in ("None", ""):
            along += [a + (b - a) * t / 400 for a, b in zip(xy, xy[1:]) for t in range(401)]
        if line.get_marker() not in ("None", ""):
            markers += list(xy)
    return boxes, ax.bbox, along, markers


def test_curves_name_runs_in_a_legend(tmp_path, monkeypatch):
    """Curves cross, so the runs are named in a legend, one entry a run, not beside the lines."""
    for name in ("a", "b", "c"):
        write_run(str(tmp_path / f"{name}.jsonl"), mst=name == "c")
    figures = []
    monkeypatch.setattr(plot.plt, "close", figures.append)
    plot.main(["curves", *(str(tmp_path / f"{n}.jsonl") for n in "abc"), "--out", str(tmp_path / "plots")])
    by_step, by_flops = (fig.axes[0] for fig in figures[:2])
    entries = [[t.get_text().split(":")[0] for t in ax.get_legend().get_texts()] for ax in (by_step, by_flops)]
    # the FLOPs plot adds the reference's final loss: 10 / 11 + write_run's dense offset
    assert entries == [["a", "b", "c"], ["a", "b", "c", f"a final val loss ({10 / 11 + 0.1234:.3f})"]]
    assert not by_step.texts and not by_flops.texts


def test_frontier_labels_do_not_overlap(tmp_path, monkeypatch):
    """Close points of two families, as mst_tiny (5.980 at 2.34e12) and a dense model 32 wide (5.951 at
    2.47e12): each label clear of the others, of every line and marker, and inside the axes."""
    specs = {"mst_tiny": (100, 0.14, 2.9e12), "dense32": (100, 0.12, 3e12), "dense28": (100, 0.2, 2.8e12),
             "dense_tiny": (300, 0.1, 3.2e12), "dense72": (30, 0.1, 3e12)}
    for name, (iters, offset, per_step) in specs.items():
        write_run(str(tmp_path / f"{name}.jsonl"), mst=False, max_iters=iters, loss_offset=offset,
                  flops_per_step=per_step)
    figures = []
    monkeypatch.setattr(plot.plt, "close", figures.append)
    plot.main(["frontier", "--family", "dense, 240 steps", *(str(tmp_path / f"{n}.jsonl") for n in
                                                            ("dense28", "dense32", "dense_tiny")),
               "--family", "dense, 72 steps", str(tmp_path / "dense72.jsonl"),
               "--family", "MST", str(tmp_path / "mst_tiny.jsonl"), "--out", str(tmp_path / "plots")])
    boxes, axes_box, along, markers = label_geometry(figures[0])
    assert len(boxes) == 5
    for i, box in enumerate(boxes):
        assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1 and axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1
        assert not any(box.overlaps(other) for other in boxes[i + 1:]), i
        assert not any(box.contains(x, y) for x, y in along), ("a line crosses", i)
        assert not any(box.contains(x, y) for x, y in markers), ("covers a marker", i)


def test_rates_a_header_without_a_setting_ran_its_default(tmp_path):
    """A run from before a setting existed joins the family of runs that hold its train.py default, and
    not the family of another value."""
    assert plot.TRAIN_DEFAULTS["grown_adam_state"] == "zero"
    sweep = [(MST_2x96, 100, 1e-3, 1337, 0.3), (dict(MST_2x96, grown_adam_state="zero"), 100, 2e-3, 1337, 0.2),
             (dict(MST_2x96, grown_adam_state="gradient"), 100, 2e-3, 1337, 0.1)]
    [budget] = plot.sweep([plot.load_run(path) for path in write_sweep(tmp_path, sweep)])
    assert sorted((f["name"], list(f["means"])) for f in budget["families"]) == [
        ("MST 2x96 @0.43", [1e-3, 2e-3]), ("MST 2x96 @0.43, grown_adam_state=gradient", [2e-3])]


def test_a_label_stays_inside_the_axes_over_crossing_lines():
    """A point in the axes' top right corner under many lines: every place inside crosses some of them, every
    place outside crosses none, and the label still goes inside."""
    fig, ax = plot.plt.subplots(figsize=(4, 3))
    for y in [i / 200 for i in range(100, 200)]:
        ax.plot([0, 1], [y, y], color="0.8", linewidth=0.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    plot.place_labels(ax, [(1.0, 1.0, "corner", "k")])
    [note] = ax.texts
    box = note.get_window_extent(fig.canvas.get_renderer())
    assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and ax.bbox.y0 <= box.y0 and box.y1 <= ax.bbox.y1
    plot.plt.close(fig)


def test_rates_labels_of_points_past_the_axis_at_one_rate_do_not_overlap(tmp_path, monkeypatch):
    """Three families diverge at 4e-3 (3 to 5 above their best): each is drawn on the top edge with its
    value, and the three values' boxes stack without touching."""
    sweep = [(family, 100, rate, 1337, offset + (3.0 + i if rate == 4e-3 else 0))
             for i, family in enumerate([DENSE_2x64, DENSE_4x48, dict(DENSE_2x64, n_layer=3)])
             for rate, offset in [(1e-3, 0.3), (2e-3, 0.2), (4e-3, 0.0)]]
    budgets = [dict(budget, title="one budget") for budget in
               plot.sweep([plot.load_run(path) for path in write_sweep(tmp_path, sweep)])]
    figures = []
    monkeypatch.setattr(plot, "save", lambda fig, path, **_: figures.append(fig))
    plot.plot_rates(budgets, str(tmp_path / "rates.png"), "")
    [fig] = figures
    fig.canvas.draw()
    notes = [t for ax in fig.axes for t in ax.texts if t.get_text().endswith("↑")]
    assert sorted(t.get_text() for t in notes) == sorted(f"{10 / 11 + 3.0 + i:.2f} ↑" for i in range(3))
    boxes = [t.get_window_extent(fig.canvas.get_renderer()) for t in notes]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plot.plt.close(fig)


def test_legends_of_long_names_keep_apart_and_leave_the_axes_their_height(tmp_path, monkeypatch):
    """Family names of some 200 characters under two panels side by side: the legends wrap instead of running
    into each other, and the figure grows under them, so that each axes keeps most of the 5 inches it is given."""
    budgets = [dict(budget, title=f"budget {i}") for i, budget in
               enumerate(plot.sweep([plot.load_run(path) for path in write_sweep(tmp_path)]))]
    for budget in budgets:
        for f in budget["families"]:
            f["name"] += ", " + ", ".join(f"lever_number_{k}=True" for k in range(8))
    figures = []
    monkeypatch.setattr(plot.plt, "close", figures.append)
    plot.plot_rates(budgets, str(tmp_path / "rates.png"), "")
    [fig] = figures
    renderer = fig.canvas.get_renderer()
    left, right = (ax.get_legend().get_window_extent(renderer) for ax in fig.axes)
    assert left.x1 < right.x0
    assert all(ax.get_position().height * fig.get_figheight() > 4 for ax in fig.axes)
    plot.plt.close(fig)


# -----------------------------------------------------------------------------
# epochs: rate sweeps of one budget on pools of training data of several sizes


def evals(best, final):
    """Val losses at steps 0, 25, 50, 75 and 100: falling to `final`, or, for a final above `best`, to `best` at
    step 75 and up again (overfitting)."""
    return [10.0, best + 1.0, best + 0.5, best, final] if final > best else [10.0, final + 1.5, final + 1, final + 0.5,
                                                                             final]


DROPOUT = dict(DENSE_2x64, dropout=0.1)


def train_losses(family, best, final):
    """Train losses at evals(best, final)'s steps: a family's own gap below val (MST 0.2, dense 0.1, dense with
    dropout 0.05), and still falling where val turns up."""
    gap = 0.2 if family["mst"] else 0.05 if family.get("dropout") else 0.1
    losses = [v - gap for v in evals(best, final)]
    if final > best:
        losses[-1] = losses[-2] - 0.5
    return losses


POOLS = {"docmix": 409_600, "docmix_pool0.1M": 102_400}  # dataset: training tokens; 100 steps of 8192 tokens
POOL_SWEEP = [  # (family, pool, rate, seed, best val loss, final val loss)
    (DENSE_2x64, "docmix", 1e-3, 1337, 2.60, 2.60), (DENSE_2x64, "docmix", 2e-3, 1337, 2.50, 2.50),
    (DENSE_2x64, "docmix", 2e-3, 2, 2.56, 2.56), (DENSE_2x64, "docmix", 4e-3, 1337, 2.70, 2.70),
    # on 4 times fewer tokens dense overfits most at 2e-3: ranked on the final val loss, 1e-3 would win
    (DENSE_2x64, "docmix_pool0.1M", 1e-3, 1337, 3.10, 3.15), (DENSE_2x64, "docmix_pool0.1M", 2e-3, 1337, 3.00, 3.40),
    (DENSE_2x64, "docmix_pool0.1M", 4e-3, 1337, 3.20, 3.60),
    (DROPOUT, "docmix", 2e-3, 1337, 2.55, 2.55), (DROPOUT, "docmix", 4e-3, 1337, 2.52, 2.52),
    (DROPOUT, "docmix", 4e-3, 2, 2.58, 2.58),
    (DROPOUT, "docmix_pool0.1M", 1e-3, 1337, 3.00, 3.00), (DROPOUT, "docmix_pool0.1M", 2e-3, 1337, 2.90, 2.95),
    (DROPOUT, "docmix_pool0.1M", 4e-3, 1337, 2.95, 2.96),
    (MST_2x96, "docmix", 1e-3, 1337, 2.45, 2.45), (MST_2x96, "docmix", 1e-3, 2, 2.47, 2.47),
    (MST_2x96, "docmix", 2e-3, 1337, 2.48, 2.48),
    (MST_2x96, "docmix_pool0.1M", 1e-3, 1337, 3.05, 3.30),
]


def printed(capsys, *args):
    """What plot.py prints, run in this process: faster than run_plot's start of another."""
    plot.main(list(args))
    return capsys.readouterr().out


def write_pool_sweep(folder, sweep=POOL_SWEEP, max_iters=100):
    """One metrics file a run, as write_sweep's; each run's header names its pool and the pool's tokens."""
    paths = []
    for i, (family, pool, rate, seed, best, last) in enumerate(sweep):
        path = str(folder / f"run{i}.jsonl")
        write_run(path, mst=False, max_iters=max_iters, train_tokens=POOLS[pool], val_losses=evals(best, last),
                  train_losses=train_losses(family, best, last),
                  flops_per_step=3e12 * (0.99 if family["mst"] else 1.0),
                  settings=dict(family, dataset=pool, learning_rate=rate, min_lr=rate / 10, seed=seed,
                                out_dir=f"out/{i}"))
        paths.append(path)
    return paths


def test_sweep_point_epochs_and_best_loss(tmp_path):
    """Epochs from the header's max_iters, tokens_per_iter and train_tokens; the best val loss is the lowest
    evaluation's, not the last's, and the pool is the run's dataset, no setting of its family."""
    write_run(str(tmp_path / "a.jsonl"), mst=False, tokens_per_iter=32768, train_tokens=1_000_000,
              val_losses=[10.0, 4.0, 3.5, 3.25, 3.75], settings={"dataset": "docmix_pool1M", "learning_rate": 1e-3,
                                                                 "seed": 1337, "dropout": 0.2})
    p = plot.sweep_point(plot.load_run(str(tmp_path / "a.jsonl")))
    assert p["epochs"] == pytest.approx(100 * 32768 / 1_000_000)
    assert (p["best_loss"], p["best_step"], p["val_loss"]) == (3.25, 75, 3.75)
    assert p["pool"] == "docmix_pool1M" and p["train_tokens"] == 1_000_000
    assert "dataset" not in json.loads(p["family"]) and json.loads(p["family"])["dropout"] == 0.2


def test_epochs_table(tmp_path):
    paths = write_pool_sweep(tmp_path)
    table_path = tmp_path / "tables" / "epochs.md"
    result = run_plot("epochs", "--budget", "0.5x", *paths, "--table", str(table_path))
    assert result.returncode == 0, result.stderr
    assert "|" not in result.stdout and str(table_path) in result.stdout
    header, *rows = table(table_path.read_text())
    assert header == ["budget", "pool", "family", "epochs", "best rate", "bracketed", "best val loss by seed (step)",
                      "mean", "final val loss by seed", "mean", "best rate by final", "vs best family",
                      "train loss at best", "val - train"]
    big, small = "docmix (0.41M tokens)", "docmix_pool0.1M (0.102M tokens)"
    assert rows == [  # by hand from POOL_SWEEP; the larger pool first, families by their mean best val loss
        # ranked on seed 1337 (2e-3 ran no seed 2), 1e-3 is best, and the lowest rate run
        ["0.5x", big, "MST 2x96 @0.43", "2.0", "1e-3", "**no**", "1337: 2.450 (100), 2: 2.470 (100)", "2.460",
         "1337: 2.450, 2: 2.470", "2.460", "same", "best", "2.260", "+0.200"],
        ["0.5x", big, "dense 2x64", "2.0", "2e-3", "yes", "1337: 2.500 (100), 2: 2.560 (100)", "2.530",
         "1337: 2.500, 2: 2.560", "2.530", "same", "+0.070", "2.430", "+0.100"],
        ["0.5x", big, "dense 2x64, dropout=0.1", "2.0", "4e-3", "**no**", "1337: 2.520 (100), 2: 2.580 (100)",
         "2.550", "1337: 2.520, 2: 2.580", "2.550", "same", "+0.090", "2.500", "+0.050"],
        # 100 steps of 8192 tokens over 102400 tokens: 8 epochs; dropout overfits least
        ["0.5x", small, "dense 2x64, dropout=0.1", "8.0", "2e-3", "yes", "1337: 2.900 (75)", "2.900",
         "1337: 2.950", "2.950", "same", "best", "2.850", "+0.050"],
        ["0.5x", small, "dense 2x64", "8.0", "2e-3", "yes", "1337: 3.000 (75)", "3.000", "1337: 3.400", "3.400",
         "**1e-3**: 3.150", "+0.100", "2.900", "+0.100"],  # the train loss of step 75, not 2.4 at the end
        ["0.5x", small, "MST 2x96 @0.43", "8.0", "1e-3", "**no**", "1337: 3.050 (75)", "3.050", "1337: 3.300",
         "3.300", "same", "+0.150", "2.850", "+0.200"],
    ]
    notes = table_path.read_text().split("\n\n", 1)[1]
    assert "Ranked on the final val loss instead, 1 of 6 rows pick another rate." in notes


def test_epochs_when_final_and_best_agree_the_table_says_so(tmp_path, capsys):
    stdout = printed(capsys, "epochs", "--budget", "x",
                     *write_pool_sweep(tmp_path, [s for s in POOL_SWEEP if s[0] is not DENSE_2x64]))
    assert [row[10] for row in table(stdout)[1:]] == ["same"] * 4
    assert "every family keeps its best rate at every pool" in stdout


def test_epochs_plot_draws_a_line_a_family_through_the_pools(tmp_path, monkeypatch):
    """A panel a budget; in each, a family is one line across pools, at its best rate's epochs and mean best val
    loss, each point labelled with that rate; a line's points in epoch order, whatever the order of the runs."""
    full = write_pool_sweep(tmp_path / "full")
    half = write_pool_sweep(tmp_path / "half", [s for s in POOL_SWEEP if s[0] is DENSE_2x64], max_iters=50)
    figures = []
    monkeypatch.setattr(plot.plt, "close", figures.append)
    plot.main(["epochs", "--budget", "full", *full[::-1], "--budget", "half", *half, "--out", str(tmp_path / "plots"),
               "--title", "synthetic"])
    [fig] = figures
    full_ax, half_ax = fig.axes
    assert full_ax.get_title().startswith("full (3.000e+14") and half_ax.get_title().startswith("half (1.500e+14")
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in full_ax.lines}
    assert lines == {"dense 2x64": ([2.0, 8.0], pytest.approx([2.53, 3.00])),
                     "dense 2x64, dropout=0.1": ([2.0, 8.0], pytest.approx([2.55, 2.90])),
                     "MST 2x96 @0.43": ([2.0, 8.0], pytest.approx([2.46, 3.05]))}
    assert sorted(t.get_text() for t in full_ax.texts) == sorted(
        ["2e-3", "2e-3", "≥4e-3", "2e-3", "≤1e-3", "1e-3 only"])  # unbracketed: which way the sweep goes on
    # half the steps: the same pools give half the epochs
    [(label, xs)] = [(line.get_label(), list(line.get_xdata())) for line in half_ax.lines]
    assert label == "dense 2x64, max_iters=50" and xs == [1.0, 4.0]
    assert_png(tmp_path / "plots" / "epochs.png")


def test_epochs_out_as_a_file(tmp_path, capsys):
    paths = write_pool_sweep(tmp_path)
    stdout = printed(capsys, "epochs", "--budget", "x", *paths, "--out", str(tmp_path / "figs" / "repetition.png"))
    assert_png(tmp_path / "figs" / "repetition.png")
    assert len(table(stdout)) == 7  # the header and six rows, printed


@pytest.mark.parametrize("broken", ["two budgets in one", "one budget twice", "no run", "out is a file"])
def test_epochs_bad_input_is_a_one_line_error(tmp_path, capsys, broken):
    full = write_pool_sweep(tmp_path / "full", POOL_SWEEP[:4])
    half = write_pool_sweep(tmp_path / "half", POOL_SWEEP[:4], max_iters=50)
    out = tmp_path / "plots"
    args = {"two budgets in one": ["--budget", "x", *full, *half],
            "one budget twice": ["--budget", "x", *full[:2], "--budget", "y", *full[2:]],
            "no run": ["--budget", "x"], "out is a file": ["--budget", "x", *full]}[broken]
    if broken == "out is a file":
        out = tmp_path / "notes.txt"
        out.write_text("")
    with pytest.raises(SystemExit) as stopped:
        plot.main(["epochs", *args, "--out", str(out)])
    stderr = capsys.readouterr().err
    assert stopped.value.code == 2 and stderr.startswith("error: ") and len(stderr.splitlines()) == 1, stderr
    assert {"two budgets in one": "more than 2% apart", "one budget twice": "count the same FLOPs",
            "no run": "names no run", "out is a file": "neither a .png"}[broken] in stderr
    assert not (tmp_path / "plots").exists()


def test_rates_compares_pools_apart_and_names_them(tmp_path, capsys):
    """A family on two pools is two rows of one name, each ranked against the families of its own pool."""
    rows = table(printed(capsys, "rates", *write_pool_sweep(tmp_path), "--reference-flops=6e14"))[1:]
    assert [row[:3] for row in rows] == [
        ["0.50x, docmix", "MST 2x96 @0.43", "1e-3"], ["0.50x, docmix", "dense 2x64", "2e-3"],
        ["0.50x, docmix", "dense 2x64, dropout=0.1", "4e-3"],
        # ranked on the final val loss, as by default
        ["0.50x, docmix_pool0.1M", "dense 2x64, dropout=0.1", "2e-3"], ["0.50x, docmix_pool0.1M", "dense 2x64", "1e-3"],
        ["0.50x, docmix_pool0.1M", "MST 2x96 @0.43", "1e-3"]]
    assert [row[-1] for row in rows] == ["best", "+0.070", "+0.090", "best", f"+{3.15 - 2.95:.3f}",
                                         f"+{3.30 - 2.95:.3f}"]


def test_rates_on_the_best_val_loss(tmp_path, capsys):
    sweep = [s for s in POOL_SWEEP if s[0] is DENSE_2x64 and s[1] == "docmix_pool0.1M"]
    paths = write_pool_sweep(tmp_path, sweep)
    by = {metric: table(printed(capsys, "rates", *paths, "--metric", metric)) for metric in ("final", "best")}
    assert by["final"][0][4] == "final val loss by seed" and by["best"][0][4] == "best val loss by seed"
    # on the final val loss, 1e-3 is best and unbracketed: the lowest rate run
    assert by["final"][1][2:8] == ["1e-3", "**no**", "1337: 3.150", "3.150", "none", "2e-3: 3.400"]
    assert by["best"][1][2:8] == ["2e-3", "yes", "1337: 3.000", "3.000", "1e-3: 3.100", "4e-3: 3.200"]
    stdout = printed(capsys, "rates", *paths, "--metric", "best", "--out", str(tmp_path / "rates.png"))
    assert "Best rate: the lowest best val loss" in stdout and "Best val loss: the lowest of a run's" in stdout
    assert_png(tmp_path / "rates.png")
