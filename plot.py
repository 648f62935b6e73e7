"""
Plots the metrics.jsonl files that train.py writes, and prints a summary table.

    python plot.py out/docmix_dense out/docmix_mst --out results/docmix
    python plot.py "dense=out/docmix_dense/metrics.jsonl" "MST=out/docmix_mst" --out results/docmix --title docmix

A run is a metrics.jsonl file or the out_dir that holds one; LABEL=PATH names it (by default the out_dir's
name, or the file's stem). FLOPs are each run's own count ("flops_mst"). The first run is the reference:
the table gives FLOPs as a multiple of its FLOPs, and the FLOPs plot marks its final loss. Writes to --out
val_loss_vs_step.png, val_loss_vs_flops.png (every run) and sparsity.png (each MST run's target and actual
sparsity, phases, and where HSA was on; not written when no run has MST phases).
"""

import argparse
import json
import os
import sys


def fail(message):
    """Bad input ends the script with one line, not a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import matplotlib.ticker
except ImportError:
    fail("plot.py needs matplotlib: pip install matplotlib")

EVAL_KEYS = ("step", "val_loss", "phase", "attn_mode", "flops_mst")
LOG_KEYS = ("step", "phase", "target_sparsity", "sparsity", "attn_mode", "ms_per_step", "tokens_per_s", "flops_mst")
PHASE_COLORS = {"warmup": "#fff0cc", "ultra": "#fbe0e0", "restoration": "#e0f2db"}
SKIP_LOGS = 2  # the first log records time compilation and start-up, not training


def load_run(arg):
    label, path = None, arg
    if not os.path.exists(arg) and "=" in arg:
        label, path = arg.split("=", 1)
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    if not os.path.isfile(path):
        fail(f"no metrics file at {path}")
    if label is None:  # the out_dir's name for a metrics.jsonl, else the file's stem
        stem = os.path.splitext(os.path.basename(path))[0]
        label = os.path.basename(os.path.dirname(os.path.abspath(path))) if stem == "metrics" else stem
    evals, logs = {}, {}
    with open(path, errors="replace") as f:  # a binary file fails as "not JSON" below
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                fail(f"{path} line {n} is not JSON")
            if not isinstance(record, dict):
                fail(f"{path} line {n} is not a train.py metrics record")
            kind, keys = (evals, EVAL_KEYS) if "val_loss" in record else (logs, LOG_KEYS)
            missing = [k for k in keys if k not in record]
            if missing:
                fail(f"{path} line {n} lacks {', '.join(missing)}: not a train.py metrics record")
            kind[record["step"]] = record  # a resumed run appends again: its later records win
    if not evals:
        fail(f"{path} has no evaluation records (val_loss): is it train.py's metrics.jsonl?")
    return {"label": label, "evals": [evals[s] for s in sorted(evals)], "logs": [logs[s] for s in sorted(logs)]}


def is_mst(run):
    return any(r["phase"] != "dense" for r in run["logs"])


def summarize(run):
    """Final val loss, final counted FLOPs, mean tokens/s and an estimate of the wall time in seconds."""
    # left out of the speed: a log record at an eval step, which timed the evaluation too, and the last one
    # (at max_iters - 1), whose interval can be shorter than the log_interval that train.py divides by
    eval_steps = {r["step"] for r in run["evals"]}
    speeds = [r["tokens_per_s"] for r in run["logs"][SKIP_LOGS:-1] if r["step"] not in eval_steps]
    wall_ms, previous = 0.0, -1
    for r in run["logs"]:  # ms_per_step is the mean over the steps since the previous log record
        wall_ms += r["ms_per_step"] * (r["step"] - previous)
        previous = r["step"]
    flops = max(r["flops_mst"] for r in run["evals"] + run["logs"])
    return {"val_loss": run["evals"][-1]["val_loss"], "flops": flops,
            "tokens_per_s": sum(speeds) / len(speeds) if speeds else float("nan"), "wall_s": wall_ms / 1000}


def print_table(runs, stats):
    rows = [["run", "final val loss", "counted FLOPs", f"FLOPs vs {runs[0]['label']}", "tokens/s (mean)",
             "wall (est.)"]]
    for run, s in zip(runs, stats):
        rows.append([run["label"], f"{s['val_loss']:.3f}", f"{s['flops']:.3e}", f"{s['ratio']:.3f}x",
                     f"{s['tokens_per_s']:,.0f}", f"{s['wall_s'] / 60:.1f} min"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rows.insert(1, ["-" * w for w in widths])
    for row in rows:  # a markdown table, padded so that it reads in a terminal too
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("| " + " | ".join(cells) + " |")


def plot_val_loss(runs, stats, path, title, flops):
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (run, s) in enumerate(zip(runs, stats)):
        # step 0 is left out: its loss (about 10.8) would squash the rest, and 0 FLOPs has no place on a log axis
        xs = [r["flops_mst"] / 1e15 if flops else r["step"] for r in run["evals"] if r["step"] > 0]
        ys = [r["val_loss"] for r in run["evals"] if r["step"] > 0]
        tail = f"{s['val_loss']:.3f} at {s['ratio']:.2f}x FLOPs" if flops else f"{s['val_loss']:.3f}"
        ax.plot(xs, ys, color=plt.cm.tab10(i % 10), marker="s" if is_mst(run) else "o", markersize=4, linewidth=1.6,
                label=f"{run['label']}: {tail}")
    if flops:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 3, 5)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.axhline(stats[0]["val_loss"], color="0.3", linestyle="--", linewidth=1,
                   label=f"{runs[0]['label']} final val loss ({stats[0]['val_loss']:.3f})")
    ax.set_xlabel("cumulative counted training FLOPs, in $10^{15}$ (flops_mst, log scale)" if flops else "step")
    ax.set_ylabel("validation loss (cross-entropy, nats/token)")
    name = "validation loss vs " + ("counted training FLOPs" if flops else "step")
    ax.set_title(name + (f"\n{title}" if title else ""))
    ax.grid(True, alpha=0.3)
    ax.margins(y=0.06)
    ax.legend(loc="upper right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def spans(records, key):
    """[value, first step, end step] for each stretch of records with equal record[key], in step order."""
    out = []
    for r in records:
        if out:
            out[-1][2] = r["step"]  # a stretch ends where the next one begins
        if not out or out[-1][0] != r[key]:
            out.append([r[key], r["step"], r["step"]])
    return out


def plot_sparsity(runs, path, title):
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 1.2 + 2.8 * len(runs)), sharex=True, squeeze=False)
    for ax, (i, run) in zip(axes[:, 0], runs):  # i is the run's place among all runs: colours match the loss plots
        on_x = ax.get_xaxis_transform()  # x in steps, y in axes fractions
        records = sorted(run["evals"] + run["logs"], key=lambda r: r["step"])
        for phase, start, end in spans(records, "phase"):
            if phase in PHASE_COLORS:
                ax.axvspan(start, end, color=PHASE_COLORS[phase], linewidth=0)
                ax.text((start + end) / 2, 0.97, phase, transform=on_x, ha="center", va="top", fontsize=9)
        hsa = [(start, end) for mode, start, end in spans(records, "attn_mode") if mode != "dense"]
        for start, end in hsa:
            ax.plot([start, end], [0.86, 0.86], transform=on_x, color="rebeccapurple", linewidth=11,
                    solid_capstyle="butt")
            ax.text((start + end) / 2, 0.86, "HSA (sparse attention) on", transform=on_x, ha="center", va="center",
                    color="white", fontsize=8, fontweight="bold")
        steps = [r["step"] for r in run["logs"]]
        ax.plot(steps, [r["target_sparsity"] for r in run["logs"]], color="black", linestyle="--", linewidth=1.2,
                label="target sparsity", zorder=3)
        ax.plot(steps, [r["sparsity"] for r in run["logs"]], color=plt.cm.tab10(i % 10), marker=".", linewidth=1.6,
                label="actual sparsity")
        ax.set_ylim(-0.03, 1.2)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 0.9])
        ax.set_ylabel("sparsity")
        ax.set_title(run["label"] + ("" if hsa else " (HSA never on)"), fontsize=10, loc="left")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="lower center", fontsize=8)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle("sparsity (fraction of prunable weights that are zero) by step" + (f"\n{title}" if title else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="metrics.jsonl files or out_dirs, each optionally as LABEL=PATH")
    parser.add_argument("--out", required=True, help="folder for the PNGs (made if missing)")
    parser.add_argument("--title", default="", help="second title line of every plot, e.g. the setup")
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        fail(f"--out {args.out} is a file, not a folder")

    runs = [load_run(arg) for arg in args.runs]
    stats = [summarize(run) for run in runs]
    for s in stats:
        s["ratio"] = s["flops"] / stats[0]["flops"] if stats[0]["flops"] else float("nan")
    os.makedirs(args.out, exist_ok=True)
    plot_val_loss(runs, stats, os.path.join(args.out, "val_loss_vs_step.png"), args.title, flops=False)
    plot_val_loss(runs, stats, os.path.join(args.out, "val_loss_vs_flops.png"), args.title, flops=True)
    mst_runs = [(i, run) for i, run in enumerate(runs) if is_mst(run)]
    if mst_runs:
        plot_sparsity(mst_runs, os.path.join(args.out, "sparsity.png"), args.title)
    print_table(runs, stats)
    written = "val_loss_vs_step.png, val_loss_vs_flops.png" + (", sparsity.png" if mst_runs else "")
    print(f"wrote {written} to {args.out}" + ("" if mst_runs else " (no MST run, so no sparsity.png)"))


if __name__ == "__main__":
    main()
