"""
What a training run does besides training, for train.py: the checks on its settings, where it writes
and what it refuses to overwrite, how it resumes, its metrics file, how it stops on a signal, its ETA,
and how a DDP process leaves. Each piece is here so that train.py's loop reads as training.
"""

import contextlib
import json
import os
import signal
import sys

import torch
import torch.distributed as dist

from runtime import fail, is_checkpoint_name, pick_device, read_checkpoint, script

# -----------------------------------------------------------------------------
# settings


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


# A resumed run takes its settings from its checkpoint; these come from the command instead ...
NOT_RESUMED = {"init_from", "out_dir", "overwrite", "allow_changes_on_resume", "backend", "device", "dtype",
               "compile"}
# ... and these may differ from the checkpoint's without allow_changes_on_resume.
CHANGEABLE_ON_RESUME = NOT_RESUMED | {"eval_interval", "eval_iters", "log_interval", "always_save_checkpoint",
                                      "keep_best_checkpoint", "keep_checkpoints", "fp8_head", "data_dir"}


def resumed_settings(ckpt_path, overrides, defaults):
    """(the checkpoint, the settings it ran with) for --init_from=resume. A command that changes a
    setting outside CHANGEABLE_ON_RESUME is refused unless it allows changes on resume."""
    if not os.path.exists(ckpt_path):
        fail(f"--init_from=resume but {ckpt_path} does not exist")
    checkpoint = read_checkpoint(ckpt_path)
    saved = {**lr_schedule_of_old_run(checkpoint["config"]),
             **{k: v for k, v in checkpoint["config"].items() if k in defaults and k not in NOT_RESUMED}}
    changed = [k for k, v in overrides.items()
               if k in saved and v != saved[k] and k not in CHANGEABLE_ON_RESUME]
    if changed and not overrides.get("allow_changes_on_resume", False):
        k = changed[0]
        fail(f"{k}={overrides[k]!r} differs from the checkpoint's {k}={saved[k]!r}: a resumed run keeps its "
             "settings (add --allow_changes_on_resume=True to change them anyway)")
    return checkpoint, saved


def lr_hold_end(c):
    """The step where the rate's cosine begins: the warm-up's end ('cosine'), or lr_decay_start of the
    run ('wsd'). Below 1, lr_decay_start leaves at least the last step to decay in: a run of a few
    steps, where it would round to max_iters, still decays."""
    if c["lr_schedule"] == "cosine":
        return c["warmup_iters"]
    return max(c["warmup_iters"], lr_decay_start_step(c))


def warmup_warnings(c):
    """What to say of a warm-up over a tenth of the run. warmup_iters counts steps: unlike the phase
    boundaries, it does not shrink with max_iters (config/mst_tiny.py's 20 steps are the whole of a
    20-step run). A warning, not a rule: the configs' own runs warm up for 0.3% to 8% of theirs."""
    if c["lr_schedule"] == "constant" or c["warmup_iters"] <= c["max_iters"] / 10:
        return []
    return [f"the warm-up takes {c['warmup_iters']} of the {c['max_iters']} steps (warmup_iters counts steps: "
            "shorten it too)"]


def short_ramp_warnings(schedule):
    """What to say of each ramp of an MST schedule that moves the sparsity with fewer than two topology
    updates inside it: only at an update do the masks follow the target, so such a ramp is a jump."""
    s = schedule
    ramps = {"sparsify": (s.bounds[0], s.bounds[1] - 1, s.initial_sparsity),
             "restoration": (s.bounds[2], s.last_update, s.final_sparsity)}
    updates = {name: sum(s.is_update_step(t) for t in range(first, last + 1))
               for name, (first, last, other) in ramps.items() if other != s.peak_sparsity}
    return [f"{n} topology update(s) in the {name} ramp (update_interval={s.update_interval}): "
            "the sparsity jumps" for name, n in updates.items() if n < 2]


def lr_decay_start_step(c):
    hold = round(c["lr_decay_start"] * c["max_iters"])
    return min(hold, c["max_iters"] - 1) if c["lr_decay_start"] < 1 else hold


def check_loop_settings(c):
    """ValueError for the settings of train.py's loop and rate (c: the settings) that cannot run."""
    if c["init_from"] not in ("scratch", "resume"):
        raise ValueError(f"init_from={c['init_from']!r} must be 'scratch' or 'resume'")
    if min(c["batch_size"], c["gradient_accumulation_steps"], c["eval_iters"], c["log_interval"],
           c["eval_interval"]) <= 0:
        raise ValueError("batch_size, gradient_accumulation_steps, eval_iters, log_interval and "
                         "eval_interval must be positive")
    if min(c["warmup_iters"], c["lr_decay_iters"]) < 0 or not 0.0 <= c["lr_decay_start"] <= 1.0:
        raise ValueError("warmup_iters and lr_decay_iters must not be negative, and lr_decay_start is a "
                         "fraction of max_iters in [0, 1]")
    if c["lr_schedule"] not in ("wsd", "cosine", "constant"):
        raise ValueError(f"lr_schedule={c['lr_schedule']!r} must be 'wsd', 'cosine' or 'constant'")
    if not 0.0 <= c["min_lr"] <= c["learning_rate"]:
        raise ValueError(f"learning_rate={c['learning_rate']:g} and min_lr={c['min_lr']:g} must satisfy "
                         "0 <= min_lr <= learning_rate")
    for name in ("beta1", "beta2"):
        if not 0.0 <= c[name] < 1.0:
            raise ValueError(f"{name}={c[name]:g} must lie in [0, 1)")
    if min(c["weight_decay"], c["grad_clip"], c["density_lr_power"]) < 0:
        raise ValueError("weight_decay, grad_clip and density_lr_power must not be negative")
    if c["dtype"] not in ("float32", "bfloat16"):
        raise ValueError(f"dtype={c['dtype']!r} must be 'float32' or 'bfloat16' (float16 would need a "
                         "gradient scaler, which train.py does not have)")
    if 1.0 < c["flops_budget"] < 1e6:  # no model trains a token for less: a typo for a share or a count
        raise ValueError(f"flops_budget={c['flops_budget']:g} is neither a share of the dense run's FLOPs "
                         "(at most 1) nor a count of FLOPs (say 5e15)")
    hold_end, decay_end = lr_decay_start_step(c), c["lr_decay_iters"] or c["max_iters"]
    if c["lr_schedule"] == "wsd" and decay_end <= hold_end:
        raise ValueError(f"the rate would never decay: it is held until step {hold_end} (lr_decay_start), "
                         f"where the decay should already be over (step {decay_end}, lr_decay_iters)")


# -----------------------------------------------------------------------------
# out_dir


def refuse_to_replace(out_dir, init_from, overwrite, checkpoint, ckpt_path, max_iters):
    """A fresh run never replaces another by accident, and a finished run does not run again."""
    if init_from == "scratch" and not overwrite and os.path.isdir(out_dir):
        old_checkpoints = [name for name in sorted(os.listdir(out_dir)) if is_checkpoint_name(name)]
        if old_checkpoints:
            how = (f"resume it with `{script('train.py')} --init_from=resume --out_dir={out_dir}`, "
                   if "ckpt.pt" in old_checkpoints else "")
            fail(f"{out_dir} already holds a run ({', '.join(old_checkpoints)}): {how}pick another "
                 "--out_dir, or replace it with --overwrite=True")
    if checkpoint is not None and checkpoint["iter_num"] >= max_iters:
        if checkpoint["iter_num"] > max_iters:
            fail(f"{ckpt_path} is at step {checkpoint['iter_num']}, past max_iters={max_iters}")
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"{ckpt_path} is at step {max_iters} of {max_iters}: the run is finished, nothing to do")
        sys.exit(0)


def make_out_dir(out_dir, replace):
    """Only once the inputs are known to be good does the run write anything. replace (--overwrite):
    the old run goes as a whole, so that the files describe one run. A folder that cannot be made
    (out_dir is a file, or lies where nothing can be written) is one line."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        if replace:
            for name in os.listdir(out_dir):
                if is_checkpoint_name(name) or name == "metrics.jsonl":
                    os.remove(os.path.join(out_dir, name))
    except OSError as e:
        fail(f"cannot write to out_dir {out_dir}: {e.strerror or e}")


def checkpoint_left(out_dir):
    """What a run stopped by an error leaves to resume from, said in its one line. The ckpt.pt in
    out_dir is this run's, if any: a fresh run never keeps another's (refuse_to_replace, make_out_dir)."""
    path = os.path.join(out_dir, "ckpt.pt")
    if not os.path.exists(path):
        return "no checkpoint was saved yet"
    step = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["iter_num"]  # mmap: reads little
    return f"the last checkpoint, {path} at step {step}, is intact"


# -----------------------------------------------------------------------------
# processes


def start_processes(device, backend, gradient_accumulation_steps):
    """(ddp, rank, local_rank, world_size, device): one process, or one of torchrun's, a GPU each."""
    if int(os.environ.get("RANK", -1)) == -1:
        return False, 0, 0, 1, device
    rank, local_rank, world_size = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    if gradient_accumulation_steps % world_size:
        fail(f"gradient_accumulation_steps={gradient_accumulation_steps} must be divisible by the number of "
             f"processes, {world_size} (the same step on {world_size}: --gradient_accumulation_steps="
             f"{gradient_accumulation_steps * world_size} with batch_size divided by {world_size})")
    if device.startswith("cuda"):
        device = pick_device(f"cuda:{local_rank}")  # one GPU per process of this node
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend if device.startswith("cuda") else "gloo")
    return True, rank, local_rank, world_size, device


def check_masks_agree(sparsity, step):
    """Masks must be identical on every DDP rank: a float64 checksum of them, equal across ranks iff they
    agree, is all-reduced to its min and max."""
    low = torch.zeros((), dtype=torch.float64, device=sparsity.groups[0].mask.device)
    for g in sparsity.groups:
        weights = (torch.arange(g.mask.numel(), device=g.mask.device) % 65521 + 1).to(torch.float64)
        low += (g.mask.view(-1).to(torch.float64) * weights).sum()
    high = low.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if low.item() != high.item():
        raise RuntimeError(f"masks differ across ranks after the topology update at step {step}")


def leave(ddp, stopped_by):
    """The end of the process: 0 when the run is done, 128 + the signal when one stopped it."""
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


# -----------------------------------------------------------------------------
# the metrics file


class MetricsFile:
    """out_dir/metrics.jsonl: a header record with the run's settings, then one record per logged step
    and per evaluation; with wandb_log, the same numbers go to Weights & Biases, in a project named
    after the folder that holds out_dir and a run named after out_dir."""

    def __init__(self, out_dir, wandb_log=False):
        self.out_dir, self.path = out_dir, os.path.join(out_dir, "metrics.jsonl")
        self.wandb = None
        if wandb_log:  # imported only when asked for: it is no dependency of the project
            try:
                import wandb
            except ImportError:
                fail("wandb_log=True needs the wandb package, which this Python lacks: pip install wandb")
            self.wandb = wandb

    def start(self, header, iter_num):
        """Begin this run's part of the file. It holds each step of a run once: a fresh run starts it
        anew, and a resumed one keeps only the records of the steps before its checkpoint's (a killed
        run logs past its last save) with the headers written before them, then writes the rest again,
        after its own header."""
        kept = []
        if iter_num > 0 and os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:  # a last line cut short by a kill
                        continue
                    if record.get("step", record.get("resumed_at", 0)) < iter_num:
                        kept.append(line.rstrip("\n") + "\n")
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.writelines(kept)
                f.write(json.dumps(header) + "\n")
            os.replace(tmp, self.path)
        except OSError as e:  # a full disk: the file stays as it was
            self.cannot_write(e)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        if self.wandb is not None:
            where = os.path.abspath(self.out_dir)
            self.wandb.init(project=os.path.basename(os.path.dirname(where)), name=os.path.basename(where),
                            config=header["run"], dir=where)

    def log(self, record):
        """Append the record whole or not at all: a write that fails part way (a full disk) is cut
        back off, so that the file never ends in half a record."""
        line = (json.dumps(record) + "\n").encode()
        try:
            with open(self.path, "ab", buffering=0) as f:  # unbuffered: each write reaches the file or fails
                start = f.seek(0, os.SEEK_END)
                try:
                    while line:
                        line = line[f.write(line):]
                except OSError:
                    with contextlib.suppress(OSError):  # the write's error is the one to report
                        f.truncate(start)
                    raise
        except OSError as e:
            self.cannot_write(e)
        if self.wandb is not None:
            numbers = {k: v for k, v in record.items() if isinstance(v, (int, float))}
            self.wandb.log(numbers, step=record["step"])

    def cannot_write(self, e):
        fail(f"cannot write {self.path}: {e.strerror or e}; {checkpoint_left(self.out_dir)}")

    def close(self):
        if self.wandb is not None:
            self.wandb.finish()


# -----------------------------------------------------------------------------
# stopping on a signal: Ctrl-C (SIGINT), a preemption (SIGTERM) or a request to stop (SIGUSR1, as
# from SLURM's --signal) lets the current step finish, saves ckpt.pt and exits with 128 + the
# signal's number: 130, 143, 138. A second Ctrl-C exits at once, even from the middle of a save:
# saves are renames, so the last checkpoint is whole either way.


class StopSignals:

    def __init__(self, out_dir, ddp, master, device_type):
        self.out_dir, self.ddp, self.master = out_dir, ddp, master
        self.received = 0  # the first signal received; 0 while none
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            signal.signal(signum, self.on_signal)
        # A signal may reach one rank only, but all must stop after the same step: each step they
        # agree on the largest signal received. On GPUs over a gloo group of its own, on the CPU,
        # which never waits for the GPU's queue.
        self.group = dist.new_group(backend="gloo") if ddp and device_type == "cuda" else None

    def on_signal(self, signum, frame):
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            self.exit_at_once()
        if self.master and not self.received:
            os.write(2, f"{signal.Signals(signum).name}: stopping after this step to save a checkpoint "
                        "(Ctrl-C again stops at once)\n".encode())
        self.received = self.received or signum

    def exit_at_once(self):
        """os._exit, not sys.exit: an exception raised inside torch.save comes out as a traceback of
        torch's zip writer, and under DDP gloo's threads can abort the interpreter's shutdown (see
        leave). A save it interrupts leaves a .tmp file, which goes first."""
        if self.master and os.path.isdir(self.out_dir):
            for name in os.listdir(self.out_dir):
                if name.endswith(".tmp") and is_checkpoint_name(name[:-len(".tmp")]):
                    os.remove(os.path.join(self.out_dir, name))
        saved = os.path.exists(os.path.join(self.out_dir, "ckpt.pt"))
        kept = f"the last checkpoint in {self.out_dir} is intact" if saved else "no checkpoint was saved yet"
        # os.write, not print: the signal may have landed in the middle of a print, whose buffer then
        # cannot be flushed from here (a "reentrant call"); its lines are lost, the metrics file has them
        os.write(2, f"interrupted again: stopped at once; {kept}\n".encode())
        try:
            sys.stdout.flush()
        except RuntimeError:
            pass
        os._exit(130)

    def agreed(self):
        """The signal every rank stops for: the largest any received, 0 for none."""
        if not self.ddp:
            return self.received
        flag = torch.tensor([self.received])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return flag.item()


# -----------------------------------------------------------------------------
# the time left


def clock(seconds):
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class ETA:
    """The steps left at the rate measured since the clock started, plus the evaluations left at the
    last one's duration. The clock starts a few steps in: the first ones are slow (compilation,
    allocations) and made the estimate several times too long."""
    AFTER_STEPS = 5

    def __init__(self, first_step, max_iters, eval_interval, eval_iters, micro_steps):
        self.first_step, self.max_iters, self.eval_interval = first_step, max_iters, eval_interval
        self.eval_iters, self.micro_steps = eval_iters, micro_steps
        self.started = None  # (time, step, eval_seconds) when the clock started
        self.eval_seconds, self.last_eval_seconds = 0.0, None  # evaluations and their saves: all, the last
        self.last_eval_on_clock = False  # whether the last evaluation ran after the clock started

    def spent_outside_steps(self, seconds, evaluated):
        """Time in an evaluation (evaluated) or in keeping a checkpoint, which the step rate leaves out."""
        self.eval_seconds += seconds
        if evaluated:
            self.last_eval_seconds, self.last_eval_on_clock = seconds, self.started is not None

    def seconds_left(self, now, step):
        """After `step`: the seconds left, or None while the clock has not run yet."""
        if self.started is None:
            if step >= self.first_step + self.AFTER_STEPS:
                self.started = (now, step, self.eval_seconds)
            return None
        start, start_step, start_eval_seconds = self.started
        step_seconds = (now - start - (self.eval_seconds - start_eval_seconds)) / (step - start_step)
        every = self.eval_interval
        evals_left = self.max_iters // every - step // every + (self.max_iters % every > 0)
        eval_each = self.last_eval_seconds
        if not self.last_eval_on_clock:  # it may have compiled: at most its forward passes at the step rate
            forward_passes = step_seconds / self.micro_steps / 3 * 2 * self.eval_iters  # eval_iters on each rank
            eval_each = min(eval_each, forward_passes) if eval_each is not None else forward_passes
        return step_seconds * (self.max_iters - 1 - step) + eval_each * evals_left
