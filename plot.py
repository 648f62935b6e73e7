"""
Plots the metrics.jsonl files that train.py writes, and prints a summary table as markdown.

    python plot.py curves RUN... --out DIR [--title T]
    python plot.py frontier --family NAME RUN [RUN...] [--family NAME RUN...]... --out DIR [--title T] [--reference RUN]
    python plot.py isoflop --budget NAME RUN [RUN...] [--budget NAME RUN...]... --out DIR [--title T]
    python plot.py regime --pair SERIES MST_RUN DENSE_RUN [--pair ...] --out DIR [--title T]

A RUN is a metrics.jsonl file or the out_dir that holds one; LABEL=PATH names it (by default the out_dir's
name, or the file's stem). FLOPs are each run's own count of its training FLOPs ("flops").

curves: the runs' val loss by step and by FLOPs, val_loss_vs_step.png and val_loss_vs_flops.png, and each
MST run's target and actual sparsity, phases and where HSA was on, sparsity.png (not written when no run
has MST phases). The first run is the reference: the table gives FLOPs as a multiple of its FLOPs, and the
FLOPs plot marks its final loss.

frontier: each run is one point, its final val loss at its final FLOPs; each family (say, dense runs of
several lengths, or MST runs of several schedules) is one line, in FLOP order. The table gives FLOPs as a
multiple of the --reference run's (by default the run with the most FLOPs). Writes frontier.png.

isoflop: runs of about equal counted FLOPs, dense models and MST on wider ones, as final val loss against
the peak sparsity in each run's header record (0 for a dense run), one line a budget through the mean of the
runs that share a width and peak (seeds), with every run as a dot. Writes isoflop.png.

regime: whether MST pays off depends on how long the model trains for its size. For each pair of equal
counted FLOPs, MST's final val loss minus the dense run's (below 0: MST is better) against the tokens the
dense run trained on per non-embedding parameter, from the header records that train.py writes at the start
of each run; pairs of one series (say, one model family at several lengths) share a line, through the mean
of the pairs at one length (seeds). The table gives tokens per parameter both ways, and epochs. Writes
regime.png.
"""

import argparse
import json
import os

from runtime import OneLineParser, fail

try:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import matplotlib.ticker
except ImportError:
    fail("plot.py needs matplotlib: pip install matplotlib")

EVAL_KEYS = ("step", "val_loss", "phase", "attn_mode", "flops")
LOG_KEYS = ("step", "phase", "target_sparsity", "sparsity", "attn_mode", "ms_per_step", "tokens_per_s", "flops")
HEADER_COUNTS = ("params", "tokens_per_iter", "train_tokens")  # what regime divides by
PHASE_COLORS = {"initial": "#e6eefa", "sparsify": "#fff0cc", "ultra": "#fbe0e0", "restoration": "#e0f2db"}
MARKERS = "osD^vP*X"
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
    header, evals, logs = None, {}, {}
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
            if "step" not in record and "run" in record:
                bad = [k for k in HEADER_COUNTS
                       if not isinstance(record.get(k), int) or isinstance(record[k], bool) or record[k] <= 0]
                if bad:
                    fail(f"{path} line {n} is a header record, but its {', '.join(bad)} is not a positive integer")
                header = record  # each resume writes one again; the latest describes the run as it ended
                continue
            kind, keys = (evals, EVAL_KEYS) if "val_loss" in record else (logs, LOG_KEYS)
            missing = [k for k in keys if k not in record]
            if missing:
                fail(f"{path} line {n} lacks {', '.join(missing)}: not a train.py metrics record")
            kind[record["step"]] = record  # a resumed run appends again: its later records win
    if not evals:
        fail(f"{path} has no evaluation records (val_loss): is it train.py's metrics.jsonl?")
    return {"label": label, "path": path, "header": header, "evals": [evals[s] for s in sorted(evals)],
            "logs": [logs[s] for s in sorted(logs)]}


def is_mst(run):
    return any(r["phase"] != "dense" for r in run["logs"])


def summarize(run):
    """Final val loss, final counted FLOPs, steps trained, mean tokens/s and an estimate of the wall time in
    seconds."""
    # left out of the speed: a log record at an eval step, which timed the evaluation too, and the last one
    # (at max_iters - 1), whose interval can be shorter than the log_interval that train.py divides by
    eval_steps = {r["step"] for r in run["evals"]}
    speeds = [r["tokens_per_s"] for r in run["logs"][SKIP_LOGS:-1] if r["step"] not in eval_steps]
    wall_ms, previous = 0.0, -1
    for r in run["logs"]:  # ms_per_step is the mean over the steps since the previous log record
        wall_ms += r["ms_per_step"] * (r["step"] - previous)
        previous = r["step"]
    # step s is evaluated before it trains and logged after, so the records show s or s + 1 steps trained
    steps = max([r["step"] for r in run["evals"]] + [r["step"] + 1 for r in run["logs"]])
    flops = max(r["flops"] for r in run["evals"] + run["logs"])
    return {"val_loss": run["evals"][-1]["val_loss"], "flops": flops, "steps": steps,
            "tokens_per_s": sum(speeds) / len(speeds) if speeds else float("nan"), "wall_s": wall_ms / 1000}


def trained(run):
    """summarize(run), for a plot whose log axis has no place for a run that never trained."""
    s = summarize(run)
    if s["flops"] <= 0 or s["steps"] <= 0:
        fail(f"{run['path']} records no training step, only evaluations before the first")
    return s


def print_table(rows, text_columns=1):
    """rows[0] is the header. A markdown table, padded so that it reads in a terminal too."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rows = [rows[0], ["-" * w for w in widths], *rows[1:]]
    for row in rows:
        cells = [c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("| " + " | ".join(cells) + " |")


def log_x(ax):
    """A log x axis whose ticks read as plain numbers, with more of them than matplotlib's decades."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 3, 5)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def finish(fig, ax, path, xlabel, ylabel, title, margins=(0.05, 0.06), legend="upper right"):
    """The one-axis plots' labels, grid, margins (room for point labels) and legend; then save."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.margins(*margins)
    ax.legend(loc=legend, fontsize=9)
    save(fig, path)


def ratio(flops, reference):
    return flops / reference if reference else float("nan")


# -----------------------------------------------------------------------------
# curves


def plot_val_loss(runs, stats, path, title, flops):
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (run, s) in enumerate(zip(runs, stats)):
        # step 0 is left out: its loss (about 10.8) would squash the rest, and 0 FLOPs has no place on a log axis
        xs = [r["flops"] / 1e15 if flops else r["step"] for r in run["evals"] if r["step"] > 0]
        ys = [r["val_loss"] for r in run["evals"] if r["step"] > 0]
        tail = f"{s['val_loss']:.3f} at {s['ratio']:.2f}x FLOPs" if flops else f"{s['val_loss']:.3f}"
        ax.plot(xs, ys, color=plt.cm.tab10(i % 10), marker="s" if is_mst(run) else "o", markersize=4, linewidth=1.6,
                label=f"{run['label']}: {tail}")
    if flops:
        log_x(ax)
        ax.axhline(stats[0]["val_loss"], color="0.3", linestyle="--", linewidth=1,
                   label=f"{runs[0]['label']} final val loss ({stats[0]['val_loss']:.3f})")
    name = "validation loss vs " + ("counted training FLOPs" if flops else "step")
    finish(fig, ax, path, "cumulative counted training FLOPs, in $10^{15}$ (log scale)" if flops else "step",
           "validation loss (cross-entropy, nats/token)", name + (f"\n{title}" if title else ""))


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
    save(fig, path)


def curves(args):
    runs = [load_run(arg) for arg in args.runs]
    stats = [summarize(run) for run in runs]
    for s in stats:
        s["ratio"] = ratio(s["flops"], stats[0]["flops"])
    os.makedirs(args.out, exist_ok=True)
    plot_val_loss(runs, stats, os.path.join(args.out, "val_loss_vs_step.png"), args.title, flops=False)
    plot_val_loss(runs, stats, os.path.join(args.out, "val_loss_vs_flops.png"), args.title, flops=True)
    mst_runs = [(i, run) for i, run in enumerate(runs) if is_mst(run)]
    if mst_runs:
        plot_sparsity(mst_runs, os.path.join(args.out, "sparsity.png"), args.title)
    print_table([["run", "final val loss", "counted FLOPs", f"FLOPs vs {runs[0]['label']}", "tokens/s (mean)",
                  "wall (est.)"]] +
                [[run["label"], f"{s['val_loss']:.3f}", f"{s['flops']:.3e}", f"{s['ratio']:.3f}x",
                  f"{s['tokens_per_s']:,.0f}", f"{s['wall_s'] / 60:.1f} min"] for run, s in zip(runs, stats)])
    written = "val_loss_vs_step.png, val_loss_vs_flops.png" + (", sparsity.png" if mst_runs else "")
    print(f"wrote {written} to {args.out}" + ("" if mst_runs else " (no MST run, so no sparsity.png)"))


# -----------------------------------------------------------------------------
# frontier


def frontier(args):
    families = []  # (name, [(run, stats)] in FLOP order)
    for name, *specs in args.family:
        if not specs:
            fail(f"--family {name} names no run: give --family NAME RUN [RUN...]")
        points = [(run, trained(run)) for run in map(load_run, specs)]
        families.append((name, sorted(points, key=lambda p: p[1]["flops"])))
    if args.reference:
        reference = load_run(args.reference)
        reference_flops = trained(reference)["flops"]
    else:
        reference, reference_flops = max(((run, s["flops"]) for _, points in families for run, s in points),
                                         key=lambda p: p[1])
    os.makedirs(args.out, exist_ok=True)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (name, points) in enumerate(families):
        xs = [s["flops"] / 1e15 for _, s in points]
        ys = [s["val_loss"] for _, s in points]
        ax.plot(xs, ys, color=plt.cm.tab10(i % 10), marker=MARKERS[i % len(MARKERS)], markersize=7, linewidth=1.6,
                label=name)
        for (run, _), x, y in zip(points, xs, ys):  # every other family labelled below, as families meet
            ax.annotate(run["label"], (x, y), textcoords="offset points", xytext=(6, 6 if i % 2 == 0 else -13),
                        fontsize=8, color=plt.cm.tab10(i % 10))
    ax.axvline(reference_flops / 1e15, color="0.3", linestyle=":", linewidth=1,
               label=f"1.0x FLOPs: {reference['label']}")
    log_x(ax)
    finish(fig, ax, os.path.join(args.out, "frontier.png"), "counted training FLOPs, in $10^{15}$ (log scale)",
           "final validation loss (cross-entropy, nats/token)",
           "final validation loss vs counted training FLOPs" + (f"\n{args.title}" if args.title else ""),
           margins=(0.08, 0.08))

    print_table([["family", "run", "final val loss", "counted FLOPs", f"FLOPs vs {reference['label']}"]] +
                [[name, run["label"], f"{s['val_loss']:.3f}", f"{s['flops']:.3e}",
                  f"{ratio(s['flops'], reference_flops):.3f}x"] for name, points in families for run, s in points],
                text_columns=2)
    print(f"wrote frontier.png to {args.out}")


# -----------------------------------------------------------------------------
# isoflop


def isoflop(args):
    budgets = []  # (name, {(width, peak sparsity): [(run, stats)]}), one line a budget
    for name, *specs in args.budget:
        if not specs:
            fail(f"--budget {name} names no run: give --budget NAME RUN [RUN...]")
        points = {}
        for run in map(load_run, specs):
            if run["header"] is None:
                fail(f"{run['path']} has no header record, so its width and peak sparsity are unknown")
            settings = run["header"]["run"]
            peak = settings["peak_sparsity"] if settings["mst"] else 0.0
            points.setdefault((settings["n_embd"], peak), []).append((run, trained(run)))
        budgets.append((name, dict(sorted(points.items(), key=lambda p: p[0][1]))))
    os.makedirs(args.out, exist_ok=True)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (name, points) in enumerate(budgets):
        color = plt.cm.tab10(i % 10)
        means = [sum(s["val_loss"] for _, s in runs) / len(runs) for runs in points.values()]
        ax.plot([peak for _, peak in points], means, color=color, marker=MARKERS[i % len(MARKERS)], markersize=7,
                linewidth=1.6, label=name)
        for (width, peak), runs in points.items():
            ax.scatter([peak] * len(runs), [s["val_loss"] for _, s in runs], color=color, s=14, alpha=0.6)
            top = max(s["val_loss"] for _, s in runs)
            ax.annotate(f"{width} wide" + (" (dense)" if peak == 0 else ""), (peak, top), textcoords="offset points",
                        xytext=(4, 7), fontsize=8, color=color)
    finish(fig, ax, os.path.join(args.out, "isoflop.png"), "peak sparsity of the weights (0: a dense model)",
           "final validation loss (cross-entropy, nats/token)",
           "equal counted training FLOPs: wider models, sparser (lines: the mean over seeds)"
           + (f"\n{args.title}" if args.title else ""),
           margins=(0.08, 0.12), legend="lower right")

    print_table([["budget", "run", "width", "peak sparsity", "final val loss", "counted FLOPs"]] +
                [[name, run["label"], str(width), f"{peak:.3f}", f"{s['val_loss']:.3f}", f"{s['flops']:.3e}"]
                 for name, points in budgets for (width, peak), runs in points.items() for run, s in runs],
                text_columns=2)
    print(f"wrote isoflop.png to {args.out}")


# -----------------------------------------------------------------------------
# regime


def non_embedding_params(run):
    """Parameters less the token and position embeddings (the tied head shares the token embedding's), the
    model size that Kaplan et al. (2020) and Frantar et al. (2023) count tokens per parameter against."""
    settings = run["header"]["run"]
    missing = [k for k in ("n_embd", "vocab_size", "block_size") if k not in settings]
    if missing:
        fail(f"{run['path']}'s header lacks {', '.join(missing)}, so its embedding size is unknown")
    return run["header"]["params"] - settings["n_embd"] * (settings["vocab_size"] + settings["block_size"])


def regime(args):
    pairs = []  # (series, tokens per dense parameter, per dense non-embedding parameter, epochs, MST, dense)
    for series, mst_arg, dense_arg in args.pair:
        mst, dense = load_run(mst_arg), load_run(dense_arg)
        for run in (mst, dense):
            if run["header"] is None:
                fail(f"{run['path']} has no header record (the \"run\" line train.py writes first), so its "
                     "parameter and token counts are unknown")
        s, d = trained(mst), trained(dense)
        tokens = d["steps"] * dense["header"]["tokens_per_iter"]
        pairs.append((series, tokens / dense["header"]["params"], tokens / non_embedding_params(dense),
                      tokens / dense["header"]["train_tokens"], s, d))
    os.makedirs(args.out, exist_ok=True)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.axhline(0, color="0.3", linewidth=1)
    for i, series in enumerate(dict.fromkeys(p[0] for p in pairs)):  # one line a series, in the order given
        gaps = {}  # x: (epochs, [MST minus dense of each pair there]); pairs at one x are seeds, the line their mean
        for name, _, per_non_embedding, epochs, s, d in pairs:
            if name == series:
                gaps.setdefault(round(per_non_embedding, 6), (epochs, []))[1].append(s["val_loss"] - d["val_loss"])
        points = sorted((x, sum(ys) / len(ys), epochs, ys) for x, (epochs, ys) in gaps.items())
        color = plt.cm.tab10(i % 10)
        ax.plot([x for x, *_ in points], [y for _, y, *_ in points], color=color, marker=MARKERS[i % len(MARKERS)],
                markersize=8, linewidth=1.4, label=series)
        for x, y, epochs, ys in points:
            if len(ys) > 1:
                ax.scatter([x] * len(ys), ys, color=color, s=14, alpha=0.6)
            ax.annotate(f"{y:+.3f}" + (f" ({len(ys)} seeds)" if len(ys) > 1 else "") + f", {epochs:.2g} ep", (x, y),
                        textcoords="offset points", xytext=(6, 6), fontsize=8, color=color)
    log_x(ax)
    finish(fig, ax, os.path.join(args.out, "regime.png"),
           "training tokens per non-embedding parameter of the dense model (log scale)",
           "MST minus dense final val loss (below 0: MST better)",
           "MST against dense at equal counted FLOPs, by training length" + (f"\n{args.title}" if args.title else ""),
           margins=(0.15, 0.15), legend="best")

    print_table([["pair", "tokens/param", "tokens/non-emb param", "epochs", "MST val loss", "MST FLOPs",
                  "dense val loss", "dense FLOPs", "FLOPs MST/dense", "MST - dense"]] +
                [[series, f"{per_param:.4g}", f"{per_non_embedding:.4g}", f"{epochs:.3g}", f"{s['val_loss']:.3f}",
                  f"{s['flops']:.3e}", f"{d['val_loss']:.3f}", f"{d['flops']:.3e}",
                  f"{ratio(s['flops'], d['flops']):.3f}x", f"{s['val_loss'] - d['val_loss']:+.3f}"]
                 for series, per_param, per_non_embedding, epochs, s, d in pairs])
    print(f"wrote regime.png to {args.out}")


def main(argv=None):
    parser = OneLineParser(prog="plot.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("curves", help="loss by step and by FLOPs, and sparsity, of each run",
                            usage="plot.py curves RUN... --out DIR [--title T]")
    p.add_argument("runs", nargs="+", metavar="RUN", help="metrics.jsonl files or out_dirs, each optionally as "
                   "LABEL=PATH; the first is the reference for the FLOPs multiples")
    p.set_defaults(handler=curves)

    p = commands.add_parser("frontier", help="final loss vs FLOPs, one point a run, one line a family",
                            usage="plot.py frontier --family NAME RUN [RUN...] [--family NAME RUN...]... --out DIR "
                                  "[--title T] [--reference RUN]")
    p.add_argument("--family", action="append", nargs="+", required=True, metavar=("NAME", "RUN"),
                   help="a family's name for the legend, then its runs (LABEL=PATH names a point)")
    p.add_argument("--reference", metavar="RUN", help="the run whose FLOPs are 1.0x in the table (need not be in "
                   "a family; default: the run with the most FLOPs)")
    p.set_defaults(handler=frontier)

    p = commands.add_parser("isoflop", help="final loss vs peak sparsity at equal FLOPs, one line a budget",
                            usage="plot.py isoflop --budget NAME RUN [RUN...] [--budget NAME RUN...]... --out DIR "
                                  "[--title T]")
    p.add_argument("--budget", action="append", nargs="+", required=True, metavar=("NAME", "RUN"),
                   help="a budget's name for the legend, then its runs: dense models and MST ones of about equal "
                        "counted FLOPs, each with its header record; seeds of one width and peak are averaged")
    p.set_defaults(handler=isoflop)

    p = commands.add_parser("regime", help="MST minus dense final loss vs tokens per parameter",
                            usage="plot.py regime --pair SERIES MST_RUN DENSE_RUN [--pair ...] --out DIR [--title T]")
    p.add_argument("--pair", action="append", nargs=3, required=True, metavar=("SERIES", "MST_RUN", "DENSE_RUN"),
                   help="a series name (pairs of one series share a line), an MST run and the dense run of equal "
                        "counted FLOPs, both with their header records; the x axis counts the dense run's tokens")
    p.set_defaults(handler=regime)

    for p in commands.choices.values():
        p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs (made if missing)")
        p.add_argument("--title", default="", metavar="T", help="second title line of every plot, e.g. the setup")
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        fail(f"--out {args.out} is a file, not a folder")
    args.handler(args)


if __name__ == "__main__":
    main()
