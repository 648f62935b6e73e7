"""
Pretrain GPT-2 with Mixed Sparsity Training. One GPU, the CPU, or many GPUs through torchrun:

    python train.py config/mst_tiny.py
    python train.py config/mst_gpt2.py --batch_size=8
    torchrun --standalone --nproc_per_node=8 train.py config/mst_gpt2.py

The defaults below are the paper's GPT-2 124M setup on OpenWebText; config files and
--key=value overrides change them (configurator.py rejects unknown keys and wrong types).
"""

import json
import math
import os
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from configurator import ConfigError, load_config
from model import GPT, GPTConfig, check_attention_config, pattern_density, pattern_mask_mod, peak_bf16_flops
from prepare import read_batch
from sparse import PHASES, MixedSparsity, SparsitySchedule, training_flops_per_token

# -----------------------------------------------------------------------------
# I/O
out_dir = "out"
eval_interval = 2000
eval_iters = 200  # batches per split; the same batches at every evaluation
log_interval = 10
always_save_checkpoint = True  # save at every evaluation, else only when val loss improves
keep_best_checkpoint = False  # also keep best.pt, the checkpoint with the lowest val loss
init_from = "scratch"  # 'scratch' or 'resume' (from out_dir/ckpt.pt)
seed = 1337
# data
dataset = "openwebtext"  # reads data/<dataset>/train.bin and val.bin
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
# AdamW and the learning-rate schedule (linear warm-up, then cosine to min_lr)
learning_rate = 6e-4
max_iters = 600000
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0  # 0 disables clipping
decay_lr = True
warmup_iters = 2000
lr_decay_iters = 600000
min_lr = 6e-5
# Mixed Sparsity Training
mst = True  # False trains the dense baseline with the same loop
sparsify_end = 60000  # end of warm-up: the target has ramped from initial to peak sparsity
ultra_end = 480000  # end of ultra-sparsification: the peak is held until here
restore_end = 600000  # end of restoration: the target is back at final_sparsity
initial_sparsity = 0.0
peak_sparsity = 0.9
final_sparsity = 0.0
restoration_shape = "early"  # 'early' or 'late', see sparse.py
sparsity_distribution = "erdos_renyi"  # or 'uniform'
sparse_embedding = False  # also sparsify the tied token embedding / lm_head, as the authors did
update_interval = 100  # ΔT: steps between topology updates
drop_fraction = 0.3  # share of live weights swapped at an update, before annealing
drop_schedule = "global"  # cosine annealing over the whole sparse run ('global') or per phase
grow_mode = "mixed"  # 'gradient', 'random' or 'mixed'
grow_gradient_share = 0.75  # mixed growing: 3 by gradient to 1 at random
# Hybrid Sparse Attention
hsa_mode = "blocksparse"  # the sparse pattern: 'local', 'strided', 'fixed' or 'blocksparse'
hsa_phases = ("ultra",)  # phases that use it; () keeps attention dense throughout
attn_window = 256
attn_stride = 512
attn_block = 128
# system
backend = "nccl"  # DDP backend on GPUs ('gloo' is used on the CPU)
device = "cuda" if torch.cuda.is_available() else "cpu"
dtype = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
compile = torch.cuda.is_available()  # torch.compile the model (on CUDA)
# -----------------------------------------------------------------------------
config_keys = [k for k, v in globals().items()
               if not k.startswith("_") and isinstance(v, (int, float, bool, str, tuple))]


def fail(message):
    """Bad input ends the run with one line, not a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


try:
    globals().update(load_config({k: globals()[k] for k in config_keys}, sys.argv[1:]))
except ConfigError as e:
    fail(e)
config = {k: globals()[k] for k in config_keys}

# -- validation: everything that can be wrong about the settings fails here, before any work
model_config = GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                         n_embd=n_embd, dropout=dropout, bias=bias, attn_window=attn_window,
                         attn_stride=attn_stride, attn_block=attn_block)
schedule = SparsitySchedule(max_iters=max_iters, sparsify_end=sparsify_end, ultra_end=ultra_end,
                            restore_end=restore_end, initial_sparsity=initial_sparsity,
                            peak_sparsity=peak_sparsity, final_sparsity=final_sparsity,
                            update_interval=update_interval, drop_fraction=drop_fraction,
                            drop_schedule=drop_schedule, restoration_shape=restoration_shape)
try:
    check_attention_config(model_config)
    pattern_mask_mod(hsa_mode, 1, 1, 1)
    if mst:
        schedule.validate()
    bad_phases = set(hsa_phases) - set(PHASES)
    if bad_phases:
        raise ValueError(f"hsa_phases has unknown phases {sorted(bad_phases)}")
    if n_embd % n_head:
        raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
    if init_from not in ("scratch", "resume"):
        raise ValueError(f"init_from={init_from!r} must be 'scratch' or 'resume'")
    if min(batch_size, block_size, gradient_accumulation_steps, max_iters, eval_iters, log_interval,
           eval_interval) <= 0:
        raise ValueError("batch_size, block_size, gradient_accumulation_steps, max_iters, eval_iters, "
                         "log_interval and eval_interval must be positive")
except ValueError as e:
    fail(e)

data_dir = os.path.join("data", dataset)
for split in ("train", "val"):
    path = os.path.join(data_dir, f"{split}.bin")
    if not os.path.exists(path):
        how = (f"python prepare.py {dataset}" if dataset in ("shakespeare", "openwebtext") else
               "python prepare.py tokens --train ... --val ... --name " + dataset)
        fail(f"{path} not found: make it with `{how}` (see README, Data)")
    if os.path.getsize(path) // 2 <= block_size:
        fail(f"{path} holds {os.path.getsize(path) // 2} tokens, fewer than block_size + 1 = {block_size + 1}")

# -- processes and devices
ddp = int(os.environ.get("RANK", -1)) != -1
if ddp:
    rank, local_rank, world_size = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend if device.startswith("cuda") else "gloo")
    if gradient_accumulation_steps % world_size:
        fail(f"gradient_accumulation_steps={gradient_accumulation_steps} must be divisible by "
             f"the number of processes, {world_size}")
else:
    rank, local_rank, world_size = 0, 0, 1
master = rank == 0
micro_steps = gradient_accumulation_steps // world_size  # this rank's share of the accumulation
tokens_per_iter = gradient_accumulation_steps * batch_size * block_size
device_type = "cuda" if device.startswith("cuda") else "cpu"
if device_type == "cpu":
    dtype = "float32"  # bf16 autocast on the CPU is slow and changes numerics; fp32 is the reference
    compile = False
ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
autocast = nullcontext() if device_type == "cpu" else torch.autocast(device_type, dtype=ptdtype)
torch.manual_seed(seed)  # same on every rank: identical initial weights
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
if master:
    os.makedirs(out_dir, exist_ok=True)
    print(f"tokens per iteration: {tokens_per_iter:,} ({world_size} process(es) x {micro_steps} micro-steps "
          f"x {batch_size} x {block_size})")


# -- data: one generator, seeded alike on every rank, draws the whole global batch; each rank
# takes its slice, so a run on N processes sees exactly the batches of a run on one.
data_generator = torch.Generator().manual_seed(seed)


def batch_starts(split, generator, n):
    """Draw n batches' start offsets; every rank draws all of them, to keep the generators in step.
    The memmap is re-opened each time: a long-lived one grows resident memory without bound."""
    data = np.memmap(os.path.join(data_dir, f"{split}.bin"), dtype=np.uint16, mode="r")
    return data, [torch.randint(len(data) - block_size, (batch_size,), generator=generator) for _ in range(n)]


def load_batch(data, ix):
    x, y = map(torch.from_numpy, read_batch(data, ix.tolist(), block_size))
    if device_type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def global_batch():
    """This rank's micro-batches of the next optimizer step (only these are read and moved)."""
    data, starts = batch_starts("train", data_generator, gradient_accumulation_steps)
    return [load_batch(data, ix) for ix in starts[rank * micro_steps:(rank + 1) * micro_steps]]


# -- model, optimizer, sparsity
iter_num, best_val_loss, flops_mst, flops_dense = 0, float("inf"), 0.0, 0.0
checkpoint = None
if init_from == "resume":
    ckpt_path = os.path.join(out_dir, "ckpt.pt")
    if not os.path.exists(ckpt_path):
        fail(f"--init_from=resume but {ckpt_path} does not exist")
    checkpoint = torch.load(ckpt_path, map_location=device, weights_only=True)  # runs no code
    saved = checkpoint["model_config"]
    if block_size != saved["block_size"]:
        fail(f"block_size={block_size} differs from the checkpoint's {saved['block_size']}; resume with "
             f"--block_size={saved['block_size']}")
    for key in ("n_layer", "n_head", "n_embd", "vocab_size", "bias"):
        if saved[key] != getattr(model_config, key):
            fail(f"checkpoint has {key}={saved[key]} but the config asks for {getattr(model_config, key)}")
model = GPT(model_config).to(device)
if checkpoint is not None:
    model.load_state_dict(checkpoint["model"])
if master:
    print(f"model: {model.num_params() / 1e6:.2f}M parameters (without position embeddings)")

decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices and embeddings decay
no_decay = [p for p in model.parameters() if p.dim() < 2]  # biases and norm gains do not
optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=learning_rate, betas=(beta1, beta2), fused=device_type == "cuda")

sparsity = None
if mst:
    try:
        sparsity = MixedSparsity(model, schedule, distribution=sparsity_distribution, grow_mode=grow_mode,
                                 grow_gradient_share=grow_gradient_share, include_embedding=sparse_embedding,
                                 seed=seed)
    except ValueError as e:  # grow_mode, grow_gradient_share or sparsity_distribution
        fail(e)
if checkpoint is not None:
    optimizer.load_state_dict(checkpoint["optimizer"])
    if sparsity is not None:
        sparsity.load_state_dict(checkpoint["sparsity"])
    data_generator.set_state(checkpoint["data_generator"])
    torch.set_rng_state(checkpoint["torch_rng"])
    iter_num, best_val_loss = checkpoint["iter_num"], checkpoint["best_val_loss"]
    flops_mst, flops_dense = checkpoint["flops_mst"], checkpoint["flops_dense"]
    checkpoint = None

raw_model = model
if compile:
    model = torch.compile(model)
if ddp:
    model = DDP(model, device_ids=[local_rank] if device_type == "cuda" else None)


# -- FLOP accounting: MST's count from the densities, and the dense model's for the same step
sparse_names = {name for g in (sparsity.groups if sparsity else []) for name in g.names}
sparse_order = [n for n, p in raw_model.named_parameters() if n in sparse_names]
sparse_numels = [raw_model.get_parameter(n).numel() for n in sparse_order]
dense_linear_numel = sum(p.numel() for n, p in raw_model.named_parameters()
                         if p.dim() == 2 and n.startswith("transformer.h.") and n not in sparse_names)
if "transformer.wte.weight" not in sparse_names:
    dense_linear_numel += raw_model.lm_head.weight.numel()
flops_cache = {}  # the count changes only when the densities or the attention mode do


def step_flops(attn_mode, dense_weight_gradient):
    """(MST, dense-equivalent) training FLOPs of one optimizer step."""
    key = (attn_mode, dense_weight_gradient, tuple(g.live for g in sparsity.groups) if sparsity else ())
    if key not in flops_cache:
        densities = sparsity.layer_densities() if sparsity else {}
        attention = pattern_density(attn_mode, block_size, attn_window, attn_stride, attn_block)
        mst_flops = training_flops_per_token(n_layer, n_embd, block_size, sparse_numels,
                                             [densities[n] for n in sparse_order], dense_linear_numel,
                                             attention, dense_weight_gradient)
        dense_flops = training_flops_per_token(n_layer, n_embd, block_size, sparse_numels,
                                               [1.0] * len(sparse_numels), dense_linear_numel)
        flops_cache[key] = (mst_flops * tokens_per_iter, dense_flops * tokens_per_iter)
    return flops_cache[key]


peak = peak_bf16_flops(device) if ptdtype == torch.bfloat16 else None  # MFU only against the bf16 peak


def lr_at(it):
    if not decay_lr:
        return learning_rate
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


@torch.no_grad()
def estimate_loss():
    """Mean loss over eval_iters fixed batches per split (the same batches every time), split
    over the ranks."""
    model.eval()
    losses = {}
    for split in ("train", "val"):
        data, starts = batch_starts(split, torch.Generator().manual_seed(seed + 1), eval_iters)
        total = torch.zeros(2, device=device)
        for ix in starts[rank::world_size]:
            with autocast:
                _, loss = model(*load_batch(data, ix))
            total += torch.stack([loss.float(), torch.ones((), device=device)])
        if ddp:
            dist.all_reduce(total)
        losses[split] = (total[0] / total[1]).item()
        if not math.isfinite(losses[split]):
            fail(f"{split} loss is {losses[split]} at step {iter_num}; the last checkpoint in {out_dir} is untouched")
    model.train()
    return losses


def save_checkpoint(path):
    """Write to a temporary file, flush it to disk, then rename: a crash mid-save leaves the
    previous checkpoint intact."""
    state = {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
             "sparsity": sparsity.state_dict() if sparsity else None,
             "model_config": vars(model_config), "config": config, "iter_num": iter_num,
             "best_val_loss": best_val_loss, "data_generator": data_state,
             "torch_rng": torch.get_rng_state(), "flops_mst": flops_mst, "flops_dense": flops_dense}
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def log_metrics(record):
    with open(os.path.join(out_dir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")


def check_masks_agree():
    """Masks must be identical on every rank; a checksum all-reduce makes sure of it."""
    fingerprint = sparsity.mask_fingerprint()
    low, high = fingerprint.clone(), fingerprint.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if low.item() != high.item():
        raise RuntimeError(f"masks differ across ranks after the topology update at step {iter_num}")


# -- training loop
data_state = data_generator.get_state()  # before the batches of step iter_num: what a resume needs
batches = global_batch()
t0, last_logged = time.time(), iter_num - 1
while True:
    phase = schedule.phase(iter_num) if mst else "dense"
    attn_mode = hsa_mode if mst and phase in hsa_phases else "dense"
    if attn_mode != raw_model.attn_mode:
        raw_model.set_attention(attn_mode)
        raw_model.attention_pattern(block_size, torch.device(device))  # build the block mask outside torch.compile
    lr = lr_at(iter_num)
    for group in optimizer.param_groups:
        group["lr"] = lr

    if iter_num % eval_interval == 0 or iter_num == max_iters:
        losses = estimate_loss()
        if master:
            print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
                  f"({attn_mode} attention)")
            log_metrics({"step": iter_num, "train_loss": losses["train"], "val_loss": losses["val"],
                         "phase": phase, "attn_mode": attn_mode, "flops_mst": flops_mst,
                         "flops_dense": flops_dense})
            improved = losses["val"] < best_val_loss
            best_val_loss = min(best_val_loss, losses["val"])
            if iter_num > 0 and (always_save_checkpoint or improved):
                save_checkpoint(os.path.join(out_dir, "ckpt.pt"))
            if iter_num > 0 and keep_best_checkpoint and improved:
                save_checkpoint(os.path.join(out_dir, "best.pt"))
    if iter_num == max_iters:
        break

    # forward and backward over the micro-steps; DDP all-reduces only at the last one
    loss_sum = torch.zeros((), device=device)
    for micro_step, (X, Y) in enumerate(batches):
        sync = micro_step == micro_steps - 1
        with (model.no_sync() if ddp and not sync else nullcontext()), autocast:
            _, loss = model(X, Y)
            loss_sum += loss.detach()
            loss = loss / micro_steps
        loss.backward()
    data_state = data_generator.get_state()
    batches = global_batch()  # drawn now so the host prepares them while the GPU works

    update = mst and schedule.is_update_step(iter_num)
    step_mst, step_dense = step_flops(attn_mode, update and grow_mode != "random")
    if update:  # reads the dense, accumulated (and all-reduced) gradient before it is masked
        sparsity.prune_and_regrow(iter_num, optimizer)
        if ddp:
            check_masks_agree()
    if sparsity:
        sparsity.apply_to_gradients()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if sparsity:
        sparsity.apply_to_weights()
    flops_mst += step_mst
    flops_dense += step_dense

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
        if master:
            density = sparsity.density() if sparsity else 1.0
            target = schedule.target_sparsity(iter_num) if mst else 0.0
            mfu = f"{step_dense / dt / peak * 100:.1f}%" if peak else "-"
            print(f"iter {iter_num}: loss {last_loss:.4f}, lr {lr:.2e}, {phase}, sparsity {1 - density:.3f} "
                  f"(target {target:.3f}), attn {attn_mode}, {dt * 1000:.0f} ms, "
                  f"{tokens_per_iter / dt:,.0f} tok/s, mfu {mfu}, FLOPs {flops_mst:.3e} / dense {flops_dense:.3e} "
                  f"= {flops_mst / flops_dense:.3f}")
            log_metrics({"step": iter_num, "loss": last_loss, "lr": lr, "phase": phase,
                         "target_sparsity": target, "sparsity": 1 - density, "attn_mode": attn_mode,
                         "ms_per_step": dt * 1000, "tokens_per_s": tokens_per_iter / dt,
                         "mfu": step_dense / dt / peak if peak else None, "flops_mst": flops_mst,
                         "flops_dense": flops_dense, "flops_ratio": flops_mst / flops_dense,
                         "topology_changes": sparsity.last_update_changed if update else 0})
    iter_num += 1

if master:
    print(f"done: val loss {losses['val']:.4f} after "
          f"{iter_num} steps; training FLOPs {flops_mst:.3e} (MST) / {flops_dense:.3e} (dense) "
          f"= {flops_mst / flops_dense:.3f}")
if ddp:
    dist.destroy_process_group()
