"""
Evaluate a train.py checkpoint: its loss on a data split, and a report on its sparse topology.

    python evaluate.py loss --ckpt out/mst_tiny/ckpt.pt                      # = train.py's val loss at that step
    python evaluate.py loss --ckpt out/mst_tiny/ckpt.pt --attention both     # dense and the HSA pattern
    python evaluate.py loss --ckpt out/mst_tiny/ckpt.pt --split train --eval_iters 50 --json loss.json
    python evaluate.py report --ckpt out/mst_tiny/ckpt.pt --previous ckpt_150.pt --json report.json

`loss` draws its batches the way train.py's evaluation does (the same generator seed, the same
batches, the mean of the batch losses, fp32 on the CPU and bf16 autocast on CUDA), so with the
defaults it prints the val loss that train.py logged when it saved the checkpoint. The default
attention, `auto`, is the one train.py used at that step: the checkpoint's hsa_mode in the
phases of hsa_phases (at the window it had grown to there, with hsa_window_follows_sparsity),
else dense. `hsa` and a pattern's name run at that window too, or at attn_window where the step
was dense. The numbers agree bit for bit on the CPU, and on CUDA with a
run trained with --compile=False; a compiled run's may differ in the last bits.

`report` lists each weight matrix's density (from the masks), how many positions changed
between --previous and this checkpoint, and each layer type's share of the parameters and of
the training FLOPs per token, counted as flops.training_flops_per_token (and train.py) counts.
"""

import argparse
import json
import math
import os
import sys

import torch

from flops import attention_training_flops, linear_training_flops, training_flops_per_token
from model import ATTENTION_MODES
from runtime import (OneLineParser, check_tokens, data_root, estimate_loss, fail, first_line, open_checkpoint,
                     pick_device, prepare_command, schedule_of, training_attention)
from sparse import EMBEDDING, sparse_parameters


LAYER_TYPES = ("attn qkv", "attn proj", "mlp fc", "mlp proj", "embedding/lm_head", "attention", "other")


def attention_label(mode, window):
    return mode if mode == "dense" else f"{mode}, window {window}"


def check_writable(path):
    """--json's file must be writable before any work is done, not after the results are printed."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        fail(f"--json={path} is a folder, not a file")
    if not os.path.isdir(folder):
        fail(f"--json={path}: the folder {folder} does not exist")
    if not os.access(path if os.path.exists(path) else folder, os.W_OK):
        fail(f"--json={path}: no permission to write {path if os.path.exists(path) else 'in ' + folder}")


def write_json(path, results):
    try:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
    except OSError as e:  # checked up front, but a disk can fill or a mount go away meanwhile
        fail(f"cannot write {path}: {e.strerror or first_line(e)}")


def trained_state(model, checkpoint, device):
    """The phase at the checkpoint's step and the attention train.py used there (see training_attention)."""
    schedule, step = schedule_of(checkpoint), checkpoint["iter_num"]
    return (schedule.phase(step) if schedule else "dense"), training_attention(model, schedule, step, device)


# -----------------------------------------------------------------------------
# loss

def cmd_loss(args):
    device = pick_device(args.device)
    model, checkpoint = open_checkpoint(args.ckpt, device)
    config, step, T = checkpoint["config"], checkpoint["iter_num"], model.config.block_size
    phase, (trained_mode, trained_window, _, _) = trained_state(model, checkpoint, device)
    # A sparse pattern runs at the window train.py used at this step (grown, in restoration with
    # hsa_window_follows_sparsity); where that step was dense, at the configured attn_window.
    hsa_window = trained_window if trained_mode != "dense" else model.config.attn_window
    hsa = (model.config.hsa_mode, hsa_window)
    wanted = {"auto": [(trained_mode, trained_window)], "hsa": [hsa], "both": [("dense", T), hsa],
              "dense": [("dense", T)]}
    wanted = wanted.get(args.attention, [(args.attention, hsa_window)])

    block_size = config["block_size"]
    batch_size = config["batch_size"] if args.batch_size is None else args.batch_size
    eval_iters = config["eval_iters"] if args.eval_iters is None else args.eval_iters
    seed = config["seed"] + 1 if args.seed is None else args.seed
    data_path = os.path.join(data_root(args.data_dir), config["dataset"], f"{args.split}.bin")
    how = (f"make it with `{prepare_command(config['dataset'], args.data_dir)}`, or point --data_dir at the folder "
           f"that holds {config['dataset']}/")
    problem = check_tokens(data_path, block_size, how)
    if problem:
        fail(problem)
    if batch_size < 1 or eval_iters < 1:
        fail("--batch_size and --eval_iters must be positive")
    if device != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = True  # as in training
        torch.backends.cudnn.allow_tf32 = True

    results = []
    for mode, window in wanted:
        attention = None if mode == "dense" else model.hsa_pattern(T, device, window, mode)
        loss = estimate_loss(model, data_path, block_size, batch_size, eval_iters, seed, device, args.dtype,
                             model.config.vocab_size, attention)
        as_trained = (mode, window) == (trained_mode, trained_window)
        results.append({"checkpoint": args.ckpt, "step": step, "phase": phase, "split": args.split,
                        "attention": mode, "window": window, "trained_with": as_trained, "loss": loss,
                        "perplexity": math.exp(loss), "eval_iters": eval_iters, "batch_size": batch_size,
                        "block_size": block_size, "seed": seed, "data": data_path})
        note = "as trained" if as_trained else f"trained with {attention_label(trained_mode, trained_window)}"
        print(f"{args.split} loss {loss:.4f}, perplexity {math.exp(loss):.2f} | {attention_label(mode, window)} "
              f"attention ({note}) | step {step}, {phase} | {eval_iters} batches of {batch_size} x {block_size} "
              f"tokens, seed {seed}")
    if args.json:
        write_json(args.json, results)


# -----------------------------------------------------------------------------
# report

def layer_type(name):
    if name == EMBEDDING:  # tied: it is the lm_head as well
        return "embedding/lm_head"
    for suffix, kind in (("attn.c_attn.weight", "attn qkv"), ("attn.c_proj.weight", "attn proj"),
                         ("mlp.c_fc.weight", "mlp fc"), ("mlp.c_proj.weight", "mlp proj")):
        if name.endswith(suffix):
            return kind
    return "other"


def layer_masks(model, checkpoint):
    """{name: flat bool mask} for every weight matrix MST can sparsify (the block Linears and the
    tied embedding); a weight without a mask in the checkpoint is dense: all True."""
    masks = (checkpoint.get("sparsity") or {}).get("masks") or {}
    return {name: masks.get(name, torch.ones(p.numel(), dtype=torch.bool))
            for name, p in sparse_parameters(model)}


def build_report(path, previous=None):
    model, checkpoint = open_checkpoint(path, "cpu")
    c, step, T = model.config, checkpoint["iter_num"], model.config.block_size
    phase, (attention, attention_window, _, attention_density) = trained_state(model, checkpoint, "cpu")
    masks = layer_masks(model, checkpoint)
    params = dict(model.named_parameters())
    sparsified = set((checkpoint.get("sparsity") or {}).get("masks") or {})
    before = None
    if previous is not None:
        previous_model, previous_checkpoint = open_checkpoint(previous, "cpu")
        before = layer_masks(previous_model, previous_checkpoint)
        if {n: m.numel() for n, m in before.items()} != {n: m.numel() for n, m in masks.items()}:
            fail(f"{previous} holds a different model than {path}: their masks cannot be compared")

    # FLOPs per token of the next training step (without a topology update), counted as train.py counts
    layers, dead_nonzero = [], 0
    for name, mask in masks.items():
        live, numel = int(mask.sum()), mask.numel()
        row = {"name": name, "type": layer_type(name), "shape": list(params[name].shape), "params": numel,
               "live": live, "density": live / numel, "sparsified": name in sparsified,
               "flops_per_token": linear_training_flops(numel, live / numel)}
        if before is not None:
            row["grown"] = int((mask & ~before[name]).sum())  # live now, dead before
            row["pruned"] = int((before[name] & ~mask).sum())  # live before, dead now
            row["changed"] = row["grown"] + row["pruned"]
        layers.append(row)
        dead_nonzero += int((checkpoint["model"][name].reshape(-1)[~mask] != 0).sum())
    numels, attention_shape = {r["name"]: r["params"] for r in layers}, (c.n_layer, c.n_embd, T)
    attention_flops = attention_training_flops(*attention_shape, attention_density)
    flops = training_flops_per_token(numels, attention_shape, {r["name"]: r["density"] for r in layers},
                                     attention_density)
    flops_dense = training_flops_per_token(numels, attention_shape)

    n_params = sum(p.numel() for p in model.parameters())  # the tied embedding counted once
    n_dead = sum(r["params"] - r["live"] for r in layers)
    sparse_rows = [row for row in layers if row["sparsified"]]
    types = []
    for kind in LAYER_TYPES:
        rows = [r for r in layers if r["type"] == kind]
        count = sum(r["params"] for r in rows)
        if kind == "other":  # position embedding, layer norms, biases: dense, and no FLOPs as counted here
            count = n_params - sum(r["params"] for r in layers)
        kind_flops = attention_flops if kind == "attention" else sum(r["flops_per_token"] for r in rows)
        live = sum(r["live"] for r in rows) if rows else count
        types.append({"type": kind, "params": count, "param_share": count / n_params,
                      "density": live / count if count else None, "flops_per_token": kind_flops,
                      "flops_share": kind_flops / flops})
    report = {
        "checkpoint": path, "step": step, "phase": phase, "attention": attention,
        "attention_window": attention_window, "attention_density": attention_density,
        "density": sum(r["live"] for r in sparse_rows) / sum(r["params"] for r in sparse_rows) if sparse_rows else 1.0,
        "density_all_params": (n_params - n_dead) / n_params, "params": n_params,
        "masked_weights_not_zero": dead_nonzero,
        "layers": layers, "types": types,
        "flops_per_token": flops, "flops_per_token_dense": flops_dense,
        "training_flops": checkpoint.get("flops"), "training_flops_dense": checkpoint.get("flops_dense"),
    }
    if before is not None:
        report["previous"] = previous
        report["previous_step"] = previous_checkpoint["iter_num"]
        for key in ("grown", "pruned", "changed"):
            report[key] = sum(r[key] for r in layers)
    return report


def print_table(header, rows, text_columns):
    """Columns as wide as their widest cell: the first text_columns left-aligned, the numbers right."""
    cells = [header] + rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(x.ljust(w) if i < text_columns else x.rjust(w)
                        for i, (x, w) in enumerate(zip(row, widths))).rstrip())


def print_report(r):
    attention = attention_label(r["attention"], r["attention_window"])
    print(f"{r['checkpoint']}: step {r['step']} ({r['phase']}), {attention} attention "
          f"(pattern density {r['attention_density']:.3f})")
    if "previous" in r:
        print(f"changes since {r['previous']} (step {r['previous_step']}): {r['changed']:,} positions "
              f"({r['grown']:,} grown, {r['pruned']:,} pruned)")
    print()
    header = ["layer", "type", "shape", "params", "live", "density"] + (["changed"] if "previous" in r else [])
    rows = [[row["name"], row["type"] + ("" if row["sparsified"] else " (dense)"), "x".join(map(str, row["shape"])),
             f"{row['params']:,}", f"{row['live']:,}", f"{row['density']:.4f}"]
            + ([f"{row['changed']:,}"] if "previous" in r else []) for row in r["layers"]]
    print_table(header, rows, text_columns=3)
    print()
    rows = [[t["type"], f"{t['params']:,}", f"{t['param_share']:.1%}",
             "-" if t["density"] is None else f"{t['density']:.4f}", f"{t['flops_per_token']:.4g}",
             f"{t['flops_share']:.1%}"] for t in r["types"]]
    rows.append(["total", f"{r['params']:,}", "100.0%", f"{r['density_all_params']:.4f}",
                 f"{r['flops_per_token']:.4g}", "100.0%"])
    print_table(["type", "params", "share", "density", "FLOPs/token", "share"], rows, text_columns=1)
    print()
    print(f"density of the sparsified weights {r['density']:.4f}, of all parameters {r['density_all_params']:.4f}; "
          f"masked weights that are not zero: {r['masked_weights_not_zero']}")
    ratio = r["flops_per_token"] / r["flops_per_token_dense"]
    print(f"training FLOPs per token of step {r['step']} (without a topology update) {r['flops_per_token']:.4g}, "
          f"dense model {r['flops_per_token_dense']:.4g} ({ratio:.3f}x)")
    if r["training_flops"]:
        print(f"training FLOPs so far {r['training_flops']:.4g}, dense model {r['training_flops_dense']:.4g} "
              f"({r['training_flops'] / r['training_flops_dense']:.3f}x)")


def cmd_report(args):
    report = build_report(args.ckpt, args.previous)
    print_report(report)
    if args.json:
        write_json(args.json, report)


def main(argv=None):
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    p = commands.add_parser("loss", help="loss and perplexity on a split, as train.py evaluates")
    p.add_argument("--ckpt", required=True, help="a train.py checkpoint (ckpt.pt, best.pt, a copy)")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--eval_iters", type=int, default=None, help="batches (default: the run's eval_iters)")
    p.add_argument("--batch_size", type=int, default=None, help="sequences a batch (default: the run's batch_size)")
    p.add_argument("--seed", type=int, default=None, help="seed of the batch generator (default: the run's seed + 1, "
                                                            "train.py's evaluation batches)")
    p.add_argument("--attention", default="auto", choices=("auto", "both", "hsa") + ATTENTION_MODES,
                   help="auto: as train.py at that step; hsa: the run's hsa_mode; both: dense and hsa; "
                        "or a pattern by name")
    p.add_argument("--data_dir", default="", help="the datasets' folder, as train.py's: reads DATA_DIR/<the run's "
                                                  "dataset>/ (default: $MST_DATA_DIR, else data/ next to evaluate.py)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="auto: bf16 autocast on CUDA, fp32 on the CPU, as train.py")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p = commands.add_parser("report", help="per-layer density, topology changes, parameter and FLOP shares")
    p.add_argument("--ckpt", required=True, help="a train.py checkpoint")
    p.add_argument("--previous", default=None, help="an earlier checkpoint of the same run: count changed positions")
    p.add_argument("--json", default=None, help="also write the report to this JSON file")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):  # else argparse blames its value
        fail(f"unknown option {argv[0]}: the first argument is the command, loss or report (see --help)")
    args = parser.parse_args(argv)
    if args.json:
        check_writable(args.json)
    {"loss": cmd_loss, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
