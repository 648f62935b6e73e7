"""
Pretrain GPT-2 with Mixed Sparsity Training. One GPU, the CPU, or many GPUs through torchrun:

    python train.py config/mst_tiny.py
    python train.py config/mst_gpt2.py --max_iters=20 --update_interval=2  # a smoke run of any config
    torchrun --standalone --nproc_per_node=8 train.py config/mst_gpt2.py
    python train.py --init_from=resume --out_dir=out/mst_tiny  # goes on with the run's own settings
    python train.py --help  # every setting, its default and meaning

The defaults below are GPT-2 124M on OpenWebText with MST; config files and --key=value overrides
change them. The file reads top to bottom: settings, set-up, the model and MST, then the loop. What
MST does is in sparse.py, its FLOP count in flops.py; the rest of a run (out_dir, resume, metrics,
signals, ETA) in runs.py.
"""

import dataclasses
import math
import os
import signal
import sys
import time
from contextlib import nullcontext

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from configurator import ConfigError, load_config, settings_help
from model import GPT, GPTConfig
from runs import (CHANGEABLE_ON_RESUME, ETA, MetricsFile, StopSignals, check_loop_settings, check_masks_agree,
                  checkpoint_left, clock, leave, lr_hold_end, make_out_dir, refuse_to_replace, resumed_settings,
                  short_ramp_warnings, start_processes, warmup_warnings)
from runtime import (autocast_for, check_tokens, data_root, draw_batches, estimate_loss, fail, first_line,
                     gpu_peak_flops, has_fp8, keep_freed_memory, pick_device, prepare_command, read_batch,
                     save_checkpoint, script, training_attention)
from flops import StepFlops, planned_flops_per_token, schedule_for_budget, training_flops_per_token
from sparse import (EMBEDDING, MixedSparsity, SparsitySchedule, optimizer_groups, optimizer_step,
                    set_density_scaled_rates, sparse_parameters)

# Until the loop takes over (runs.StopSignals) there is nothing to save: Ctrl-C ends it at once.
signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))

# -----------------------------------------------------------------------------
# I/O
out_dir = "out"  # where the run writes its checkpoints and metrics.jsonl
eval_interval = 2000  # steps between evaluations (and saves); the last step is always one
eval_iters = 200  # batches per split; the same batches at every evaluation
log_interval = 10  # steps between log lines and metrics records
always_save_checkpoint = True  # save at every evaluation, else only when val loss improves
keep_best_checkpoint = False  # also keep best.pt, the checkpoint with the lowest val loss
keep_checkpoints = ()  # steps whose checkpoint is also kept, as ckpt_<step>.pt
init_from = "scratch"  # 'scratch' or 'resume' (from out_dir/ckpt.pt, with the run's own settings)
overwrite = False  # let a fresh run replace the run in out_dir (its checkpoints and metrics.jsonl)
allow_changes_on_resume = False  # let a resumed run change settings other than I/O and system ones
wandb_log = False  # also log to Weights & Biases (pip install wandb); project and run from out_dir
seed = 1337  # the initial weights, the batches and the random part of growing
# data
dataset = "openwebtext"  # reads <data_dir>/<dataset>/train.bin and val.bin, as prepare.py writes them
data_dir = ""  # the datasets' folder; '': $MST_DATA_DIR, else data/ next to train.py
gradient_accumulation_steps = 40  # micro-steps per optimizer step, summed over all ranks
batch_size = 12  # sequences per micro-step; 12 * 40 = 480 sequences per step
block_size = 1024  # tokens per sequence (T)
# model
n_layer = 12  # transformer blocks
n_head = 12  # attention heads; n_embd must be a multiple
n_embd = 768  # the model's width
dropout = 0.0  # in [0, 1); FlexAttention's sparse patterns have no attention dropout
bias = False  # biases in the Linear layers and layer norms
vocab_size = 50304  # GPT-2's 50257 tokens, padded to a multiple of 64
fp8_head = False  # the output layer and its loss in FP8 (Ada, Hopper): 1.09x faster on an H200
# AdamW and the learning rate: a linear warm-up to learning_rate, then lr_schedule
learning_rate = 6e-4  # the peak rate, after the warm-up
max_iters = 600000  # optimizer steps of the run
weight_decay = 0.1  # AdamW's, on matrices and embeddings only
beta1 = 0.9  # AdamW's first-moment decay
beta2 = 0.95  # AdamW's second-moment decay
grad_clip = 1.0  # the largest gradient norm; 0 disables clipping
lr_schedule = "wsd"  # 'wsd': held to lr_decay_start, then a cosine to min_lr; 'cosine'; 'constant'
warmup_iters = 2000  # steps of the linear warm-up
lr_decay_start = 0.9  # wsd: a fraction of max_iters; = ultra_end, so the anneal falls on the regrowing model
lr_decay_iters = 0  # 0: max_iters; min_lr from here on
min_lr = 6e-5  # the rate at the end of the decay
# Mixed Sparsity Training; phase boundaries are fractions of max_iters (sparse.py)
mst = True  # False trains the dense baseline with the same loop
sparsify_start = 0.0  # dense (initial_sparsity) until here, then the sparsity ramps up
sparsify_end = 0.03  # ... to peak_sparsity, held until ultra_end
ultra_end = 0.9  # the end of the ultra-sparse phase: restoration to final_sparsity begins
restore_end = 1.0  # back at final_sparsity here
initial_sparsity = 0.0  # before sparsify_start (above 0: a random sparse topology to start)
peak_sparsity = 0.8  # held through the ultra phase; in [0, 1)
flops_budget = 0.0  # > 0: solve peak_sparsity for this many counted FLOPs (<= 1: a share of dense)
final_sparsity = 0.0  # after restore_end (0: the run ends dense)
restoration_shape = "early"  # 'early': regrow mostly early in restoration; 'late': the sparsify ramp mirrored
sparsity_distribution = "erdos_renyi"  # how the target is spread over layers: 'erdos_renyi' or 'uniform'
embedding_max_sparsity = 1.0  # the tied embedding / lm_head's highest sparsity: 1.0 no cap, 0 dense
update_interval = 100  # ΔT: steps between topology updates
drop_fraction = 0.0  # share of live weights swapped at an update (0: the topology moves only with the target)
drop_schedule = "global"  # cosine annealing over the whole sparse run ('global') or per phase
grow_mode = "mixed"  # a criterion of sparse.GROW_CRITERIA: 'gradient', 'random' or 'mixed'
grow_gradient_share = 0.75  # mixed growing: 3 by gradient to 1 at random
grown_adam_state = "zero"  # a grown weight's Adam moments: 'zero', or 'gradient' (second moment = grad^2)
density_lr_scaling = False  # True: each sparse layer's rate is learning_rate / its density (SμPar)
density_lr_power = 1.0  # with density_lr_scaling: learning_rate / density ** this (1: SμPar's rule)
# Hybrid Sparse Attention
hsa_mode = "blocksparse"  # the sparse pattern: 'local', 'strided', 'fixed' or 'blocksparse'
hsa_phases = ("ultra",)  # phases that use it; () keeps attention dense throughout
hsa_window_follows_sparsity = False  # True: the window widens toward dense as the target sparsity falls
attn_window = 256  # W: keys of the local window; a multiple of attn_block
attn_stride = 512  # S: the stride of the strided and summary keys; a multiple of attn_block
attn_block = 128  # the tile of the blocksparse pattern
# system
backend = "nccl"  # DDP backend on GPUs ('gloo' is used on the CPU)
device = "cuda" if torch.cuda.is_available() else "cpu"  # 'cpu', 'cuda' or 'cuda:N'
dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float32"  # 'bfloat16' (autocast) or 'float32'
compile = torch.cuda.is_available()  # torch.compile the model (on CUDA)
# -----------------------------------------------------------------------------
config_keys = [k for k, v in globals().items()  # upper case: imported constants (EMBEDDING), not settings
               if not k.startswith("_") and not k.isupper() and isinstance(v, (int, float, bool, str, tuple))]
defaults = {k: globals()[k] for k in config_keys}

# -- configuration: defaults, then config files and overrides; a resumed run's own settings between
if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
    print(settings_help(__file__, defaults))
    sys.exit(0)
try:
    overrides = load_config(defaults, sys.argv[1:])
except ConfigError as e:
    fail(e)
checkpoint, ckpt_path = None, os.path.join(overrides.get("out_dir", out_dir), "ckpt.pt")
if overrides.get("init_from", init_from) == "resume":
    checkpoint, saved = resumed_settings(ckpt_path, overrides, defaults)
    globals().update(saved)
globals().update(overrides)
config = {k: globals()[k] for k in config_keys}

# -- validation: every setting that can be wrong fails here, in one line, before any work
try:
    # the model and the schedule take their settings by name
    model_config = GPTConfig(**{f.name: config[f.name] for f in dataclasses.fields(GPTConfig)})
    schedule = SparsitySchedule(**{f.name: config[f.name] for f in dataclasses.fields(SparsitySchedule)})
    check_loop_settings(config)
except ValueError as e:
    fail(e)
pick_device(device)  # --device=cuda without CUDA, or a device that is neither: one line
refuse_to_replace(out_dir, init_from, overwrite, checkpoint, ckpt_path, max_iters)
# From here on data_dir is this dataset's folder; the setting, as given, stays in `config`.
data_dir = os.path.join(data_root(data_dir), dataset)
for split in ("train", "val"):
    problem = check_tokens(os.path.join(data_dir, f"{split}.bin"), block_size,
                           f"make it with `{prepare_command(dataset, config['data_dir'])}` (see prepare.py)",
                           vocab_size)
    if problem:
        fail(problem)

# -- the learning rate: a linear warm-up, held until hold_end (wsd; cosine: from the warm-up's end),
# then a cosine to min_lr at lr_decay_end; the same shape for dense and MST runs
hold_end = lr_hold_end(config)
lr_decay_end = lr_decay_iters or max_iters


def lr_at(it):
    if lr_schedule == "constant":
        return learning_rate
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    progress = min(1.0, max(0, it - hold_end) / max(1, lr_decay_end - hold_end))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (learning_rate - min_lr)


# -- processes and devices
ddp, rank, local_rank, world_size, device = start_processes(device, backend, gradient_accumulation_steps)
master = rank == 0
micro_steps = gradient_accumulation_steps // world_size  # this rank's share of the accumulation
tokens_per_iter = gradient_accumulation_steps * batch_size * block_size
device_type = "cuda" if device.startswith("cuda") else "cpu"
if device_type == "cpu":
    ignored = [f"{k}={config[k]!r}" for k, cpu in (("dtype", "float32"), ("compile", False)) if config[k] != cpu]
    if ignored and master:
        print(f"note: on the CPU runs are float32 and uncompiled: {' and '.join(ignored)} ignored")
    dtype = "float32"  # bf16 autocast on the CPU is slow and changes numerics; fp32 is the reference
    compile = False
    config.update(dtype=dtype, compile=compile)  # the checkpoint records what ran
    keep_freed_memory()
if fp8_head and not has_fp8(device):
    fail("fp8_head=True needs FP8 matrix multiplies, which this GPU or torch lacks (GPUs have them from Ada "
         "and Hopper on); set fp8_head=False")
autocast = autocast_for(device, dtype)
torch.manual_seed(seed)  # same on every rank: identical initial weights
torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

# -- data: one generator, seeded alike on every rank, draws the whole global batch; each rank
# takes its slice, so a run on N processes sees exactly the batches of a run on one.
data_generator = torch.Generator().manual_seed(seed)


def global_batch():
    """This rank's micro-batches of the next optimizer step (only these are read and moved)."""
    data, starts = draw_batches(os.path.join(data_dir, "train.bin"), gradient_accumulation_steps, batch_size,
                                block_size, data_generator)
    batches = []
    for ix in starts[rank * micro_steps:(rank + 1) * micro_steps]:
        x, y = read_batch(data, ix, block_size, vocab_size)
        if device_type == "cuda":  # pinned, so the copy overlaps the GPU's work
            x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        batches.append((x, y))
    return batches


# -- model, MST, optimizer
iter_num, best_val_loss, flops, flops_dense = 0, float("inf"), 0.0, 0.0
model = raw_model = GPT(model_config).to(device)  # model becomes the compiled/DDP wrapper below
sparsity = None
if mst:
    try:
        sparsity = MixedSparsity(sparse_parameters(model), schedule, {EMBEDDING: embedding_max_sparsity},
                                 distribution=sparsity_distribution, grow_mode=grow_mode,
                                 grow_gradient_share=grow_gradient_share, grown_adam_state=grown_adam_state, seed=seed)
    except ValueError as e:
        fail(e)
optimizer = torch.optim.AdamW(optimizer_groups(model, weight_decay, sparsity if density_lr_scaling else None),
                              lr=learning_rate, betas=(beta1, beta2), fused=device_type == "cuda")


def planned_flops(schedule, first_step=0):
    """The FLOPs the run will count from first_step on: the loop's accounting (step_flops), in advance."""
    density = lambda step: training_attention(raw_model, schedule, step).density  # noqa: E731
    return tokens_per_iter * planned_flops_per_token(schedule, sparsity, numels, attention_shape, density, first_step)


numels = {name: p.numel() for name, p in sparse_parameters(raw_model)}  # the weights whose FLOPs count
attention_shape = (n_layer, n_embd, block_size)
dense_run_flops = max_iters * tokens_per_iter * training_flops_per_token(numels, attention_shape)
if sparsity is not None and flops_budget > 0:
    try:
        schedule = sparsity.schedule = schedule_for_budget(
            schedule, flops_budget * dense_run_flops if flops_budget <= 1 else flops_budget, planned_flops)
    except ValueError as e:
        fail(f"flops_budget={flops_budget:g}: {e}")
    peak_sparsity = config["peak_sparsity"] = schedule.peak_sparsity  # the checkpoint and metrics record it
changed_on_resume = {}  # setting: [the checkpoint's value, this run's]
if checkpoint is not None:
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if sparsity is not None:
            sparsity.load_state_dict(checkpoint["sparsity"])
    except (KeyError, RuntimeError, ValueError) as e:  # changed settings that the state cannot follow
        fail(f"cannot resume from {ckpt_path}: {type(e).__name__}: {first_line(e)}")
    data_generator.set_state(checkpoint["data_generator"])
    torch.set_rng_state(checkpoint["torch_rng"])
    iter_num, best_val_loss = checkpoint["iter_num"], checkpoint["best_val_loss"]
    flops, flops_dense = checkpoint["flops"], checkpoint["flops_dense"]
    # allow_changes_on_resume: the run goes on under the new settings from this step, where the
    # schedule may stand elsewhere (phase boundaries are fractions of max_iters); say so
    changed_on_resume = {k: [checkpoint["config"][k], v] for k, v in config.items()
                         if k not in CHANGEABLE_ON_RESUME and checkpoint["config"].get(k, v) != v}
    checkpoint = None
schedule = schedule if sparsity is not None else None  # from here on, None means a dense run
phase_at = schedule.phase if schedule is not None else lambda step: "dense"  # noqa: E731
step_flops = StepFlops(numels, attention_shape, sparsity, tokens_per_iter)
gpu_peak = gpu_peak_flops(device) if dtype == "bfloat16" else None  # MFU only against the bf16 peak

if compile:
    model = torch.compile(model)
if ddp:
    model = DDP(model, device_ids=[local_rank] if device_type == "cuda" else None)
metrics = MetricsFile(out_dir, wandb_log and master)
if master:
    make_out_dir(out_dir, replace=init_from == "scratch" and overwrite)
    print(f"model: {raw_model.num_params() / 1e6:.2f}M parameters (without position embeddings)\n"
          f"tokens per step: {tokens_per_iter:,} ({world_size} process(es) x {micro_steps} micro-steps x "
          f"{batch_size} sequences x {block_size} tokens)")
    if changed_on_resume:
        print(f"resuming at step {iter_num}, in the {phase_at(iter_num)} phase, with "
              + ", ".join(f"{k}={new!r} (was {old!r})" for k, (old, new) in changed_on_resume.items()))
    for warning in warmup_warnings(config):
        print(f"warning: {warning}")
    if sparsity is not None:
        for warning in short_ramp_warnings(schedule):
            print(f"warning: {warning}")
        plan = flops + planned_flops(schedule, iter_num)  # a resumed run: those counted, then the rest
        print(f"planned training FLOPs: {plan:.4g} = {plan / dense_run_flops:.3f}x the dense model's, "
              f"at peak sparsity {peak_sparsity:g}")
    train_tokens = os.path.getsize(os.path.join(data_dir, "train.bin")) // 2
    metrics.start({"run": config, "params": sum(p.numel() for p in raw_model.parameters()),
                   "tokens_per_iter": tokens_per_iter, "resumed_at": iter_num, "changed": changed_on_resume,
                   "train_tokens": train_tokens, "epochs": max_iters * tokens_per_iter / train_tokens}, iter_num)


def save(name, note=""):
    """A checkpoint holds all a run needs to go on bit for bit: model, AdamW, masks, generators, step."""
    state = {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
             "sparsity": sparsity.state_dict() if sparsity is not None else None,
             "model_config": vars(model_config).copy(), "config": config,
             "schedule": dataclasses.asdict(schedule) if schedule is not None else None, "iter_num": iter_num,
             "best_val_loss": best_val_loss, "data_generator": data_state, "torch_rng": torch.get_rng_state(),
             "flops": flops, "flops_dense": flops_dense}
    save_checkpoint(state, os.path.join(out_dir, name))
    print(f"saved {os.path.join(out_dir, name)} (step {iter_num}{note})")


# -- training loop
stop = StopSignals(out_dir, ddp, master, device_type)
data_state = data_generator.get_state()  # before the batches of step iter_num: what a resume needs
batches = global_batch()
eta = ETA(iter_num, max_iters, eval_interval, eval_iters, micro_steps)
t_start = t0 = time.time()
last_logged, stopped_by = iter_num - 1, 0
while True:
    phase = phase_at(iter_num)
    attention = training_attention(raw_model, schedule, iter_num, device)
    lr = lr_at(iter_num)
    set_density_scaled_rates(optimizer, lr, sparsity, density_lr_power)

    t_eval, evaluate = time.time(), iter_num % eval_interval == 0 or iter_num == max_iters
    if evaluate:
        losses = {}
        for split in ("train", "val"):
            # batch_size from each rank: the batches of one process of batch_size * world_size
            losses[split] = estimate_loss(model, os.path.join(data_dir, f"{split}.bin"), block_size,
                                          batch_size, eval_iters, seed + 1, device, dtype, vocab_size,
                                          attention.pattern, rank, world_size)
            if not math.isfinite(losses[split]):
                fail(f"{split} loss is {losses[split]} at step {iter_num}; {checkpoint_left(out_dir)}")
        if master:
            cost = f", FLOPs {flops / flops_dense:.3f}x" if schedule is not None and flops_dense else ""
            attn_note = f" ({attention.label(attn_window)} attention)" if schedule is not None else ""
            print(f"step {iter_num}/{max_iters}: train loss {losses['train']:.4f}, "
                  f"val loss {losses['val']:.4f}{attn_note}{cost}")
            metrics.log({"step": iter_num, "train_loss": losses["train"], "val_loss": losses["val"],
                         "phase": phase, "attn_mode": attention.mode, "attn_window": attention.window,
                         "flops": flops, "flops_dense": flops_dense})
            improved = losses["val"] < best_val_loss
            best_val_loss = min(best_val_loss, losses["val"])
            if iter_num > 0 and (always_save_checkpoint or improved):
                save("ckpt.pt")
            if iter_num > 0 and keep_best_checkpoint and improved:
                save("best.pt")
    if master and iter_num in keep_checkpoints:
        save(f"ckpt_{iter_num}.pt", ", kept")
    if evaluate or iter_num in keep_checkpoints:
        eta.spent_outside_steps(time.time() - t_eval, evaluate)
    if iter_num == max_iters:
        break

    # forward and backward over the micro-steps; DDP all-reduces only at the last one
    loss_sum = torch.zeros((), device=device)
    for micro_step, (X, Y) in enumerate(batches):
        sync = micro_step == micro_steps - 1
        with (model.no_sync() if ddp and not sync else nullcontext()), autocast:
            _, loss = model(X, Y, attention.pattern)
            loss_sum += loss.detach()
            loss = loss / micro_steps
        loss.backward()
    data_state = data_generator.get_state()
    batches = global_batch()  # drawn now so the host prepares them while the GPU works

    # MST: every update_interval steps prune and regrow, reading the dense (accumulated, all-reduced)
    # gradient before optimizer_step masks it; then a step that keeps dead weights and moments at 0
    update = sparsity is not None and schedule.is_update_step(iter_num)
    this_step, this_step_dense = step_flops(attention.density, update and sparsity.reads_dense_gradient)
    topology_changes = 0
    if update:
        topology_changes = sparsity.prune_and_regrow(iter_num, optimizer)
        if ddp:
            check_masks_agree(sparsity, iter_num)
    optimizer_step(optimizer, model.parameters(), sparsity, grad_clip)
    flops += this_step
    flops_dense += this_step_dense

    if iter_num % log_interval == 0 or iter_num == max_iters - 1:
        if ddp:
            torch.distributed.all_reduce(loss_sum)
        last_loss = loss_sum.item() / gradient_accumulation_steps  # mean over the global batch; syncs
        if not math.isfinite(last_loss):
            fail(f"loss became {last_loss} by step {iter_num} (checked every log_interval steps); "
                 f"{checkpoint_left(out_dir)}")
        t1 = time.time()
        dt = (t1 - t0) / (iter_num - last_logged)  # includes any evaluation in between
        t0, last_logged = t1, iter_num
        seconds_left = eta.seconds_left(t1, iter_num)
        if master:
            density = sparsity.density() if sparsity is not None else 1.0
            target = schedule.target_sparsity(iter_num) if schedule is not None else 0.0
            mfu = this_step_dense / dt / (gpu_peak * world_size) if gpu_peak else None  # per GPU
            # Only what applies, so that the line fits 100 characters: no sparsity, attention or
            # FLOPs on a dense run (the evaluation lines carry the FLOPs), no MFU on the CPU.
            fields = [f"iter {iter_num}/{max_iters}: loss {last_loss:.4f}", f"lr {lr:.1e}"]
            if schedule is not None:
                fields.append(f"{phase} {1 - density:.3f} ({target:.3f})")
            if attention.mode != "dense":
                fields.append(attention.label(attn_window, "hsa"))
            fields.append(f"{dt * 1000:.0f} ms")
            if mfu is not None:
                fields.append(f"mfu {mfu:.1%}")
            if seconds_left is not None:
                fields.append(f"eta {clock(seconds_left)}")
            print(", ".join(fields))
            metrics.log({"step": iter_num, "loss": last_loss, "lr": lr, "phase": phase,
                         "target_sparsity": target, "sparsity": 1 - density, "attn_mode": attention.mode,
                         "attn_window": attention.window, "ms_per_step": dt * 1000,
                         "tokens_per_s": tokens_per_iter / dt, "mfu": mfu, "flops": flops,
                         "flops_dense": flops_dense, "flops_ratio": flops / flops_dense,
                         "topology_changes": topology_changes, "elapsed_s": t1 - t_start,
                         "eta_s": seconds_left})
    iter_num += 1
    stopped_by = stop.agreed() if iter_num < max_iters else 0  # in the last step: the run finishes
    if stopped_by:
        break

if master and stopped_by:
    save("ckpt.pt", f", stopped by {signal.Signals(stopped_by).name}")
    launcher = "torchrun ... train.py" if ddp else script("train.py")
    print(f"go on with: {launcher} --init_from=resume --out_dir={out_dir}")
elif master:
    ratio = f" = {flops / flops_dense:.3f}x the dense model's" if sparsity is not None else ""
    took = clock(time.time() - t_start) + (f" (this process, from step {eta.first_step})" if eta.first_step else "")
    print(f"done: val loss {losses['val']:.4f} after {iter_num} steps in {took}; training FLOPs {flops:.3e}{ratio}")
    ckpt = os.path.join(out_dir, "ckpt.pt")
    print(f"  checkpoint: {ckpt}\n  next: {script('sample.py')} --out_dir={out_dir}\n"
          f"        {script('evaluate.py')} loss --ckpt={ckpt} --attention=both\n"
          f"        {script('plot.py')} curves {out_dir} --out={os.path.join(out_dir, 'plots')}")
metrics.close()
leave(ddp, stopped_by)
