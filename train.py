"""
Pretrain GPT-2 with Mixed Sparsity Training. One GPU, the CPU, or many GPUs through torchrun:

    python train.py config/mst_tiny.py
    python train.py config/mst_gpt2.py --max_iters=20 --update_interval=2    # a smoke run of any config
    torchrun --standalone --nproc_per_node=8 train.py config/mst_gpt2.py
    python train.py --init_from=resume --out_dir=out/mst_tiny                # goes on with the run's own settings
    python train.py --help                                                   # every setting, its default and meaning

The defaults below are GPT-2 124M on OpenWebText with MST; README, "Does MST deliver?", says what
the docmix study found them worth. Config files and --key=value overrides change them;
configurator.py rejects unknown keys and wrong types.
"""

import dataclasses
import functools
import json
import math
import os
import signal
import sys
import time
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from configurator import ConfigError, load_config, settings_help
from model import GPT, GPTConfig
from runtime import (attention_density_at, autocast_for, check_tokens, data_root, draw_batches, estimate_loss,
                     fail, first_line, gpu_peak_flops, has_fp8, is_checkpoint_name, keep_freed_memory, pick_device,
                     prepare_command, read_batch, read_checkpoint, save_checkpoint, training_attention)
from sparse import (MixedSparsity, SparsitySchedule, optimizer_step, peak_sparsity_for, planned_flops_per_token,
                    training_flops_per_token)

# Until the training loop takes over (on_stop_signal below) there is nothing to save: Ctrl-C ends the
# run at once, without a traceback.
signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))

# -----------------------------------------------------------------------------
# I/O
out_dir = "out"
eval_interval = 2000
eval_iters = 200  # batches per split; the same batches at every evaluation
log_interval = 10
always_save_checkpoint = True  # save at every evaluation, else only when val loss improves
keep_best_checkpoint = False  # also keep best.pt, the checkpoint with the lowest val loss
keep_checkpoints = ()  # steps whose checkpoint is also kept, as ckpt_<step>.pt
init_from = "scratch"  # 'scratch' or 'resume' (from out_dir/ckpt.pt, with the run's own settings)
overwrite = False  # let a fresh run replace the run in out_dir (its checkpoints and metrics.jsonl)
allow_changes_on_resume = False  # let a resumed run change settings other than I/O and system ones
seed = 1337
# data
dataset = "openwebtext"  # reads <data_dir>/<dataset>/train.bin and val.bin, as prepare.py writes them
data_dir = ""  # the datasets' folder; '': $MST_DATA_DIR, else data/ next to train.py (from any working directory)
gradient_accumulation_steps = 40  # micro-steps per optimizer step, summed over all ranks
batch_size = 12  # sequences per micro-step; 12 * 40 = 480 sequences per step
block_size = 1024
# model
n_layer = 12
n_head = 12
n_embd = 768
dropout = 0.0
bias = False
vocab_size = 50304
fp8_head = False  # train the output layer and its loss in FP8 (Ada, Hopper): 1.09x faster on an H200; model.py
# AdamW and the learning rate: a linear warm-up to learning_rate, then lr_schedule
learning_rate = 6e-4
max_iters = 600000
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0  # 0 disables clipping
lr_schedule = "wsd"  # 'wsd': held until lr_decay_start, then a cosine to min_lr; 'cosine' (nanoGPT's); 'constant'
warmup_iters = 2000
lr_decay_start = 0.9  # wsd: a fraction of max_iters; = ultra_end, so the anneal falls on the regrowing model
lr_decay_iters = 0  # 0: max_iters; min_lr from here on
min_lr = 6e-5
# Mixed Sparsity Training; phase boundaries are fractions of max_iters (sparse.py)
mst = True  # False trains the dense baseline with the same loop
sparsify_start = 0.0  # dense (initial_sparsity) until here, then the sparsity ramps up
sparsify_end = 0.03  # ... to peak_sparsity, held until ultra_end
ultra_end = 0.9
restore_end = 1.0  # back at final_sparsity here
initial_sparsity = 0.0
peak_sparsity = 0.8
flops_budget = 0.0  # > 0: solve peak_sparsity so the run counts this many FLOPs, or (if < 1) this share of dense
final_sparsity = 0.0
restoration_shape = "early"  # 'early' or 'late', see sparse.py
sparsity_distribution = "erdos_renyi"  # or 'uniform'
embedding_max_sparsity = 1.0  # the tied embedding / lm_head: 0 keeps it dense, else its sparsity's cap
update_interval = 100  # ΔT: steps between topology updates
drop_fraction = 0.0  # share of live weights swapped at an update (0: the topology moves only with the target)
drop_schedule = "global"  # cosine annealing over the whole sparse run ('global') or per phase
grow_mode = "mixed"  # 'gradient', 'random' or 'mixed'
grow_gradient_share = 0.75  # mixed growing: 3 by gradient to 1 at random
# Hybrid Sparse Attention
hsa_mode = "blocksparse"  # the sparse pattern: 'local', 'strided', 'fixed' or 'blocksparse'
hsa_phases = ("ultra",)  # phases that use it; () keeps attention dense throughout
hsa_window_follows_sparsity = False  # True: the window widens toward dense as the target sparsity falls
attn_window = 256
attn_stride = 512
attn_block = 128
# system
backend = "nccl"  # DDP backend on GPUs ('gloo' is used on the CPU)
device = "cuda" if torch.cuda.is_available() else "cpu"  # 'cpu', 'cuda' or 'cuda:N'; cuda where torch sees one
dtype = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"  # GPUs: bf16 autocast
compile = torch.cuda.is_available()  # torch.compile the model (on CUDA)
# -----------------------------------------------------------------------------
config_keys = [k for k, v in globals().items()
               if not k.startswith("_") and isinstance(v, (int, float, bool, str, tuple))]
# A resumed run takes its settings from its checkpoint; these come from this command instead ...
NOT_RESUMED = {"init_from", "out_dir", "overwrite", "allow_changes_on_resume", "backend", "device", "dtype",
               "compile"}
# ... and these may differ from the checkpoint's without allow_changes_on_resume.
CHANGEABLE_ON_RESUME = NOT_RESUMED | {"eval_interval", "eval_iters", "log_interval", "always_save_checkpoint",
                                      "keep_best_checkpoint", "keep_checkpoints", "fp8_head", "data_dir"}

defaults = {k: globals()[k] for k in config_keys}


def lr_schedule_of_old_run(saved):
    """Checkpoints from before lr_schedule existed held their rate's shape in three keys: the same
    shape in today's terms (nothing for newer checkpoints)."""
    if "lr_schedule" in saved:
        return {}
    if saved.get("restore_lr", 0.0) > 0:
        fail("this checkpoint re-warms the rate at ultra_end (restore_lr), which this version of train.py no "
             "longer has: resume it with the version that made it")
    if not saved.get("decay_lr", True):
        return {"lr_schedule": "constant"}
    if saved.get("hold_lr_until_restoration", False) and saved.get("mst", True):
        return {"lr_schedule": "wsd", "lr_decay_start": saved["ultra_end"]}
    return {"lr_schedule": "cosine"}


if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
    print(settings_help(__file__, defaults))
    sys.exit(0)
try:
    overrides = load_config(defaults, sys.argv[1:])
except ConfigError as e:
    fail(e)
checkpoint = None
if overrides.get("init_from", init_from) == "resume":
    ckpt_path = os.path.join(overrides.get("out_dir", out_dir), "ckpt.pt")
    if not os.path.exists(ckpt_path):
        fail(f"--init_from=resume but {ckpt_path} does not exist")
    checkpoint = read_checkpoint(ckpt_path)
    saved = {**lr_schedule_of_old_run(checkpoint["config"]),
             **{k: v for k, v in checkpoint["config"].items() if k in defaults and k not in NOT_RESUMED}}
    changed = [k for k, v in overrides.items() if k in saved and v != saved[k] and k not in CHANGEABLE_ON_RESUME]
    if changed and not overrides.get("allow_changes_on_resume", False):
        k = changed[0]
        fail(f"{k}={overrides[k]!r} differs from the checkpoint's {k}={saved[k]!r}: a resumed run keeps its "
             "settings (add --allow_changes_on_resume=True to change them anyway)")
    globals().update(saved)
globals().update(overrides)
config = {k: globals()[k] for k in config_keys}

# -- validation: every setting that can be wrong fails here, in one line, before any work
try:
    model_config = GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                             n_embd=n_embd, dropout=dropout, bias=bias, hsa_mode=hsa_mode, attn_window=attn_window,
                             attn_stride=attn_stride, attn_block=attn_block, fp8_head=fp8_head)
    schedule = SparsitySchedule(max_iters=max_iters, sparsify_start=sparsify_start, sparsify_end=sparsify_end,
                                ultra_end=ultra_end, restore_end=restore_end, initial_sparsity=initial_sparsity,
                                peak_sparsity=peak_sparsity, final_sparsity=final_sparsity,
                                restoration_shape=restoration_shape, update_interval=update_interval,
                                drop_fraction=drop_fraction, drop_schedule=drop_schedule, hsa_phases=hsa_phases,
                                hsa_window_follows_sparsity=hsa_window_follows_sparsity)
    if init_from not in ("scratch", "resume"):
        raise ValueError(f"init_from={init_from!r} must be 'scratch' or 'resume'")
    if min(batch_size, gradient_accumulation_steps, eval_iters, log_interval, eval_interval) <= 0:
        raise ValueError("batch_size, gradient_accumulation_steps, eval_iters, log_interval and eval_interval "
                         "must be positive")
    if min(warmup_iters, lr_decay_iters) < 0 or not 0.0 <= lr_decay_start <= 1.0:
        raise ValueError("warmup_iters and lr_decay_iters must not be negative, and lr_decay_start is a fraction "
                         "of max_iters in [0, 1]")
    if lr_schedule not in ("wsd", "cosine", "constant"):
        raise ValueError(f"lr_schedule={lr_schedule!r} must be 'wsd', 'cosine' or 'constant'")
    decay_start = warmup_iters if lr_schedule == "cosine" else max(warmup_iters, round(lr_decay_start * max_iters))
    lr_decay_end = lr_decay_iters or max_iters
    if lr_schedule == "wsd" and lr_decay_end <= round(lr_decay_start * max_iters):
        raise ValueError(f"the rate would never decay: it is held until step {round(lr_decay_start * max_iters)} "
                         f"(lr_decay_start), where the decay should already be over (step {lr_decay_end}, "
                         "lr_decay_iters)")
except ValueError as e:
    fail(e)
pick_device(device)  # --device=cuda without CUDA, or a device that is neither: one line

# -- out_dir: a fresh run never replaces another by accident, and a finished run does not run again
if init_from == "scratch" and not overwrite and os.path.isdir(out_dir):
    old_checkpoints = [name for name in sorted(os.listdir(out_dir)) if is_checkpoint_name(name)]
    if old_checkpoints:
        how = (f"resume it with `python train.py --init_from=resume --out_dir={out_dir}`, "
               if "ckpt.pt" in old_checkpoints else "")
        fail(f"{out_dir} already holds a run ({', '.join(old_checkpoints)}): {how}pick another --out_dir, or "
             "replace it with --overwrite=True")
if checkpoint is not None and checkpoint["iter_num"] >= max_iters:
    if checkpoint["iter_num"] > max_iters:
        fail(f"{ckpt_path} is at step {checkpoint['iter_num']}, past max_iters={max_iters}")
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"{ckpt_path} is at step {max_iters} of {max_iters}: the run is finished, nothing to do")
    sys.exit(0)
# From here on data_dir is this dataset's folder; the setting, as given, stays in `config`.
data_dir = os.path.join(data_root(data_dir), dataset)
for split in ("train", "val"):
    problem = check_tokens(os.path.join(data_dir, f"{split}.bin"), block_size,
                           f"make it with `{prepare_command(dataset, config['data_dir'])}` (see prepare.py)")
    if problem:
        fail(problem)

# -- processes and devices
ddp = int(os.environ.get("RANK", -1)) != -1
if ddp:
    rank, local_rank, world_size = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    if gradient_accumulation_steps % world_size:
        fail(f"gradient_accumulation_steps={gradient_accumulation_steps} must be divisible by "
             f"the number of processes, {world_size}")
    if device.startswith("cuda"):
        device = pick_device(f"cuda:{local_rank}")  # one GPU per process of this node
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend if device.startswith("cuda") else "gloo")
else:
    rank, local_rank, world_size = 0, 0, 1
master = rank == 0
micro_steps = gradient_accumulation_steps // world_size  # this rank's share of the accumulation
tokens_per_iter = gradient_accumulation_steps * batch_size * block_size
device_type = "cuda" if device.startswith("cuda") else "cpu"
if device_type == "cpu":
    dtype = "float32"  # bf16 autocast on the CPU is slow and changes numerics; fp32 is the reference
    compile = False
    config.update(dtype=dtype, compile=compile)  # the checkpoint records what ran
    keep_freed_memory()
if fp8_head and not has_fp8(device):
    fail("fp8_head=True needs FP8 matrix multiplies, which this GPU or torch lacks (GPUs have them from Ada and "
         "Hopper on); set fp8_head=False")
autocast = autocast_for(device, dtype)
torch.manual_seed(seed)  # same on every rank: identical initial weights
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True

# -- data: one generator, seeded alike on every rank, draws the whole global batch; each rank
# takes its slice, so a run on N processes sees exactly the batches of a run on one.
data_generator = torch.Generator().manual_seed(seed)


def global_batch():
    """This rank's micro-batches of the next optimizer step (only these are read and moved)."""
    data, starts = draw_batches(os.path.join(data_dir, "train.bin"), gradient_accumulation_steps, batch_size,
                                block_size, data_generator)
    batches = []
    for ix in starts[rank * micro_steps:(rank + 1) * micro_steps]:
        x, y = read_batch(data, ix, block_size)
        if device_type == "cuda":  # pinned, so the copy overlaps the GPU's work
            x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        batches.append((x, y))
    return batches


# -- model, optimizer, sparsity
iter_num, best_val_loss, flops, flops_dense = 0, float("inf"), 0.0, 0.0
changed_on_resume = {}  # setting: [the checkpoint's value, this run's]
model = raw_model = GPT(model_config).to(device)  # model becomes the compiled/DDP wrapper below
decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices and embeddings decay
no_decay = [p for p in model.parameters() if p.dim() < 2]  # biases and norm gains do not
optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=learning_rate, betas=(beta1, beta2), fused=device_type == "cuda")
sparsity = None
if mst:
    try:
        sparsity = MixedSparsity(model, schedule, distribution=sparsity_distribution, grow_mode=grow_mode,
                                 grow_gradient_share=grow_gradient_share,
                                 embedding_max_sparsity=embedding_max_sparsity, seed=seed)
    except ValueError as e:
        fail(e)


def planned_flops(schedule):
    """The FLOPs the run will count: the accounting below, done in advance."""
    attention = functools.partial(attention_density_at, raw_model, schedule)
    return tokens_per_iter * planned_flops_per_token(schedule, sparsity, raw_model, block_size, attention,
                                                     grow_mode != "random")


dense_run_flops = max_iters * tokens_per_iter * training_flops_per_token(raw_model, block_size)
if sparsity is not None and flops_budget > 0:
    try:
        peak_sparsity = peak_sparsity_for(lambda p: planned_flops(dataclasses.replace(schedule, peak_sparsity=p)),
                                          flops_budget * dense_run_flops if flops_budget < 1 else flops_budget)
    except ValueError as e:
        fail(f"flops_budget={flops_budget:g}: {e}")
    schedule = sparsity.schedule = dataclasses.replace(schedule, peak_sparsity=peak_sparsity)
    config["peak_sparsity"] = peak_sparsity  # the checkpoint and the metrics header record what ran
if checkpoint is not None:
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if sparsity is not None:
            sparsity.load_state_dict(checkpoint["sparsity"])
    except (KeyError, RuntimeError, ValueError) as e:  # settings changed on purpose that the state cannot follow
        fail(f"cannot resume from {ckpt_path}: {type(e).__name__}: {first_line(e)}")
    data_generator.set_state(checkpoint["data_generator"])
    torch.set_rng_state(checkpoint["torch_rng"])
    iter_num, best_val_loss = checkpoint["iter_num"], checkpoint["best_val_loss"]
    flops, flops_dense = checkpoint["flops"], checkpoint["flops_dense"]
    # allow_changes_on_resume: the run goes on under the new settings from this step, where the
    # schedule may stand elsewhere (phase boundaries are fractions of max_iters); say so
    changed_on_resume = {k: [checkpoint["config"][k], v] for k, v in config.items() if k not in CHANGEABLE_ON_RESUME
                         and k in checkpoint["config"] and checkpoint["config"][k] != v}
    checkpoint = None
schedule = schedule if sparsity is not None else None  # from here on, None means a dense run

if compile:
    model = torch.compile(model)
if ddp:
    model = DDP(model, device_ids=[local_rank] if device_type == "cuda" else None)
if master:  # the inputs are known to be good: only now does the run write anything
    os.makedirs(out_dir, exist_ok=True)
    if init_from == "scratch" and overwrite:  # the old run goes as a whole, so the files describe one run
        for name in os.listdir(out_dir):
            if is_checkpoint_name(name) or name == "metrics.jsonl":
                os.remove(os.path.join(out_dir, name))
    print(f"model: {raw_model.num_params() / 1e6:.2f}M parameters (without position embeddings)")
    print(f"tokens per step: {tokens_per_iter:,} ({world_size} process(es) x {micro_steps} micro-steps x "
          f"{batch_size} sequences x {block_size} tokens)")
    if changed_on_resume:
        print(f"resuming at step {iter_num}, in the {schedule.phase(iter_num) if schedule else 'dense'} phase, with "
              + ", ".join(f"{k}={new!r} (was {old!r})" for k, (old, new) in changed_on_resume.items()))
    if sparsity is not None:
        plan = planned_flops(schedule)
        print(f"planned training FLOPs: {plan:.4g} = {plan / dense_run_flops:.3f}x the dense model's, at peak "
              f"sparsity {peak_sparsity:g}")

# -- FLOP accounting: this run's count from the densities, and the dense model's for the same step
step_flops_cache = {}  # the count changes only when the densities or the attention do


def step_flops(attention_density, dense_weight_gradient):
    """(counted, dense-equivalent) training FLOPs of one optimizer step."""
    key = (attention_density, dense_weight_gradient, tuple(g.live for g in sparsity.groups) if sparsity else ())
    if key not in step_flops_cache:
        densities = sparsity.layer_densities() if sparsity is not None else {}
        step_flops_cache[key] = tuple(tokens_per_iter * training_flops_per_token(raw_model, block_size, d, a, g)
                                      for d, a, g in ((densities, attention_density, dense_weight_gradient),
                                                      ({}, 1.0, False)))
    return step_flops_cache[key]


gpu_peak = gpu_peak_flops(device) if dtype == "bfloat16" else None  # MFU only against the bf16 peak


def lr_at(it):
    """Linear warm-up, then the rate holds until decay_start ('cosine': the warm-up's end) and falls
    on a cosine to min_lr at lr_decay_end."""
    if lr_schedule == "constant":
        return learning_rate
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    progress = min(1.0, max(0, it - decay_start) / max(1, lr_decay_end - decay_start))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (learning_rate - min_lr)


def checkpoint_state():
    return {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
            "sparsity": sparsity.state_dict() if sparsity is not None else None,
            "model_config": vars(model_config).copy(),
            "schedule": dataclasses.asdict(schedule) if schedule is not None else None,
            "config": config, "iter_num": iter_num, "best_val_loss": best_val_loss, "data_generator": data_state,
            "torch_rng": torch.get_rng_state(), "flops": flops, "flops_dense": flops_dense}


def save(name, note=""):
    save_checkpoint(checkpoint_state(), os.path.join(out_dir, name))
    print(f"saved {os.path.join(out_dir, name)} (step {iter_num}{note})")


def log_metrics(record):
    with open(os.path.join(out_dir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")


def start_metrics(header):
    """Begin this run's part of metrics.jsonl. The file holds each step of a run once: a fresh run
    starts it anew, and a resumed one keeps only the records of the steps before its checkpoint's (a
    killed run logs past its last save) with the headers written before them, then writes the
    rest again, after its own header."""
    path, kept = os.path.join(out_dir, "metrics.jsonl"), []
    if iter_num > 0 and os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a last line cut short by a kill
                    continue
                if record.get("step", record.get("resumed_at", 0)) < iter_num:
                    kept.append(line.rstrip("\n") + "\n")
    with open(path + ".tmp", "w") as f:
        f.writelines(kept)
        f.write(json.dumps(header) + "\n")
    os.replace(path + ".tmp", path)


def check_masks_agree():
    """Masks must be identical on every rank; a checksum all-reduce makes sure of it."""
    fingerprint = sparsity.mask_fingerprint()
    low, high = fingerprint.clone(), fingerprint.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if low.item() != high.item():
        raise RuntimeError(f"masks differ across ranks after the topology update at step {iter_num}")


def clock(seconds):
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


# -- stopping on a signal: Ctrl-C (SIGINT), a preemption (SIGTERM) or a request to stop (SIGUSR1, as
# from SLURM's --signal) lets the current step finish, saves ckpt.pt and exits with 128 + the
# signal's number: 130, 143, 138. A second Ctrl-C exits at once; saves are renames, so the last
# checkpoint is whole either way.
stop_signal = 0  # the first signal received; 0 while none


def on_stop_signal(signum, frame):
    global stop_signal
    if signum == signal.SIGINT and stop_signal == signal.SIGINT:
        # os.write, not print: the signal may have landed in the middle of a print
        os.write(2, f"interrupted again: stopped at once; the last checkpoint in {out_dir} is intact\n".encode())
        if ddp:
            os._exit(130)  # skips the interpreter shutdown that gloo's threads can abort (see the end)
        sys.exit(130)
    if master and not stop_signal:
        os.write(2, f"{signal.Signals(signum).name}: stopping after this step to save a checkpoint "
                    "(Ctrl-C again stops at once)\n".encode())
    stop_signal = stop_signal or signum


for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
    signal.signal(signum, on_stop_signal)
# A signal may reach one rank only, but all must stop after the same step: each step they agree on
# the largest stop_signal. On GPUs over a gloo group of its own, on the CPU, which never waits for
# the GPU's queue.
stop_group = dist.new_group(backend="gloo") if ddp and device_type == "cuda" else None


def agreed_stop_signal():
    if not ddp:
        return stop_signal
    flag = torch.tensor([stop_signal])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=stop_group)
    return flag.item()


# -- training loop
if master:
    start_metrics({"run": config, "params": sum(p.numel() for p in raw_model.parameters()),
                   "tokens_per_iter": tokens_per_iter, "resumed_at": iter_num, "changed": changed_on_resume,
                   "train_tokens": os.path.getsize(os.path.join(data_dir, "train.bin")) // 2})
data_state = data_generator.get_state()  # before the batches of step iter_num: what a resume needs
batches = global_batch()
t_start = t0 = time.time()
first_step, last_logged = iter_num, iter_num - 1
stopped_by = 0  # the signal that stopped the run
# The ETA: the steps left at the rate measured since the clock started, plus the evaluations left at
# the last one's duration. The clock starts a few steps in: the first ones are slow (compilation,
# allocations) and made the estimate several times too long.
ETA_AFTER_STEPS = 5
eta_clock = None  # (time, step, eval_seconds) when the clock started
eval_seconds, last_eval_seconds = 0.0, None  # time in evaluations and their saves: all, and the last one's
last_eval_on_clock = False  # whether the last evaluation ran after the clock started
while True:
    phase = schedule.phase(iter_num) if schedule is not None else "dense"
    attn_mode, attn_window_now, attention, attention_density = training_attention(raw_model, schedule, iter_num,
                                                                                  device)
    attn_label = attn_mode if attn_mode == "dense" or attn_window_now == attn_window else \
        f"{attn_mode}/{attn_window_now}"
    lr = lr_at(iter_num)
    for group in optimizer.param_groups:
        group["lr"] = lr

    t_eval, evaluate = time.time(), iter_num % eval_interval == 0 or iter_num == max_iters
    if evaluate:
        losses = {}
        for split in ("train", "val"):
            losses[split] = estimate_loss(model, os.path.join(data_dir, f"{split}.bin"), block_size, batch_size,
                                          eval_iters, seed + 1, device, dtype, vocab_size, attention, rank,
                                          world_size)
            if not math.isfinite(losses[split]):
                fail(f"{split} loss is {losses[split]} at step {iter_num}; the last checkpoint in {out_dir} is "
                     "untouched")
        if master:
            cost = f", FLOPs {flops / flops_dense:.3f}x" if schedule is not None and flops_dense else ""
            attn_note = f" ({attn_label} attention)" if schedule is not None else ""
            print(f"step {iter_num}/{max_iters}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                  f"{attn_note}{cost}")
            log_metrics({"step": iter_num, "train_loss": losses["train"], "val_loss": losses["val"], "phase": phase,
                         "attn_mode": attn_mode, "attn_window": attn_window_now, "flops": flops,
                         "flops_dense": flops_dense})
            improved = losses["val"] < best_val_loss
            best_val_loss = min(best_val_loss, losses["val"])
            if iter_num > 0 and (always_save_checkpoint or improved):
                save("ckpt.pt")
            if iter_num > 0 and keep_best_checkpoint and improved:
                save("best.pt")
    if master and iter_num in keep_checkpoints:
        save(f"ckpt_{iter_num}.pt", ", kept")
    if evaluate or iter_num in keep_checkpoints:
        spent = time.time() - t_eval
        eval_seconds += spent
        if evaluate:
            last_eval_seconds, last_eval_on_clock = spent, eta_clock is not None
    if iter_num == max_iters:
        break

    # forward and backward over the micro-steps; DDP all-reduces only at the last one
    loss_sum = torch.zeros((), device=device)
    for micro_step, (X, Y) in enumerate(batches):
        sync = micro_step == micro_steps - 1
        with (model.no_sync() if ddp and not sync else nullcontext()), autocast:
            _, loss = model(X, Y, attention)
            loss_sum += loss.detach()
            loss = loss / micro_steps
        loss.backward()
    data_state = data_generator.get_state()
    batches = global_batch()  # drawn now so the host prepares them while the GPU works

    update = sparsity is not None and schedule.is_update_step(iter_num)
    this_step, this_step_dense = step_flops(attention_density, update and grow_mode != "random")
    topology_changes = 0
    if update:  # reads the dense, accumulated (and all-reduced) gradient before it is masked
        topology_changes = sparsity.prune_and_regrow(iter_num, optimizer)
        if ddp:
            check_masks_agree()
    optimizer_step(optimizer, model.parameters(), sparsity, grad_clip)
    flops += this_step
    flops_dense += this_step_dense

    if iter_num % log_interval == 0 or iter_num == max_iters - 1:
        if ddp:
            dist.all_reduce(loss_sum)
        last_loss = loss_sum.item() / gradient_accumulation_steps  # mean over the global batch; syncs
        if not math.isfinite(last_loss):
            fail(f"loss became {last_loss} by step {iter_num} (checked every log_interval steps); "
                 f"the last checkpoint in {out_dir} is untouched")
        t1 = time.time()
        dt = (t1 - t0) / (iter_num - last_logged)  # includes any evaluation in between
        t0, last_logged = t1, iter_num
        eta = None
        if eta_clock is None and iter_num >= first_step + ETA_AFTER_STEPS:
            eta_clock = (t1, iter_num, eval_seconds)
        elif eta_clock is not None:
            step_seconds = (t1 - eta_clock[0] - (eval_seconds - eta_clock[2])) / (iter_num - eta_clock[1])
            evals_left = max_iters // eval_interval - iter_num // eval_interval + (max_iters % eval_interval > 0)
            eval_each = last_eval_seconds
            if not last_eval_on_clock:  # it may have compiled: no longer than its forward passes at the step rate
                forward_passes = step_seconds / micro_steps / 3 * 2 * math.ceil(eval_iters / world_size)
                eval_each = min(eval_each, forward_passes) if eval_each is not None else forward_passes
            eta = step_seconds * (max_iters - 1 - iter_num) + eval_each * evals_left
        if master:
            density = sparsity.density() if sparsity is not None else 1.0
            target = schedule.target_sparsity(iter_num) if schedule is not None else 0.0
            mfu = this_step_dense / dt / (gpu_peak * world_size) if gpu_peak else None  # per GPU
            # Only what applies, so that the line fits 100 characters: no sparsity, attention or
            # FLOPs on a dense run (the evaluation lines carry the FLOPs), no MFU on the CPU.
            fields = [f"iter {iter_num}/{max_iters}: loss {last_loss:.4f}", f"lr {lr:.1e}"]
            if schedule is not None:
                fields.append(f"{phase} {1 - density:.3f} ({target:.3f})")
            if attn_mode != "dense":
                fields.append("hsa" if attn_window_now == attn_window else f"hsa/{attn_window_now}")
            fields.append(f"{dt * 1000:.0f} ms")
            if mfu is not None:
                fields.append(f"mfu {mfu:.1%}")
            if eta is not None:
                fields.append(f"eta {clock(eta)}")
            print(", ".join(fields))
            log_metrics({"step": iter_num, "loss": last_loss, "lr": lr, "phase": phase, "target_sparsity": target,
                         "sparsity": 1 - density, "attn_mode": attn_mode, "attn_window": attn_window_now,
                         "ms_per_step": dt * 1000, "tokens_per_s": tokens_per_iter / dt, "mfu": mfu,
                         "flops": flops, "flops_dense": flops_dense, "flops_ratio": flops / flops_dense,
                         "topology_changes": topology_changes, "elapsed_s": t1 - t_start, "eta_s": eta})
    iter_num += 1
    stopped_by = agreed_stop_signal() if iter_num < max_iters else 0  # in the last step: the run finishes
    if stopped_by:
        break

if master and stopped_by:
    save("ckpt.pt", f", stopped by {signal.Signals(stopped_by).name}")
    launcher = "torchrun ... train.py" if ddp else "python train.py"
    print(f"go on with: {launcher} --init_from=resume --out_dir={out_dir}")
elif master:
    ratio = f" = {flops / flops_dense:.3f}x the dense model's" if sparsity is not None else ""
    print(f"done: val loss {losses['val']:.4f} after {iter_num} steps in {clock(time.time() - t_start)}; "
          f"training FLOPs {flops:.3e}{ratio}")
    ckpt = os.path.join(out_dir, "ckpt.pt")
    print(f"  checkpoint: {ckpt}\n  next: python sample.py --out_dir={out_dir}\n"
          f"        python evaluate.py loss --ckpt={ckpt} --attention=both\n"
          f"        python plot.py curves {out_dir} --out={os.path.join(out_dir, 'plots')}")
if ddp:
    dist.barrier()  # rank 0 may still be saving; gloo aborts a process that leaves while a peer works
    dist.destroy_process_group()
    # DDP keeps the group's gloo threads alive past this point. If one of them frees a tensor that
    # Python owns while the interpreter shuts down, the process aborts ("terminate called without an
    # active exception", a few two-process CPU runs in a hundred). Everything is written: leave
    # without that shutdown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + stopped_by if stopped_by else 0)
if stopped_by:
    sys.exit(128 + stopped_by)
