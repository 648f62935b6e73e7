"""
What train.py, sample.py and evaluate.py share when they run a model: one-line errors, devices
and precision, token batches, the evaluation loss, and checkpoints.
"""

import argparse
import ctypes
import os
import pickle
import re
import signal
import sys
import time
import warnings
import zipfile
from contextlib import nullcontext
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist

from model import GPT, GPTConfig, keeps_every_pair
from sparse import SparsitySchedule

# sample.py and evaluate.py run the sparse patterns through FlexAttention uncompiled on CUDA: exact,
# only slower and hungrier than the fused kernel, which is fine for sampling and evaluation.
warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")

# -----------------------------------------------------------------------------
# errors: bad input ends a script with one line and exit status 2, never a traceback


def fail(message):
    """Print `error: message` and exit with status 2.

    Under torchrun every process of a node usually fails alike (a bad setting, missing data), so
    only local rank 0 prints at once. The others wait: when local rank 0 has failed too, torchrun
    stops them with SIGTERM within its monitor interval (0.1 s), and the error shows once per node.
    Stopped so, they exit 0: torchrun then reports local rank 0's failure alone, instead of listing
    every other process as failed too (7 lines each). An error of theirs alone still shows, 2 s late,
    with status 2."""
    if int(os.environ.get("LOCAL_RANK", 0)) != 0:
        signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
        time.sleep(2)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def first_line(e):
    """The first line of an exception's message, without terminal escapes (torch bolds some words). A
    first line that only announces the next ("Error(s) in loading state_dict for GPT:") takes it along."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return (lines or [type(e).__name__])[0]


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the whole usage first
        fail(f"{message} (see --help)")


# -----------------------------------------------------------------------------
# devices and precision


def pick_device(name=None):
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda") or (device.type == "cpu" and name != "cpu"):
        fail(f"--device={name} must be cpu or cuda (or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail(f"--device={name} but this torch sees no CUDA device")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        fail(f"--device={name} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return name


def autocast_for(device, dtype="auto"):
    """Training's numerics: bf16 autocast on CUDA where the GPU has it, fp32 on the CPU (bf16 there
    is slow and changes the numbers; fp32 is the reference)."""
    if dtype == "auto":
        on_gpu = torch.device(device).type == "cuda"
        dtype = "bfloat16" if on_gpu and torch.cuda.is_bf16_supported() else "float32"
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=getattr(torch, dtype))


def gpu_peak_flops(device):
    """The dense bf16 tensor-core peak of a CUDA device, by its name; None when we do not know it."""
    if torch.device(device).type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in (("H100", 989e12), ("H200", 989e12), ("H800", 989e12), ("A100", 312e12),
                      ("A800", 312e12), ("L40S", 362e12), ("4090", 165e12)):
        if key in name:
            return peak
    return None


def has_fp8(device):
    """Whether FP8 matrix multiplies run here: CUDA GPUs from Ada and Hopper (compute capability 8.9)
    on, and the CPU (slowly; for tests)."""
    if torch.device(device).type != "cuda":
        return hasattr(torch, "float8_e4m3fn")
    return torch.cuda.get_device_capability(device) >= (8, 9)


def keep_freed_memory():
    """On the CPU, glibc gives the big buffers of every step (logits, their gradient) back to the
    kernel when they are freed and faults them in again at the next step: a tiny run spent 40% of
    its time on that. Keeping freed memory in the process's heap instead costs nothing after the
    first step. Does nothing where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    libc.mallopt(M_MMAP_MAX, 0)  # big blocks from the heap, not from mmap, which unmaps them on free
    libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # and never shrink the heap


# -----------------------------------------------------------------------------
# token batches from <data_dir>/<name>/{train,val}.bin: flat uint16 GPT-2 token ids (nanoGPT's layout)

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR_VARIABLE = "MST_DATA_DIR"


def data_root(data_dir=""):
    """The folder that holds the datasets, as an absolute path: the data_dir setting if given, else
    $MST_DATA_DIR, else the data folder next to the scripts. prepare.py writes there and train.py
    and evaluate.py read there, so they agree from any working directory."""
    return os.path.abspath(data_dir or os.environ.get(DATA_DIR_VARIABLE) or os.path.join(PROJECT_DIR, "data"))


def script(name):
    """One of this project's scripts as a command typed in the working directory: `python sample.py`
    in the project's folder, its absolute path from anywhere else."""
    path = os.path.relpath(os.path.join(PROJECT_DIR, name))
    return f"python {os.path.join(PROJECT_DIR, name) if path.startswith('..') else path}"


def prepare_command(dataset, data_dir=""):
    """The prepare.py command that writes `dataset` where data_root(data_dir) looks for it, runnable
    from any working directory."""
    root = data_root(data_dir)
    command = f"python {os.path.join(PROJECT_DIR, 'prepare.py')}"
    where = "" if root == os.path.join(PROJECT_DIR, "data") else f" --data_dir {root}"
    if dataset in ("shakespeare", "openwebtext"):
        return f"{command} {dataset}{where}"
    pool = re.fullmatch(r"(.+)_pool(\d+(?:\.\d+)?M?)", dataset)  # as prepare.py pool names its pools
    if pool:
        return f"{command} pool {pool.group(1)} --tokens {pool.group(2)}{where}"
    return f"{command} tokens --train ... --val ... --name {dataset}{where}"


def check_tokens(path, block_size, how="", vocab_size=None):
    """A one-line reason the file cannot feed batches of block_size tokens, or None. `how` says how
    to make a missing file. With vocab_size, the whole file is read for its largest id (largest_token)."""
    if not os.path.isfile(path):
        return f"{path} not found" + (f": {how}" if how else "")
    if os.path.getsize(path) // 2 <= block_size:
        return (f"{path} holds {os.path.getsize(path) // 2} tokens, fewer than block_size + 1 = "
                f"{block_size + 1}")
    if vocab_size is not None:
        top = largest_token(path)
        if top >= vocab_size:
            return out_of_vocabulary(path, top, vocab_size)
    return None


def largest_token(path, chunk=1 << 24):
    """The largest token id in a token file, read 16M tokens (32 MB) at a time, so that memory stays
    flat however large the file."""
    data = np.memmap(path, dtype=np.uint16, mode="r")
    return max((int(data[i:i + chunk].max()) for i in range(0, len(data), chunk)), default=-1)


def out_of_vocabulary(path, token, vocab_size):
    """The one-line error for a token file that holds an id the model has no embedding for."""
    return (f"{path} holds token id {token}, outside the model's vocabulary of {vocab_size} ids "
            "(vocab_size): is it the dataset meant, tokenised for this model?")


def draw_batches(path, n, batch_size, block_size, generator):
    """The token file and n batches' start offsets, drawn from `generator`. The memmap is opened
    anew each time: a long-lived one grows resident memory without bound."""
    data = np.memmap(path, dtype=np.uint16, mode="r")
    return data, [torch.randint(len(data) - block_size, (batch_size,), generator=generator) for _ in range(n)]


def read_batch(data, starts, block_size, vocab_size=None):
    """Sequences of block_size tokens at `starts`, and their next-token targets (int64, CPU). With
    vocab_size, an id outside the vocabulary is one line (the embedding would raise an IndexError)."""
    x = np.stack([data[i:i + block_size] for i in starts.tolist()]).astype(np.int64)
    y = np.stack([data[i + 1:i + 1 + block_size] for i in starts.tolist()]).astype(np.int64)
    if vocab_size is not None:
        top = int(max(x.max(), y.max()))  # a batch's worth of tokens: nothing next to a step
        if top >= vocab_size:
            fail(out_of_vocabulary(data.filename, top, vocab_size))
    return torch.from_numpy(x), torch.from_numpy(y)


@torch.no_grad()
def estimate_loss(model, path, block_size, batch_size, eval_iters, seed, device, dtype, vocab_size,
                  attention=None, rank=0, world_size=1):
    """Mean loss over eval_iters batches drawn by a generator seeded with `seed` (so the same
    batches every time); train.py evaluates with seed = its seed + 1. A batch holds batch_size
    sequences from each of the world_size ranks, as a training micro-step does: N processes of
    batch_size b evaluate what one process of batch_size N * b does."""
    model.eval()
    data, starts = draw_batches(path, eval_iters, batch_size * world_size, block_size,
                                torch.Generator().manual_seed(seed))
    total = torch.zeros(2, device=device)
    for ix in starts:
        x, y = read_batch(data, ix[rank * batch_size:(rank + 1) * batch_size], block_size, vocab_size)
        with autocast_for(device, dtype):
            _, loss = model(x.to(device), y.to(device), attention)
        total += torch.stack([loss.float(), torch.ones((), device=device)])
    if world_size > 1:
        dist.all_reduce(total)  # every rank's share is batch_size sequences: the mean of means is the mean
    model.train()
    return (total[0] / total[1]).item()


class StepAttention(NamedTuple):
    """The attention of a training step: its pattern's name ('dense' or the model's hsa_mode), its local
    window, forward's `attention` argument (None: dense, or not asked for) and the kept share of the
    causal (query, key) pairs, which the FLOP count uses."""
    mode: str
    window: int
    pattern: object
    density: float

    def label(self, configured_window, name=None):
        """How the log names it: `name` (by default the mode), with /W where the window has grown
        from the configured one."""
        return (name or self.mode) + ("" if self.mode == "dense" or self.window == configured_window
                                      else f"/{self.window}")


def hsa_window_growth(schedule, step):
    """None where `step` uses dense attention (the schedule's hsa_phases). In them, how far the sparse
    pattern's window has grown from attn_window toward the whole sequence: 0 as configured, and with
    hsa_window_follows_sparsity, 1 - target/peak, so it opens as the weights regrow."""
    if schedule.phase(step) not in schedule.hsa_phases:
        return None
    if not schedule.hsa_window_follows_sparsity:
        return 0.0
    peak = schedule.peak_sparsity
    return 1.0 - schedule.target_sparsity(step) / peak if peak > 0 else 1.0


def training_attention(model, schedule, step, device=None):
    """The one place that decides the attention train.py uses at `step`, for the step, its log and
    its FLOP count. A dense run passes schedule=None. Without a device the pattern is not built."""
    T = model.config.block_size
    growth = hsa_window_growth(schedule, step) if schedule is not None else None
    if growth is not None:
        mode, window = model.config.hsa_mode, model.hsa_window(T, growth)
        if not keeps_every_pair(mode, T, window):
            pattern = model.hsa_pattern(T, device, window) if device is not None else None
            return StepAttention(mode, window, pattern, model.attention_density(T, window))
    return StepAttention("dense", T, None, 1.0)


# -----------------------------------------------------------------------------
# checkpoints


def save_checkpoint(state, path):
    """Write to a temporary file, flush it to disk, then rename: a crash mid-save leaves the
    previous checkpoint intact. A write that fails (a full disk, a lost mount) ends the run with
    one line; the partial file is removed and the previous checkpoint stays as it was."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        # torch's zip writer meets the file's OSError, then raises a RuntimeError of its own
        # ("unexpected pos") while closing the archive: the OSError is what to report.
        cause = e
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        previous = (f"the previous checkpoint {path} is intact" if os.path.exists(path)
                    else "nothing was saved")
        fail(f"cannot save {path}: {cause.strerror or first_line(cause)}; {previous}")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def is_checkpoint_name(name):
    """Whether train.py writes checkpoints under this name: ckpt.pt, best.pt, or a kept ckpt_<step>.pt."""
    return name in ("ckpt.pt", "best.pt") or (name.startswith("ckpt_") and name.endswith(".pt") and
                                               name[len("ckpt_"):-len(".pt")].isdigit())


def read_checkpoint(path):
    """A train.py checkpoint as a dict on the CPU, with every way the file can be wrong said in one
    line. weights_only=True: loading runs no code from the file."""
    if not os.path.isfile(path):
        fail(f"checkpoint {path} not found")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        fail(f"{path} is not a checkpoint (not a torch.save archive; a truncated file is not one either)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's own message is many lines on how to load the file anyway; name what it refused
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f" ({refused.group(1)})" if refused else ""
        fail(f"{path} holds objects that loading with weights_only=True refuses{what}: it was not written by "
             "train.py, or comes from a source not to be trusted, so it is not loaded")
    except Exception as e:  # truncated inside, ...
        fail(f"cannot load {path}: {type(e).__name__}: {first_line(e)}")
    missing = [k for k in ("model", "model_config", "config", "iter_num", "schedule") if k not in checkpoint]
    if missing:
        fail(f"{path} is not a train.py checkpoint, or one from an older version: it has no {missing[0]!r}")
    return checkpoint


@torch.no_grad()
def apply_masks(model, masks):
    """Zero the weights a checkpoint's masks ({name: flat bool mask}) say are dead."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params or params[name].numel() != mask.numel():
            raise ValueError(f"the sparsity mask of {name} does not fit the model")
        params[name].mul_(mask.view_as(params[name]).to(params[name].device))


def schedule_of(checkpoint):
    """The run's sparsity schedule, or None for a dense run."""
    return SparsitySchedule(**checkpoint["schedule"]) if checkpoint.get("schedule") else None


def load_model(checkpoint, device):
    """The GPT a checkpoint holds, on `device`. An MST checkpoint holds exact zeros at its masked
    weights already; its masks are applied once more, so the model runs on exactly the topology
    it was trained with."""
    model = GPT(GPTConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model"])
    apply_masks(model, (checkpoint.get("sparsity") or {}).get("masks", {}))
    return model.to(device)


def open_checkpoint(path, device):
    """(model, checkpoint dict) with one-line errors."""
    checkpoint = read_checkpoint(path)
    try:
        return load_model(checkpoint, device), checkpoint
    except (RuntimeError, ValueError, TypeError) as e:  # a state or mask that does not fit the model
        fail(f"cannot load {path}: {first_line(e)}")
