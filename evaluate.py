"""
Evaluate a train.py checkpoint: its loss on a data split, a report on its sparse topology, and
its zero-shot HellaSwag accuracy.

    python evaluate.py loss --ckpt out/mst_tiny/ckpt.pt                      # = train.py's val loss at that step
    python evaluate.py loss --ckpt out/mst_tiny/ckpt.pt --attention both     # dense and the HSA pattern
    python evaluate.py loss --ckpt out/mst_tiny/ckpt.pt --split train --eval_iters 50 --json loss.json
    python evaluate.py report --ckpt out/mst_tiny/ckpt.pt --previous ckpt_150.pt --json report.json
    python evaluate.py hellaswag --ckpt out/mst_gpt2/ckpt.pt                 # or --init_from gpt2

`loss` draws its batches the way train.py's evaluation does (the same generator seed, the same
batches, the mean of the batch losses, fp32 on the CPU and bf16 autocast on CUDA), so with the
defaults it prints the val loss that train.py logged when it saved the checkpoint. The default
attention, `auto`, is the one train.py used at that step: the checkpoint's hsa_mode in the
phases of hsa_phases (at the window it had grown to there, with hsa_window_follows_sparsity),
else dense. `hsa` and a pattern's name run at that window too, or at attn_window where the step
was dense. The numbers agree bit for bit on the CPU, and on CUDA with a
run trained with --compile=False; a compiled run's may differ in the last bits.

`report` lists each weight matrix's density (from the masks) and the RMS of its live weights; with
--previous, how many positions changed since that checkpoint and how far the matrix moved,
|W - W_previous| / |W_previous| (Frobenius norms): which layers run away at too high a rate. Then
each layer type's share of the parameters and of the training FLOPs per token, counted as
flops.training_flops_per_token (and train.py) counts.

`hellaswag` scores the 10042 examples of HellaSwag's validation set (Zellers et al. 2019), which
it downloads once into DATA_DIR/hellaswag/. Each candidate is the context and one of the 4 endings,
each tokenised with GPT-2's BPE (the ending with a leading space); the model's cross-entropy on the
ending's tokens alone decides: `acc` picks the ending of the lowest summed loss, `acc_norm` that
of the lowest mean loss per token. A context too long for block_size loses its first tokens.
Attention is dense unless --attention says otherwise; fp32 unless --dtype does.
"""

import argparse
import http.client
import json
import math
import os
import shutil
import sys
import urllib.parse
import urllib.request

import torch
import torch.nn.functional as F

from flops import attention_training_flops, linear_training_flops, training_flops_per_token
from model import ATTENTION_MODES
from runtime import (OneLineParser, autocast_for, check_tokens, data_root, estimate_loss, fail, first_line,
                     keep_freed_memory, open_checkpoint, pick_device, prepare_command, schedule_of,
                     training_attention)
from sample import GPT2_MODELS, load_gpt2
from sparse import EMBEDDING, sparse_parameters
from tokenizer import can_reach, get_gpt2_encoding


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


def attentions_wanted(model, trained_mode, trained_window, choice):
    """[(pattern, window)] that --attention asks for: auto is the attention train.py used at the step;
    hsa, or a pattern's name, runs at the window train.py used there (grown, in restoration with
    hsa_window_follows_sparsity), or at the configured attn_window where that step was dense."""
    T = model.config.block_size
    hsa_window = trained_window if trained_mode != "dense" else model.config.attn_window
    hsa = (model.config.hsa_mode, hsa_window)
    wanted = {"auto": [(trained_mode, trained_window)], "hsa": [hsa], "both": [("dense", T), hsa],
              "dense": [("dense", T)]}
    return wanted.get(choice, [(choice, hsa_window)])


# -----------------------------------------------------------------------------
# loss

def cmd_loss(args):
    device = pick_device(args.device)
    model, checkpoint = open_checkpoint(args.ckpt, device)
    config, step, T = checkpoint["config"], checkpoint["iter_num"], model.config.block_size
    phase, (trained_mode, trained_window, _, _) = trained_state(model, checkpoint, device)
    wanted = attentions_wanted(model, trained_mode, trained_window, args.attention)

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
        weight = checkpoint["model"][name].reshape(-1).double()
        row["rms"] = weight[mask].square().mean().sqrt().item() if live else 0.0  # of the live weights
        if before is not None:
            row["grown"] = int((mask & ~before[name]).sum())  # live now, dead before
            row["pruned"] = int((before[name] & ~mask).sum())  # live before, dead now
            row["changed"] = row["grown"] + row["pruned"]
            # how far the matrix moved, relative to its size then: a layer that runs away shows here
            weight_before = previous_checkpoint["model"][name].reshape(-1).double()
            row["moved"] = ((weight - weight_before).norm() / weight_before.norm()).item()
        layers.append(row)
        dead_nonzero += int((weight[~mask] != 0).sum())
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
    since = "previous" in r
    header = ["layer", "type", "shape", "params", "live", "density", "rms"] + (["changed", "moved"] if since else [])
    rows = [[row["name"], row["type"] + ("" if row["sparsified"] else " (dense)"), "x".join(map(str, row["shape"])),
             f"{row['params']:,}", f"{row['live']:,}", f"{row['density']:.4f}", f"{row['rms']:.4f}"]
            + ([f"{row['changed']:,}", f"{row['moved']:.3f}"] if since else []) for row in r["layers"]]
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


# -----------------------------------------------------------------------------
# hellaswag

HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
DOWNLOAD_TIMEOUT = 10  # seconds to reach the server, and of silence mid-download, before giving up


def hellaswag_file(data_dir):
    """The validation set under the data root, downloaded the first time. The download goes to a .tmp
    that is renamed only when whole, so a cut one is never taken for the file."""
    path = os.path.join(data_root(data_dir), "hellaswag", "hellaswag_val.jsonl")
    if os.path.isfile(path):
        return path
    by_hand = f"download {HELLASWAG_URL} by hand to {path}"
    url = urllib.parse.urlsplit(HELLASWAG_URL)
    # urllib's timeout does not bound the DNS lookup, which can hang offline; can_reach does
    if not can_reach(url.hostname, url.port or (443 if url.scheme == "https" else 80), DOWNLOAD_TIMEOUT):
        fail(f"cannot reach {url.hostname} to download HellaSwag: {by_hand}")
    print(f"downloading {HELLASWAG_URL} to {path}", file=sys.stderr)
    tmp = path + ".tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with urllib.request.urlopen(HELLASWAG_URL, timeout=DOWNLOAD_TIMEOUT) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
            size, expected = f.tell(), response.headers.get("Content-Length")
        if expected is not None and size != int(expected):  # http.client ends a cut body as if it were whole
            raise ValueError(f"cut off after {size:,} of {int(expected):,} bytes")
        os.replace(tmp, path)
    except (OSError, http.client.HTTPException, ValueError) as e:  # URLError and timeouts are OSErrors
        fail(f"cannot download HellaSwag ({first_line(e)}): {by_hand}")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_hellaswag(path, limit=None):
    """[(context, 4 endings, label)] of the first `limit` examples (all by default)."""
    examples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if len(examples) == limit:
                break
            try:
                example = json.loads(line)
                context, endings, label = example["ctx"], example["endings"], int(example["label"])
                if not (isinstance(context, str) and len(endings) == 4 and all(isinstance(e, str) and e.strip()
                                                                                for e in endings)
                        and 0 <= label < 4):
                    raise ValueError
            except (ValueError, TypeError, KeyError):
                fail(f"{path}, line {number}: not a HellaSwag example (ctx, 4 endings, a label 0-3); delete the "
                     "file to download it again")
            examples.append((context, endings, label))
    return examples


@torch.no_grad()
def score_hellaswag(model, examples, enc, device, dtype, mode, window):
    """(correct by summed loss, correct by mean loss, contexts cut to fit block_size).

    The 4 candidates of an example run as one batch, padded on the right: causal attention keeps the
    padding out of every real position. Only the ending's tokens are scored, so the output layer runs
    on their positions alone (most of a small model's work). A context that does not fit with the
    longest ending loses its first tokens, the same ones for all 4 candidates."""
    model.eval()
    T = model.config.block_size
    # Forward without targets gives the last position's logits only; the output layer's input at every
    # position is caught here, for the ending's positions.
    final_hidden = []
    hook = model.transformer.ln_f.register_forward_hook(lambda module, inputs, output: final_hidden.append(output))
    correct_sum = correct_mean = cut = 0
    try:
        for number, (context, endings, label) in enumerate(examples, 1):
            context = enc.encode(context, disallowed_special=())
            endings = [enc.encode(" " + ending, disallowed_special=()) for ending in endings]
            room = T + 1 - max(map(len, endings))  # the model reads T tokens; the last is only a target
            if room < 1:
                fail(f"HellaSwag example {number} has an ending of {T + 1 - room} tokens: it does not fit this "
                     f"model's block_size of {T} after a context")
            cut += len(context) > room
            context = context[-room:]
            length = len(context) + max(map(len, endings)) - 1
            x = torch.zeros(4, length, dtype=torch.long)
            y = torch.full((4, length), -1)  # the next token where it is an ending's, else -1
            for i, ending in enumerate(endings):
                row = torch.tensor(context + ending)
                x[i, :len(row) - 1] = row[:-1]
                y[i, len(context) - 1:len(row) - 1] = row[len(context):]
            x, y = x.to(device), y.to(device)
            scored = y >= 0
            attention = None if mode == "dense" else model.hsa_pattern(length, device, window, mode)
            with autocast_for(device, dtype):
                model(x, attention=attention)
                logits = model.lm_head(final_hidden.pop()[scored])
            losses = F.cross_entropy(logits.float(), y[scored], reduction="none")
            candidate = torch.arange(4, device=device).unsqueeze(1).expand_as(y)[scored]
            summed = torch.zeros(4, device=device).index_add_(0, candidate, losses)
            correct_sum += int(summed.argmin()) == label
            correct_mean += int((summed / scored.sum(dim=1)).argmin()) == label
    finally:
        hook.remove()
    return correct_sum, correct_mean, cut


def cmd_hellaswag(args):
    if (args.init_from == "resume") == (args.ckpt is None):
        fail("hellaswag scores one model: give --ckpt=PATH (a train.py checkpoint) or --init_from=gpt2")
    if args.limit is not None and args.limit < 1:
        fail(f"--limit={args.limit} must be at least 1")
    device = pick_device(args.device)
    if args.init_from == "resume":
        name, (model, checkpoint) = args.ckpt, open_checkpoint(args.ckpt, device)
    else:
        name, (model, checkpoint) = args.init_from, load_gpt2(args.init_from, device)
    try:
        enc = get_gpt2_encoding()
    except RuntimeError as e:
        fail(first_line(e))
    if model.config.vocab_size < enc.n_vocab:
        fail(f"{name} has a vocabulary of {model.config.vocab_size} ids, fewer than GPT-2's {enc.n_vocab}: "
             "HellaSwag is tokenised with GPT-2's BPE")
    examples = read_hellaswag(hellaswag_file(args.data_dir), args.limit)
    keep_freed_memory()  # every example allocates its own logits: on the CPU, reuse the memory of the last
    phase, (trained_mode, trained_window, _, _) = trained_state(model, checkpoint, device)
    if device != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = True  # as in training
        torch.backends.cudnn.allow_tf32 = True
    step = "" if checkpoint["iter_num"] is None else f", step {checkpoint['iter_num']} ({phase})"
    results = []
    for mode, window in attentions_wanted(model, trained_mode, trained_window, args.attention):
        correct_sum, correct_mean, cut = score_hellaswag(model, examples, enc, device, args.dtype, mode, window)
        n = len(examples)
        results.append({"model": name, "step": checkpoint["iter_num"], "phase": phase, "attention": mode,
                        "window": window, "dtype": args.dtype, "examples": n, "acc": correct_sum / n,
                        "acc_norm": correct_mean / n, "correct": correct_sum, "correct_norm": correct_mean,
                        "contexts_cut": cut})
        note = f", {cut} contexts cut to block_size {model.config.block_size}" if cut else ""
        print(f"hellaswag acc_norm {correct_mean / n:.4f}, acc {correct_sum / n:.4f} over {n} examples (zero-shot"
              f"{note}) | {name}{step}, {attention_label(mode, window)} attention, {args.dtype}")
    if args.json:
        write_json(args.json, results)


def add_run_options(p, attention, data_use, dtype):
    """The options of the commands that run the model, with their defaults."""
    p.add_argument("--attention", default=attention, choices=("auto", "both", "hsa") + ATTENTION_MODES,
                   help=f"auto: as train.py at that step; hsa: the run's hsa_mode; both: dense and hsa; or a "
                        f"pattern by name (default: {attention})")
    p.add_argument("--data_dir", default="", help=f"the datasets' folder, as train.py's: {data_use} (default: "
                                                  "$MST_DATA_DIR, else data/ next to evaluate.py)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", default=dtype, choices=("auto", "float32", "bfloat16"),
                   help=f"auto: bf16 autocast on CUDA, fp32 on the CPU, as train.py; float32 runs TF32 matmuls "
                        f"on CUDA (default: {dtype})")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")


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
    add_run_options(p, "auto", "reads DATA_DIR/<the run's dataset>/", "auto")
    p = commands.add_parser("report", help="per-layer density, topology changes, parameter and FLOP shares")
    p.add_argument("--ckpt", required=True, help="a train.py checkpoint")
    p.add_argument("--previous", default=None, help="an earlier checkpoint of the same run: count changed positions")
    p.add_argument("--json", default=None, help="also write the report to this JSON file")
    p = commands.add_parser("hellaswag", help="zero-shot HellaSwag accuracy (acc, acc_norm) on its validation set")
    p.add_argument("--ckpt", default=None, help="a train.py checkpoint")
    p.add_argument("--init_from", default="resume", choices=("resume",) + GPT2_MODELS,
                   help="'resume': the --ckpt checkpoint (default); gpt2*: OpenAI's weights via transformers")
    p.add_argument("--limit", type=int, default=None, help="score only the first LIMIT examples")
    add_run_options(p, "dense", "keeps the examples in DATA_DIR/hellaswag/", "float32")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):  # else argparse blames its value
        fail(f"unknown option {argv[0]}: the first argument is the command, loss, report or hellaswag (see --help)")
    args = parser.parse_args(argv)
    if args.json:
        check_writable(args.json)
    {"loss": cmd_loss, "report": cmd_report, "hellaswag": cmd_hellaswag}[args.command](args)


if __name__ == "__main__":
    main()
