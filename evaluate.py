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
phases of hsa_phases, else dense. The numbers agree bit for bit on the CPU, and on CUDA with a
run trained with --compile=False; a compiled run's may differ in the last bits.

`report` lists each weight matrix's density (from the masks), how many positions changed
between --previous and this checkpoint, and each layer type's share of the parameters and of
the training FLOPs per token, counted as sparse.training_flops_per_token (and train.py) counts.
"""

import argparse
import dataclasses
import json
import math
import os

import numpy as np
import torch

from model import ATTENTION_MODES, pattern_density
from prepare import read_batch
from sample import Parser, autocast_for, fail, open_checkpoint, pick_device  # the CLI helpers are shared
from sparse import SparsitySchedule, sparse_parameters, training_flops_per_token

LAYER_TYPES = ("attn qkv", "attn proj", "mlp fc", "mlp proj", "embedding/lm_head", "attention", "other")


def train_phase(config, step):
    """The MST phase and attention mode that train.py used at `step`."""
    if not config["mst"]:
        return "dense", "dense"
    schedule = SparsitySchedule(**{f.name: config[f.name] for f in dataclasses.fields(SparsitySchedule)})
    phase = schedule.phase(step)
    return phase, config["hsa_mode"] if phase in config["hsa_phases"] else "dense"


# -----------------------------------------------------------------------------
# loss

@torch.no_grad()
def estimate_loss(model, data_path, block_size, batch_size, eval_iters, seed, device, dtype="auto"):
    """Mean of eval_iters batch losses; batch k is the k-th draw of a generator seeded with `seed`,
    exactly as in train.py's estimate_loss (which seeds it with the run's seed + 1)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(2, device=device)  # summed like train.py, so the mean is bit-for-bit its own
    for _ in range(eval_iters):
        data = np.memmap(data_path, dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
        x, y = map(torch.from_numpy, read_batch(data, ix.tolist(), block_size))
        if max(x.max().item(), y.max().item()) >= model.config.vocab_size:
            fail(f"{data_path} has token {max(x.max().item(), y.max().item())}, outside the model's "
                 f"vocabulary of {model.config.vocab_size}: is it the dataset this model was trained on?")
        with autocast_for(device, dtype):
            _, loss = model(x.to(device), y.to(device))
        total += torch.stack([loss.float(), torch.ones((), device=device)])
    return (total[0] / total[1]).item()


def cmd_loss(args):
    device = pick_device(args.device)
    model, checkpoint = open_checkpoint(args.ckpt, device)
    config, step = checkpoint["config"], checkpoint["iter_num"]
    phase, train_attention = train_phase(config, step)
    modes = {"auto": [train_attention], "hsa": [config["hsa_mode"]], "both": ["dense", config["hsa_mode"]]}
    modes = modes.get(args.attention, [args.attention])

    block_size = config["block_size"]
    batch_size = config["batch_size"] if args.batch_size is None else args.batch_size
    eval_iters = config["eval_iters"] if args.eval_iters is None else args.eval_iters
    seed = config["seed"] + 1 if args.seed is None else args.seed
    data_path = os.path.join(args.data_dir or os.path.join("data", config["dataset"]), f"{args.split}.bin")
    if not os.path.isfile(data_path):
        fail(f"{data_path} not found: run prepare.py for it, or point --data_dir at the dataset")
    if os.path.getsize(data_path) // 2 <= block_size:
        fail(f"{data_path} holds {os.path.getsize(data_path) // 2} tokens, fewer than block_size + 1 = "
             f"{block_size + 1}")
    if batch_size < 1 or eval_iters < 1:
        fail("--batch_size and --eval_iters must be positive")
    if device != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = True  # as in training
        torch.backends.cudnn.allow_tf32 = True

    results = []
    for mode in modes:
        model.set_attention(mode)
        loss = estimate_loss(model, data_path, block_size, batch_size, eval_iters, seed, device, args.dtype)
        results.append({"checkpoint": args.ckpt, "step": step, "phase": phase, "split": args.split,
                        "attention": mode, "trained_with": mode == train_attention, "loss": loss,
                        "perplexity": math.exp(loss), "eval_iters": eval_iters, "batch_size": batch_size,
                        "block_size": block_size, "seed": seed, "data": data_path})
        note = "as trained" if mode == train_attention else f"trained with {train_attention}"
        print(f"{args.split} loss {loss:.4f}, perplexity {math.exp(loss):.2f} | {mode} attention ({note}) | "
              f"step {step}, {phase} | {eval_iters} batches of {batch_size} x {block_size} tokens, seed {seed}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


# -----------------------------------------------------------------------------
# report

def layer_type(name):
    if name == "transformer.wte.weight":  # tied: it is the lm_head as well
        return "embedding/lm_head"
    for suffix, kind in (("attn.c_attn.weight", "attn qkv"), ("attn.c_proj.weight", "attn proj"),
                         ("mlp.c_fc.weight", "mlp fc"), ("mlp.c_proj.weight", "mlp proj")):
        if name.endswith(suffix):
            return kind
    return "other"


def layer_masks(model, checkpoint):
    """{name: flat bool mask} for every weight matrix MST can sparsify (the block Linears and the
    tied embedding); a weight without a mask in the checkpoint is dense: all True."""
    masks = {}
    for group, mask in ((checkpoint.get("sparsity") or {}).get("masks") or {}).items():
        masks.update(zip(group.split(","), mask))
    return {name: masks.get(name, torch.ones(p.numel(), dtype=torch.bool))
            for name, p in sparse_parameters(model, include_embedding=True)}


def build_report(path, previous=None):
    model, checkpoint = open_checkpoint(path, "cpu")
    config, c, step = checkpoint["config"], model.config, checkpoint["iter_num"]
    phase, attention = train_phase(config, step)
    masks = layer_masks(model, checkpoint)
    params = dict(model.named_parameters())
    sparsified = {n for group in ((checkpoint.get("sparsity") or {}).get("masks") or {}) for n in group.split(",")}
    if not sparsified:  # a dense run: the weights MST would have sparsified, all at density 1
        sparsified = {n for n, _ in sparse_parameters(model, include_embedding=config.get("sparse_embedding", False))}
    before = None
    if previous is not None:
        previous_model, previous_checkpoint = open_checkpoint(previous, "cpu")
        before = layer_masks(previous_model, previous_checkpoint)
        if {n: m.numel() for n, m in before.items()} != {n: m.numel() for n, m in masks.items()}:
            fail(f"{previous} holds a different model than {path}: their masks cannot be compared")

    # FLOPs per token of the next training step, counted like train.py's step_flops: every Linear
    # 6 * numel * density (lm_head dense unless sparsified), attention by its pattern's density
    T = config["block_size"]
    attention_density = pattern_density(attention, T, c.attn_window, c.attn_stride, c.attn_block)
    layers, dead_nonzero = [], 0
    for name, mask in masks.items():
        live, numel = int(mask.sum()), mask.numel()
        flops = training_flops_per_token(0, c.n_embd, T, [numel], [live / numel], 0)
        row = {"name": name, "type": layer_type(name), "shape": list(params[name].shape), "params": numel,
               "live": live, "density": live / numel, "sparsified": name in sparsified, "flops_per_token": flops}
        if before is not None:
            row["grown"] = int((mask & ~before[name]).sum())  # live now, dead before
            row["pruned"] = int((before[name] & ~mask).sum())  # live before, dead now
            row["changed"] = row["grown"] + row["pruned"]
        layers.append(row)
        dead_nonzero += int((checkpoint["model"][name].reshape(-1)[~mask] != 0).sum())
    attention_flops = training_flops_per_token(c.n_layer, c.n_embd, T, [], [], 0, attention_density)

    # the same total in one call, as train.py makes it: the per-layer rows must add up to it
    sparse_rows = [row for row in layers if row["sparsified"]]
    flops_mst = training_flops_per_token(c.n_layer, c.n_embd, T, [r["params"] for r in sparse_rows],
                                         [r["density"] for r in sparse_rows],
                                         sum(r["params"] for r in layers if not r["sparsified"]), attention_density)
    flops_dense = training_flops_per_token(c.n_layer, c.n_embd, T, [r["params"] for r in layers],
                                           [1.0] * len(layers), 0)
    assert math.isclose(flops_mst, sum(r["flops_per_token"] for r in layers) + attention_flops, rel_tol=1e-9)

    n_params = sum(p.numel() for p in model.parameters())  # the tied embedding counted once
    n_dead = sum(r["params"] - r["live"] for r in layers)
    types = []
    for kind in LAYER_TYPES:
        rows = [r for r in layers if r["type"] == kind]
        count = sum(r["params"] for r in rows)
        if kind == "other":  # position embedding, layer norms, biases: dense, and no FLOPs as counted here
            count = n_params - sum(r["params"] for r in layers)
        flops = attention_flops if kind == "attention" else sum(r["flops_per_token"] for r in rows)
        live = sum(r["live"] for r in rows) if rows else count
        types.append({"type": kind, "params": count, "param_share": count / n_params,
                      "density": live / count if count else None, "flops_per_token": flops,
                      "flops_share": flops / flops_mst})
    report = {
        "checkpoint": path, "step": step, "phase": phase, "attention": attention,
        "attention_density": attention_density,
        "density": sum(r["live"] for r in sparse_rows) / sum(r["params"] for r in sparse_rows) if sparse_rows else 1.0,
        "density_all_params": (n_params - n_dead) / n_params, "params": n_params,
        "masked_weights_not_zero": dead_nonzero,
        "layers": layers, "types": types,
        "flops_per_token": flops_mst, "flops_per_token_dense": flops_dense,
        "training_flops": checkpoint.get("flops_mst"), "training_flops_dense": checkpoint.get("flops_dense"),
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
    print(f"{r['checkpoint']}: step {r['step']} ({r['phase']}), {r['attention']} attention "
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
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = commands.add_parser("loss", help="loss and perplexity on a split, as train.py evaluates")
    p.add_argument("--ckpt", required=True, help="a train.py checkpoint (ckpt.pt, best.pt, a copy)")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--eval_iters", type=int, default=None, help="batches (default: the run's eval_iters)")
    p.add_argument("--batch_size", type=int, default=None, help="sequences a batch (default: the run's batch_size)")
    p.add_argument("--seed", type=int, default=None, help="seed of the batch generator (default: the run's seed + 1, "
                                                            "train.py's evaluation batches)")
    p.add_argument("--attention", default="auto", choices=("auto", "both", "hsa") + ATTENTION_MODES,
                   help="auto: train.py's mode at that step; hsa: the run's hsa_mode; both: dense and hsa")
    p.add_argument("--data_dir", default=None, help="folder of train.bin/val.bin (default: data/<the run's dataset>)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="auto: bf16 autocast on CUDA, fp32 on the CPU, as train.py")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p = commands.add_parser("report", help="per-layer density, topology changes, parameter and FLOP shares")
    p.add_argument("--ckpt", required=True, help="a train.py checkpoint")
    p.add_argument("--previous", default=None, help="an earlier checkpoint of the same run: count changed positions")
    p.add_argument("--json", default=None, help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    {"loss": cmd_loss, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
