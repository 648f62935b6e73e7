"""
Plots the metrics.jsonl files that train.py writes, and prints a summary table as markdown.

    python plot.py curves RUN... --out DIR [--title T]
    python plot.py frontier --family NAME RUN [RUN...] [--family NAME RUN...]... --out DIR [--title T]
                            [--reference RUN] [--best-rate]
    python plot.py isoflop --budget NAME RUN [RUN...] [--budget NAME RUN...]... --out DIR [--title T] [--best-rate]
    python plot.py rates RUN... [--out PNG] [--table MD] [--reference-flops F] [--metric final|best] [--title T]
    python plot.py epochs --budget NAME RUN [RUN...] [--budget NAME RUN...]... [--out PNG|DIR] [--table MD]
                          [--title T]

A RUN is a metrics.jsonl file or the out_dir that holds one; LABEL=PATH names it (by default the out_dir's
name, or the file's stem). FLOPs are each run's own count of its training FLOPs ("flops").

curves: the runs' val loss by step and by FLOPs, val_loss_vs_step.png and val_loss_vs_flops.png, and each
MST run's target and actual sparsity, phases and where HSA was on, sparsity.png (not written when no run
has MST phases). The first run is the reference: the table gives FLOPs as a multiple of its FLOPs, and the
FLOPs plot marks its final loss.

frontier: each run is one point, its final val loss at its final FLOPs; each family (say, dense runs of
several lengths, or MST runs of several schedules) is one line, in FLOP order. Runs of a family whose headers
differ only in the seed (and I/O or machine settings) make one point of the line, their mean, with each run
as a dot. The table gives FLOPs as a multiple of the --reference run's (by default the run with the most
FLOPs), a row a run. Writes frontier.png.

isoflop: runs of about equal counted FLOPs, dense models and MST on wider ones, as final val loss against
the peak sparsity in each run's header record (0 for a dense run), one line a budget through the mean of the
runs that share a width and peak (seeds), with every run as a dot. Writes isoflop.png.

rates: a learning-rate sweep. A family is one model shape and one method setting: all the settings in a
run's header but the rate, min_lr, the seed, I/O and system ones (NOT_FAMILY), the dataset (its pool), and
peak_sparsity where flops_budget solved it. A budget is the runs whose final counted FLOPs agree within 2%, and
that trained on one dataset (named after the FLOPs where the runs have several). Each family's best rate has
the lowest final val loss (--metric best: the lowest evaluated one, a run's best) on the seeds that every rate
of the family ran (if none, the lowest mean); it is bracketed when a lower and a higher rate ran too. Prints
the markdown table (or writes it to --table): per budget, each family at its best rate, its seeds' losses,
their mean, its neighbour rates' losses and how far it is behind the budget's best family. Draws --out, if
given: the loss against peak rate, one line a family, one panel a budget.

epochs: rate sweeps at one budget on training pools of several sizes (datasets), as rates ranks them on the
best val loss. A pool's epochs are max_iters x tokens_per_iter / train_tokens, from each run's header. Per
--budget, pool and family, the table gives its best rate, its seeds' best and final val losses there, the
rate the final val loss would pick, the epochs, how far it is behind the pool's best family, and its train
loss at the best evaluations with the val - train gap (fit against memorisation). Draws --out
(a .png, or a folder for epochs.png), if given: the mean best val loss at the best rate against epochs, a line
a family through the pools, a panel a --budget.

--best-rate (frontier, isoflop): of each family's runs, only those at its best rate.
"""

import argparse
import contextlib
import json
import math
import os
import sys
import textwrap
from collections import Counter

from configurator import settings_block
from runtime import PROJECT_DIR, OneLineParser, fail

try:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.path import Path
    import matplotlib.transforms
    from matplotlib.transforms import Bbox
except ImportError:
    fail("plot.py needs matplotlib: pip install matplotlib")

EVAL_KEYS = ("step", "val_loss", "phase", "attn_mode", "flops")
LOG_KEYS = ("step", "phase", "target_sparsity", "sparsity", "attn_mode", "ms_per_step", "tokens_per_s", "flops")
HEADER_COUNTS = ("params", "tokens_per_iter", "train_tokens")  # a header record's counts
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


def print_table(rows, text_columns=1, file=None, padded=True):
    """rows[0] is the header. A markdown table, padded so that it reads in a terminal too (not padded: the
    smallest table, for a page that renders it)."""
    widths = [max(len(row[i]) for row in rows) if padded else 0 for i in range(len(rows[0]))]
    rows = [rows[0], ["-" * max(w, 3) for w in widths], *rows[1:]]
    for row in rows:
        cells = [c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("| " + " | ".join(cells) + " |", file=file)


def log_x(ax):
    """A log x axis whose ticks read as plain numbers, with more of them than matplotlib's decades."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 3, 5)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def save(fig, path, labels=None, tight=False):
    """Lays the figure out, then writes labels ({axes: [(x, y, text, colour)]}) where the layout leaves room
    for them, and writes the PNG; tight: cropped to what was drawn (a legend outside the axes included)."""
    fig.tight_layout()
    for ax, points in (labels or {}).items():
        place_labels(ax, points)
    fig.savefig(path, dpi=150, bbox_inches="tight" if tight else None)
    plt.close(fig)


def legend_text(name):
    """A legend entry, wrapped: the legends of panels side by side stay apart however long a family's name."""
    return textwrap.fill(name, 72, subsequent_indent="    ")


def dress(ax, xlabel, ylabel, title, margins=(0.05, 0.06), legend="upper right", **legend_anchor):
    """An axis's labels, grid, margins (room for point labels) and legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.margins(*margins)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles, [legend_text(n) for n in names], loc=legend, fontsize=9, **legend_anchor)


def finish(fig, ax, path, xlabel, ylabel, title, margins=(0.05, 0.06), legend="upper right", labels=()):
    """A one-axis plot's dressing and its point labels; then save."""
    dress(ax, xlabel, ylabel, title, margins, legend)
    save(fig, path, {ax: labels})


# where a point's label may go: its offset from the point in points, and its alignment there; nearest first
LABEL_PLACES = [(sx * r, sy * r, ("right", "center", "left")[sx + 1], ("top", "center", "bottom")[sy + 1])
                for r in (5, 12, 22, 34)
                for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))]


def obstacles(ax, renderer):
    """What a point label must not cover, in pixels: boxes round the markers and the legend, and the lines."""
    px = ax.figure.dpi / 72
    boxes, lines = [], []
    for line in ax.lines:
        xy = line.get_transform().transform(line.get_xydata())
        if line.get_linestyle() not in ("None", "") and len(xy) > 1:
            lines.append(Path(xy))
        if line.get_marker() not in ("None", "", " ", None):
            r = line.get_markersize() * px / 2
            boxes += [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in xy]
    for dots in ax.collections:
        r = math.sqrt(max(dots.get_sizes(), default=0)) * px / 2  # a scatter's sizes are areas in points^2
        boxes += [Bbox.from_extents(x - r, y - r, x + r, y + r)
                  for x, y in dots.get_offset_transform().transform(dots.get_offsets())]
    if ax.get_legend():
        boxes.append(ax.get_legend().get_window_extent(renderer))
    return boxes, lines


def place_labels(ax, labels):
    """Writes each (x, y, text, colour) label beside its point, at the nearest place where it covers no
    other label, marker, line or the legend and stays inside the axes; where none is free, the place inside
    the axes that covers the fewest (a label cut off by the edge is worse than one that overlaps). Points
    close together thus get labels that do not overlap."""
    ax.figure.canvas.draw()  # the limits and the legend's place are final from here on
    renderer = ax.figure.canvas.get_renderer()
    boxes, lines = obstacles(ax, renderer)

    def box_at(note, place):
        note.xyann = place[:2]
        note.set_horizontalalignment(place[2])
        note.set_verticalalignment(place[3])
        return note.get_window_extent(renderer).padded(1.5)

    def covered(box):
        outside = not (ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1))
        return (100 * outside + sum(box.overlaps(b) for b in boxes)
                + sum(line.intersects_bbox(box, filled=False) for line in lines))

    for x, y, text, color in labels:
        if text:
            note = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=8, color=color)
            place = min(LABEL_PLACES, key=lambda p: covered(box_at(note, p)))  # the first of equal cover
            boxes.append(box_at(note, place))


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
# rates

# The settings that do not tell one family from another: the rate under tuning, the seed, and I/O and the
# machine. peak_sparsity joins them where flops_budget > 0, which solves it from the rest.
NOT_FAMILY = {"learning_rate", "min_lr", "seed", "out_dir", "eval_interval", "log_interval", "eval_iters",
              "always_save_checkpoint", "keep_checkpoints", "keep_best_checkpoint", "init_from", "overwrite",
              "allow_changes_on_resume", "compile", "device", "dtype", "backend", "data_dir"}
# A run's pool, the dataset it trained on, is no setting of its family either: a family on another pool is
# compared apart from it (rates), or is the next point of its line (epochs).
POOL = "dataset"
# Not named as settings: the name's own part, the heads (they go with the width) and the budget's.
IN_NAME = {"mst", "n_layer", "n_embd", "peak_sparsity", "n_head", "flops_budget"}
TRAIN_DEFAULTS = settings_block(os.path.join(PROJECT_DIR, "train.py"))
BUDGET_SPREAD = 0.02  # the runs of one budget count FLOPs within 2% of its smallest run's
# What a sweep ranks rates on: a sweep point's key, and its names in a table and on a plot's axis
METRICS = {"final": ("val_loss", "final val loss", "final validation loss"),
           "best": ("best_loss", "best val loss", "best validation loss")}
BEST_LOSS_RULE = "Best val loss: the lowest of a run's evaluations, what a run that keeps its best checkpoint has"
RANKING_RULE = "the lowest {} on the seeds that every rate of the family ran (if none, the lowest mean)"
BUDGET_RULE = f"A budget: runs whose counted FLOPs agree within {BUDGET_SPREAD:.0%}."


def rate_rules(metric):
    return (f"Best rate: {RANKING_RULE.format(METRICS[metric][1])}, the next rates shown the same way; mean: over "
            "the seeds run at the best rate. Bracketed: a lower and a higher rate ran too. "
            + (f"{BEST_LOSS_RULE}. " if metric == "best" else "") + BUDGET_RULE)


def header_settings(run):
    """A run's settings from its (latest) header; a header from before a setting existed ran it at its
    default: today's, from train.py's source. A recorded key that is no setting today names no family
    (headers of December 2026 recorded EMBEDDING, a constant train.py imports)."""
    recorded = {k: v for k, v in run["header"]["run"].items() if k in TRAIN_DEFAULTS}
    return {**TRAIN_DEFAULTS, **recorded}


def shape_text(settings):
    """A model's shape, "12x448", and for MST its peak sparsity, "12x448 @0.41"."""
    return (f"{settings['n_layer']}x{settings['n_embd']}"
            + (f" @{settings['peak_sparsity']:.2f}" if settings.get("mst") else ""))


def sweep_point(run):
    """A run's place in a rate sweep, from its (latest) header: the settings that make its family, its pool,
    peak rate and seed, its final val loss, its best (lowest evaluated) one with that evaluation's step and
    train loss, its counted FLOPs and the epochs it trained over its pool."""
    if run["header"] is None:
        fail(f"{run['path']} has no header record, so its rate, seed and family are unknown")
    settings = header_settings(run)
    needed = ["learning_rate", "seed", "mst", "n_layer", "n_embd", "max_iters"]
    if settings.get("mst"):
        needed.append("peak_sparsity")  # an MST family's name gives it
    missing = [k for k in needed if k not in settings]
    if missing:
        fail(f"{run['path']}'s header lacks {', '.join(missing)}, so its rate, seed or family is unknown")
    last = run["evals"][-1]
    if last["step"] != settings["max_iters"]:
        fail(f"{run['path']} ends at step {last['step']} of {settings['max_iters']}: finish it (--init_from=resume) "
             "or leave it out")
    trained(run)  # fails for a run of no steps
    named = {k: v for k, v in settings.items() if k not in NOT_FAMILY and k != POOL}
    family = {k: v for k, v in named.items() if not (k == "peak_sparsity" and settings.get("flops_budget", 0) > 0)}
    best = min(run["evals"], key=lambda r: r["val_loss"])  # the first of equal ones
    header = run["header"]
    return {"run": run, "named": named, "family": json.dumps(family, sort_keys=True), "pool": settings[POOL],
            "train_tokens": header["train_tokens"],
            "epochs": settings["max_iters"] * header["tokens_per_iter"] / header["train_tokens"],
            "rate": settings["learning_rate"], "seed": settings["seed"], "val_loss": last["val_loss"],
            "best_loss": best["val_loss"], "best_step": best["step"], "best_train_loss": best["train_loss"],
            "flops": last["flops"]}


def ranking(points, key):
    """A family's {rate: {seed: sweep point}} ranked on the points' loss `key`: {rate: mean over its seeds},
    {rate: mean over the seeds that every rate ran (if none, over its own)}, and the rate ranked lowest."""
    means = {rate: sum(p[key] for p in seeds.values()) / len(seeds) for rate, seeds in points.items()}
    # Rates are ranked on the seeds that all of them ran: a second seed runs only at and next to the
    # best, and its offset (seed 2 sits 0.01-0.05 above seed 1337 here) would rank those rates on it.
    shared = set.intersection(*(set(seeds) for seeds in points.values()))
    ranked = {rate: (sum(seeds[s][key] for s in shared) / len(shared) if shared else means[rate])
              for rate, seeds in points.items()}
    return means, ranked, min(ranked, key=ranked.get)


def sweep(runs, metric="final"):
    """The runs' budgets: in FLOP order, and at equal FLOPs a budget a pool, the largest pool first. A budget
    is {"flops": its FLOPs' largest run's, "level": the FLOPs' place in that order, "pool", "train_tokens": the
    pool's, "families": [...], best first}. A family is {"name", "key": its settings, "points": {rate: {seed:
    sweep point}}, "means": {rate: mean over seeds}, "ranked": {rate: mean over the seeds every rate ran},
    "best": the rate ranked lowest, "bracketed"}, on the metric's loss; rates ascend, seeds keep the order
    given."""
    points = [sweep_point(run) for run in runs]
    smallest = []  # each FLOP level's smallest FLOPs
    for p in sorted(points, key=lambda p: p["flops"]):
        if not smallest or p["flops"] > smallest[-1] * (1 + BUDGET_SPREAD):
            smallest.append(p["flops"])
        p["level"] = len(smallest) - 1
    size = {}  # each pool's training tokens
    for p in points:
        size[p["pool"]] = max(size.get(p["pool"], 0), p["train_tokens"])
    budgets = sorted({(p["level"], p["pool"]) for p in points}, key=lambda b: (b[0], -size[b[1]], b[1]))
    families = {}
    for p in points:
        p["budget"] = budgets.index((p["level"], p["pool"]))
        family = families.setdefault((p["budget"], p["family"]), {"budget": p["budget"], "key": p["family"],
                                                                   "named": p["named"], "points": {}})
        seeds = family["points"].setdefault(p["rate"], {})
        if p["seed"] in seeds:
            fail(f"{seeds[p['seed']]['run']['path']} and {p['run']['path']} are one family at one rate and seed: "
                 "leave one out")
        seeds[p["seed"]] = p
    families = list(families.values())
    for f in families:
        f["points"] = dict(sorted(f["points"].items()))
        f["means"], f["ranked"], f["best"] = ranking(f["points"], METRICS[metric][0])
        f["bracketed"] = min(f["means"]) < f["best"] < max(f["means"])
    name_families(families)
    return [{"flops": max(p["flops"] for p in points if p["level"] == level), "level": level, "pool": pool,
             "train_tokens": size[pool],
             "families": sorted((f for f in families if f["budget"] == b), key=lambda f: f["means"][f["best"]])}
            for b, (level, pool) in enumerate(budgets)]


def setting_text(key, value):
    return f"{key}={value}"


def name_families(families):
    """Names a family by its method and shape, "dense 12x128" or "MST 12x192 @0.43" (its peak sparsity), then
    each setting where it differs from the usual value among the families of its method given: train.py's
    default where one of them runs it (a lever stays named however many families pull it), else the value
    most of them run (a tie: the value seen first). Families of one budget that still share a name get the
    named settings where they differ too."""
    keys = sorted(set().union(*(f["named"] for f in families)) - IN_NAME)
    for f in families:
        s = f["named"]
        kin = [g["named"] for g in families if g["named"]["mst"] == s["mst"]]
        usual = {}
        for k in keys:
            seen = Counter(json.dumps(other.get(k)) for other in kin)
            default = json.dumps(TRAIN_DEFAULTS.get(k))
            usual[k] = default if default in seen else seen.most_common(1)[0][0]
        f["name"] = ("MST " if s["mst"] else "dense ") + shape_text(s)
        f["name"] += "".join(", " + setting_text(k, s.get(k)) for k in keys if json.dumps(s.get(k)) != usual[k])
    same = {}
    for f in families:
        same.setdefault((f["budget"], f["name"]), []).append(f)
    for group in (g for g in same.values() if len(g) > 1):
        differ = [k for k in sorted(IN_NAME) if len({json.dumps(f["named"].get(k)) for f in group}) > 1]
        for f in group:
            f["name"] += "".join(", " + setting_text(k, f["named"].get(k)) for k in differ)


def at_best_rates(runs):
    """Those of the runs that ran at their family's best rate, in the order given."""
    best = {id(p["run"]) for budget in sweep(runs) for f in budget["families"]
            for p in f["points"][f["best"]].values()}
    return [run for run in runs if id(run) in best]


def load_runs(specs, best_rate=False):
    runs = [load_run(spec) for spec in specs]
    return at_best_rates(runs) if best_rate else runs


def rate_text(rate):
    """A rate as the study writes it: 6e-4, 1.2e-3."""
    mantissa, exponent = f"{rate:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def under_axes(ax):
    """A legend's place: under the axes' x label, where long family names cover no point."""
    below = matplotlib.transforms.offset_copy(ax.transAxes, ax.figure, y=-34, units="points")
    return {"legend": "upper center", "bbox_to_anchor": (0.5, 0), "bbox_transform": below}


def panel_grid(count, width, height, extra_height, legends=()):
    """A figure of `count` panels, two a row, each width x height inches (plus extra_height for the titles):
    the figure and its panels' axes, in reading order. legends: each panel's legend entries, drawn under its
    axes: a row grows by the tallest, so that the axes keep their height."""
    columns = min(count, 2)
    rows = -(-count // columns)
    legend_lines = max((sum(legend_text(n).count("\n") + 1 for n in names) for names in legends), default=0)
    height += 0.19 * legend_lines  # a line of 9 points with the legend's spacing, in inches
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, extra_height + height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes.flat[:count]


def plot_rates(budgets, path, title, metric="final"):
    key, words, axis = METRICS[metric]

    def entry(f):
        return (f"{f['name']}: {f['means'][f['best']]:.3f} at {rate_text(f['best'])}"
                + ("" if f["bracketed"] else ", NOT BRACKETED"))

    fig, axes = panel_grid(len(budgets), 10, 5, 1, [[entry(f) for f in b["families"]] for b in budgets])
    for ax, budget in zip(axes, budgets):
        for i, f in enumerate(budget["families"]):
            color, best = plt.cm.tab10(i % 10), f["best"]
            ax.plot(list(f["means"]), list(f["means"].values()), color=color, marker=MARKERS[i % len(MARKERS)],
                    markersize=6, linewidth=1.6, label=entry(f))
            for rate, seeds in f["points"].items():
                ax.scatter([rate] * len(seeds), [p[key] for p in seeds.values()], color=color, s=12, alpha=0.35)
            ax.scatter([best], [f["means"][best]], s=160, facecolors="none", edgecolors=color, linewidths=1.4)
        # A rate that diverges would squeeze every other point into the bottom: the axis stops 0.5 above the
        # best mean, and a point past it is drawn on the edge with its value, stacked under the others there.
        means = [(rate, loss, plt.cm.tab10(i % 10)) for i, f in enumerate(budget["families"])
                 for rate, loss in f["means"].items()]
        lowest = min(loss for _, loss, _ in means)
        top = min(max(loss for _, loss, _ in means), lowest + 0.5) + 0.02
        ax.set_ylim(lowest - 0.02, top)
        stacked = Counter()
        for rate, loss, color in sorted(means, key=lambda m: -m[1]):
            if loss > top:
                stacked[rate] += 1
                ax.annotate(f"{loss:.2f} ↑", (rate, top), xytext=(0, -11 * stacked[rate]), textcoords="offset points",
                            ha="center", color=color, fontsize=8, annotation_clip=False)
        ax.set_xscale("log", base=2)
        rates = sorted({rate for f in budget["families"] for rate in f["means"]})
        ax.set_xticks(rates, [rate_text(rate) for rate in rates])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        dress(ax, "peak learning rate (log2 scale)", f"{axis} (nats/token)", budget["title"], **under_axes(ax))
    fig.suptitle(f"{words} by peak rate: lines through the mean over seeds (dots), rings at each family's best"
                 + (f"\n{title}" if title else ""))
    save(fig, path, tight=True)


def rates_table(budgets, metric="final"):
    key, words, _ = METRICS[metric]
    rows = [["budget", "family", "best rate", "bracketed", f"{words} by seed", "mean",
             "next lower rate", "next higher rate", "vs best family"]]
    for budget in budgets:
        top = budget["families"][0]
        for f in budget["families"]:
            rates, mean = list(f["means"]), f["means"][f["best"]]
            at = rates.index(f["best"])
            neighbour = [f"{rate_text(rates[i])}: {f['ranked'][rates[i]]:.3f}" if 0 <= i < len(rates) else "none"
                         for i in (at - 1, at + 1)]
            seeds = f["points"][f["best"]]
            rows.append([budget["label"], f["name"], rate_text(f["best"]), "yes" if f["bracketed"] else "**no**",
                         ", ".join(f"{seed}: {p[key]:.3f}" for seed, p in seeds.items()),
                         f"{mean:.3f}", *neighbour,
                         "best" if f is top else f"{mean - top['means'][top['best']]:+.3f}"])
    return rows


def check_table(path):
    if path and os.path.isdir(path):
        fail(f"--table {path} is a folder, not a file")


def write_outputs(figure, table, rows, notes, text_columns, draw):
    """draw(figure) if a figure is asked for; the markdown table and its notes to the table file, else to
    stdout (padded there, to read in a terminal); each file's folder made if missing."""
    for path in (figure, table):
        if path and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    if figure:
        draw(figure)
    with open(table, "w") if table else contextlib.nullcontext(sys.stdout) as f:
        print_table(rows, text_columns=text_columns, file=f, padded=not table)
        print(f"\n{notes}", file=f)
    written = [path for path in (figure, table) if path]
    if written:
        print(f"wrote {' and '.join(written)}")


def rates(args):
    if args.out and (not args.out.endswith(".png") or os.path.isdir(args.out)):
        fail(f"--out {args.out} is not a .png file's name")
    check_table(args.table)
    if args.reference_flops is not None and not args.reference_flops > 0:
        fail(f"--reference-flops={args.reference_flops} must be a positive number of FLOPs")
    budgets = sweep(load_runs(args.runs), args.metric)
    pools = len({budget["pool"] for budget in budgets}) > 1
    for budget in budgets:
        flops = f"{budget['flops']:.3e} counted FLOPs"
        if args.reference_flops:
            budget["label"] = f"{budget['flops'] / args.reference_flops:#.2g}x"
            budget["title"] = f"{budget['label']} ({flops})"
        else:
            budget["label"] = budget["title"] = flops
        if pools:  # one dataset is every run's; more are named
            budget["label"] += f", {budget['pool']}"
            budget["title"] += f", {budget['pool']}"
    write_outputs(args.out, args.table, rates_table(budgets, args.metric), rate_rules(args.metric), 2,
                  lambda path: plot_rates(budgets, path, args.title, args.metric))


# -----------------------------------------------------------------------------
# epochs


def pool_text(budget):
    return f"{budget['pool']} ({budget['train_tokens'] / 1e6:.3g}M tokens)"


def epoch_budgets(given):
    """[(name, [budget a pool, the largest first])], one a --budget NAME RUN... in `given`, [(name, runs)]. The
    runs of all are one sweep on the best val loss, so that family names agree across budgets; each budget's
    families also get "epochs" (their best rate's runs', over the pool) and "by_final" (the rate the final val
    loss ranks lowest, ranked as the best one is) with "final_ranked" (as "ranked")."""
    budgets = sweep([run for _, runs in given for run in runs], "best")
    level = {id(p["run"]): budget["level"] for budget in budgets for f in budget["families"]
             for seeds in f["points"].values() for p in seeds.values()}
    named, panels = {}, []
    for name, runs in given:
        levels = {level[id(run)] for run in runs}
        if len(levels) > 1:
            fail(f"--budget {name}'s runs count FLOPs more than {BUDGET_SPREAD:.0%} apart: give each budget its own "
                 "--budget")
        [at] = levels
        if at in named:
            fail(f"--budget {named[at]} and --budget {name} count the same FLOPs: give their runs as one --budget")
        named[at] = name
        panels.append((name, [budget for budget in budgets if budget["level"] == at]))
    for budget in budgets:
        for f in budget["families"]:
            seeds = f["points"][f["best"]].values()
            f["epochs"] = sum(p["epochs"] for p in seeds) / len(seeds)
            _, f["final_ranked"], f["by_final"] = ranking(f["points"], "val_loss")
    return panels


def best_rate_text(family):
    """A family's best rate as a label. Unbracketed, it says which way the sweep has to go on: ≤ where the best is
    the lowest rate the family ran, ≥ where it is the highest, "only" where it ran one rate."""
    rate, rates = family["best"], list(family["means"])  # rates ascend
    if family["bracketed"]:
        return rate_text(rate)
    if len(rates) == 1:
        return f"{rate_text(rate)} only"
    return ("≤" if rate == rates[0] else "≥") + rate_text(rate)


def plot_epochs(panels, path, title):
    panel_lines = []  # a panel's {family key: (name, [the family at each pool])}, in the largest pool's ranking
    for _, pools in panels:
        panel_lines.append({})
        for budget in pools:
            for f in budget["families"]:
                panel_lines[-1].setdefault(f["key"], (f["name"], []))[1].append(f)
    fig, axes = panel_grid(len(panels), 9, 5.5, 1.5, [[name for name, _ in lines.values()] for lines in panel_lines])
    labels = {}
    for ax, (name, pools), lines in zip(axes, panels, panel_lines):
        labels[ax] = []
        for i, (family, points) in enumerate(lines.values()):
            color = plt.cm.tab10(i % 10)
            points.sort(key=lambda f: f["epochs"])
            ax.plot([f["epochs"] for f in points], [f["means"][f["best"]] for f in points], color=color,
                    marker=MARKERS[i % len(MARKERS)], markersize=7, linewidth=1.6, label=family)
            for f in points:
                seeds = f["points"][f["best"]].values()
                if len(seeds) > 1:
                    ax.scatter([f["epochs"]] * len(seeds), [p["best_loss"] for p in seeds], color=color, s=14,
                               alpha=0.6)
                labels[ax].append((f["epochs"], f["means"][f["best"]], best_rate_text(f), color))
        log_x(ax)
        dress(ax, "epochs over the training pool (log scale)", "best validation loss (nats/token)",
              f"{name} ({pools[0]['flops']:.3e} counted FLOPs)", margins=(0.12, 0.1), **under_axes(ax))
    fig.suptitle("best val loss by epochs at equal FLOPs: each family at its best peak rate (labelled; ≤ or ≥: the "
                 "lowest or highest rate it ran, not bracketed), lines through the mean over seeds (dots)"
                 + (f"\n{title}" if title else ""))
    save(fig, path, labels, tight=True)


def epochs_table(panels):
    rows = [["budget", "pool", "family", "epochs", "best rate", "bracketed", "best val loss by seed (step)", "mean",
             "final val loss by seed", "mean", "best rate by final", "vs best family", "train loss at best",
             "val - train"]]
    for name, pools in panels:
        for budget in pools:
            top = budget["families"][0]
            for f in budget["families"]:
                seeds, mean = f["points"][f["best"]], f["means"][f["best"]]
                finals = [p["val_loss"] for p in seeds.values()]
                train = sum(p["best_train_loss"] for p in seeds.values()) / len(seeds)
                by_final = ("same" if f["by_final"] == f["best"] else
                            f"**{rate_text(f['by_final'])}**: {f['final_ranked'][f['by_final']]:.3f}")
                rows.append([name, pool_text(budget), f["name"], f"{f['epochs']:.1f}", rate_text(f["best"]),
                             "yes" if f["bracketed"] else "**no**",
                             ", ".join(f"{seed}: {p['best_loss']:.3f} ({p['best_step']})" for seed, p in seeds.items()),
                             f"{mean:.3f}", ", ".join(f"{seed}: {p['val_loss']:.3f}" for seed, p in seeds.items()),
                             f"{sum(finals) / len(finals):.3f}", by_final,
                             "best" if f is top else f"{mean - top['means'][top['best']]:+.3f}",
                             f"{train:.3f}", f"{mean - train:+.3f}"])
    return rows


def epochs_notes(panels):
    families = [f for _, pools in panels for budget in pools for f in budget["families"]]
    moved = sum(f["by_final"] != f["best"] for f in families)
    return (f"Best rate: {RANKING_RULE.format('best val loss')}. {BEST_LOSS_RULE}; (step): its step. Mean: over the "
            "seeds run at the best rate. Final val loss: the same runs' last evaluation. Best rate by final: the rate "
            "that the final val loss ranks lowest the same way, with that loss, where it is another. Bracketed: a "
            "lower and a higher rate ran too. Vs best family: on the mean best val loss, against the best family "
            "of the same budget and pool. Epochs: max_iters x tokens a step / the pool's training tokens. Train "
            "loss at best: the loss on the training pool (train.py's estimate, dropout off) at each best evaluation, "
            "mean over seeds; val - train: the mean best val loss less it, the part of the fit that does not carry "
            "to held-out text.\n\n"
            + ("Ranked on the final val loss instead, every family keeps its best rate at every pool." if not moved
               else f"Ranked on the final val loss instead, {moved} of {len(families)} rows pick another rate."))


def epochs(args):
    path = args.out
    if path and not path.endswith(".png"):
        if os.path.exists(path) and not os.path.isdir(path):
            fail(f"--out {path} is neither a .png file's name nor a folder")
        path = os.path.join(path, "epochs.png")
    check_table(args.table)
    given = []
    for name, *specs in args.budget:
        if not specs:
            fail(f"--budget {name} names no run: give --budget NAME RUN [RUN...]")
        given.append((name, [load_run(spec) for spec in specs]))
    panels = epoch_budgets(given)
    write_outputs(path, args.table, epochs_table(panels), epochs_notes(panels), 3,
                  lambda path: plot_epochs(panels, path, args.title))


# -----------------------------------------------------------------------------
# frontier


SEED_KEYS = NOT_FAMILY - {"learning_rate", "min_lr"}  # where the seeds of one run differ


def seed_groups(points):
    """A family's (run, stats) points as lists of the runs that differ only in their seed and count FLOPs within
    BUDGET_SPREAD, in FLOP order. A run without a header is a group of its own."""
    groups, latest = [], {}  # latest: each header's last group
    for run, stats in sorted(points, key=lambda p: p[1]["flops"]):
        key = id(run) if run["header"] is None else json.dumps(
            {k: v for k, v in header_settings(run).items() if k not in SEED_KEYS}, sort_keys=True)
        group = latest.get(key)
        if group and stats["flops"] <= group[0][1]["flops"] * (1 + BUDGET_SPREAD):
            group.append((run, stats))
        else:
            latest[key] = [(run, stats)]
            groups.append(latest[key])
    return groups


def group_label(group):
    """One run's label; for seeds, their label when all share one, else the shape, the rate and the count."""
    labels = {run["label"] for run, _ in group}
    if len(labels) == 1:
        return labels.pop()
    s = header_settings(group[0][0])
    return f"{shape_text(s)} at {rate_text(s['learning_rate'])}, {len(group)} seeds"


def frontier(args):
    families = []  # (name, [(run, stats)] in FLOP order)
    for name, *specs in args.family:
        if not specs:
            fail(f"--family {name} names no run: give --family NAME RUN [RUN...]")
        points = [(run, trained(run)) for run in load_runs(specs, args.best_rate)]
        families.append((name, sorted(points, key=lambda p: p[1]["flops"])))
    if args.reference:
        reference = load_run(args.reference)
        reference_flops = trained(reference)["flops"]
    else:
        reference, reference_flops = max(((run, s["flops"]) for _, points in families for run, s in points),
                                         key=lambda p: p[1])
    os.makedirs(args.out, exist_ok=True)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    labels = []
    for i, (name, points) in enumerate(families):
        color = plt.cm.tab10(i % 10)
        groups = seed_groups(points)
        xs = [sum(s["flops"] for _, s in g) / len(g) / 1e15 for g in groups]
        ys = [sum(s["val_loss"] for _, s in g) / len(g) for g in groups]
        ax.plot(xs, ys, color=color, marker=MARKERS[i % len(MARKERS)], markersize=7, linewidth=1.6, label=name)
        for g in (g for g in groups if len(g) > 1):
            ax.scatter([s["flops"] / 1e15 for _, s in g], [s["val_loss"] for _, s in g], color=color, s=14, alpha=0.6)
        labels += [(x, y, group_label(g), color) for g, x, y in zip(groups, xs, ys)]
    ax.axvline(reference_flops / 1e15, color="0.3", linestyle=":", linewidth=1,
               label=f"1.0x FLOPs: {reference['label']}")
    log_x(ax)
    finish(fig, ax, os.path.join(args.out, "frontier.png"), "counted training FLOPs, in $10^{15}$ (log scale)",
           "final validation loss (cross-entropy, nats/token)",
           "final validation loss vs counted training FLOPs" + (f"\n{args.title}" if args.title else ""),
           margins=(0.25, 0.08), labels=labels)  # room beside the end points for their labels

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
        for run in load_runs(specs, args.best_rate):
            if run["header"] is None:
                fail(f"{run['path']} has no header record, so its width and peak sparsity are unknown")
            settings = run["header"]["run"]
            peak = settings["peak_sparsity"] if settings["mst"] else 0.0
            points.setdefault((settings["n_embd"], peak), []).append((run, trained(run)))
        budgets.append((name, dict(sorted(points.items(), key=lambda p: p[0][1]))))
    os.makedirs(args.out, exist_ok=True)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    labels = []
    for i, (name, points) in enumerate(budgets):
        color = plt.cm.tab10(i % 10)
        means = [sum(s["val_loss"] for _, s in runs) / len(runs) for runs in points.values()]
        ax.plot([peak for _, peak in points], means, color=color, marker=MARKERS[i % len(MARKERS)], markersize=7,
                linewidth=1.6, label=name)
        for (width, peak), runs in points.items():
            ax.scatter([peak] * len(runs), [s["val_loss"] for _, s in runs], color=color, s=14, alpha=0.6)
            name = f"{width} wide" + (" (dense)" if peak == 0 else "")
            labels.append((peak, max(s["val_loss"] for _, s in runs), name, color))
    finish(fig, ax, os.path.join(args.out, "isoflop.png"), "peak sparsity of the weights (0: a dense model)",
           "final validation loss (cross-entropy, nats/token)",
           "equal counted training FLOPs: wider models, sparser (lines: the mean over seeds)"
           + (f"\n{args.title}" if args.title else ""),
           margins=(0.08, 0.12), legend="lower right", labels=labels)

    print_table([["budget", "run", "width", "peak sparsity", "final val loss", "counted FLOPs"]] +
                [[name, run["label"], str(width), f"{peak:.3f}", f"{s['val_loss']:.3f}", f"{s['flops']:.3e}"]
                 for name, points in budgets for (width, peak), runs in points.items() for run, s in runs],
                text_columns=2)
    print(f"wrote isoflop.png to {args.out}")


def main(argv=None):
    parser = OneLineParser(prog="plot.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("curves", help="loss by step and by FLOPs, and sparsity, of each run",
                            usage="plot.py curves RUN... --out DIR [--title T]")
    p.add_argument("runs", nargs="+", metavar="RUN", help="metrics.jsonl files or out_dirs, each optionally as "
                   "LABEL=PATH; the first is the reference for the FLOPs multiples")
    p.set_defaults(handler=curves)

    p = commands.add_parser("rates", help="each family's best peak rate at each budget: a table and a plot",
                            usage="plot.py rates RUN... [--out PNG] [--table MD] [--reference-flops F] [--metric M] "
                                  "[--title T]")
    p.add_argument("runs", nargs="+", metavar="RUN", help="metrics.jsonl files or out_dirs, each with its header "
                   "record: the runs of a rate sweep, of any families and budgets")
    p.add_argument("--out", metavar="PNG", help="the plot to write (its folder is made if missing); none if omitted")
    p.add_argument("--reference-flops", type=float, metavar="F", help="the FLOPs that are 1.0x in the budgets' "
                   "names, e.g. 6.538e16 (dense GPT-2 124M on docmix); default: the budgets are named by FLOPs")
    p.add_argument("--metric", choices=METRICS, default="final", help="rank rates on each run's final val loss "
                   "(default) or its best, the lowest of its evaluations")
    p.set_defaults(handler=rates)

    p = commands.add_parser("epochs", help="each family's best val loss at its best rate by epochs over its pool",
                            usage="plot.py epochs --budget NAME RUN [RUN...] [--budget NAME RUN...]... [--out PNG|DIR] "
                                  "[--table MD] [--title T]")
    p.add_argument("--budget", action="append", nargs="+", required=True, metavar=("NAME", "RUN"),
                   help="a budget's name, then its runs: rate sweeps of any families on any pools (datasets), each "
                        "run with its header record, all of about equal counted FLOPs")
    p.add_argument("--out", metavar="PNG|DIR", help="the plot to write, or a folder for epochs.png (made if "
                   "missing); none if omitted")
    p.set_defaults(handler=epochs)

    p = commands.add_parser("frontier", help="final loss vs FLOPs, one point a run, one line a family",
                            usage="plot.py frontier --family NAME RUN [RUN...] [--family NAME RUN...]... --out DIR "
                                  "[--title T] [--reference RUN] [--best-rate]")
    p.add_argument("--family", action="append", nargs="+", required=True, metavar=("NAME", "RUN"),
                   help="a family's name for the legend, then its runs (LABEL=PATH names a point)")
    p.add_argument("--reference", metavar="RUN", help="the run whose FLOPs are 1.0x in the table (need not be in "
                   "a family; default: the run with the most FLOPs)")
    p.set_defaults(handler=frontier)

    p = commands.add_parser("isoflop", help="final loss vs peak sparsity at equal FLOPs, one line a budget",
                            usage="plot.py isoflop --budget NAME RUN [RUN...] [--budget NAME RUN...]... --out DIR "
                                  "[--title T] [--best-rate]")
    p.add_argument("--budget", action="append", nargs="+", required=True, metavar=("NAME", "RUN"),
                   help="a budget's name for the legend, then its runs: dense models and MST ones of about equal "
                        "counted FLOPs, each with its header record; seeds of one width and peak are averaged")
    p.set_defaults(handler=isoflop)

    for name, p in commands.choices.items():
        if name in ("rates", "epochs"):
            p.add_argument("--table", metavar="MD", help="write the markdown table to this file instead of stdout")
        if name in ("frontier", "isoflop"):
            p.add_argument("--best-rate", action="store_true", help="of each family's runs (see rates), only those "
                           "at its best rate")
        if name not in ("rates", "epochs"):
            p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs (made if missing)")
        p.add_argument("--title", default="", metavar="T", help="second title line of every plot, e.g. the setup")
    args = parser.parse_args(argv)
    if args.command not in ("rates", "epochs") and os.path.exists(args.out) and not os.path.isdir(args.out):
        fail(f"--out {args.out} is a file, not a folder")
    args.handler(args)


if __name__ == "__main__":
    main()
