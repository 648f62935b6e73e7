"""
What train.py, sample.py and evaluate.py share when they run a model: one-line errors, devices
and precision, token batches, the evaluation loss, and checkpoints.
"""

import argparse
import ctypes
import os
import signal
import sys
import time
import warnings
import zipfile
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist

from model import GPT, GPTConfig
from sparse import SparsitySchedule, apply_masks

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
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


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
        dtype = "bfloat16" if torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
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


def prepare_command(dataset, data_dir=""):
    """The prepare.py command that writes `dataset` where data_root(data_dir) looks for it, runnable
    from any working directory."""
    root = data_root(data_dir)
    command = f"python {os.path.join(PROJECT_DIR, 'prepare.py')}"
    where = "" if root == os.path.join(PROJECT_DIR, "data") else f" --data_dir {root}"
    if dataset in ("shakespeare", "openwebtext"):
        return f"{command} {dataset}{where}"
    return f"{command} tokens --train ... --val ... --name {dataset}{where}"


def check_tokens(path, block_size, how=""):
    """A one-line reason the file cannot feed batches of block_size tokens, or None. `how` says how
    to make a missing file."""
    if not os.path.isfile(path):
        return f"{path} not found" + (f": {how}" if how else "")
    if os.path.getsize(path) // 2 <= block_size:
        return f"{path} holds {os.path.getsize(path) // 2} tokens, fewer than block_size + 1 = {block_size + 1}"
    return None


def draw_batches(path, n, batch_size, block_size, generator):
    """The token file and n batches' start offsets, drawn from `generator`. The memmap is opened
    anew each time: a long-lived one grows resident memory without bound."""
    data = np.memmap(path, dtype=np.uint16, mode="r")
    return data, [torch.randint(len(data) - block_size, (batch_size,), generator=generator) for _ in range(n)]


def read_batch(data, starts, block_size):
    """Sequences of block_size tokens at `starts`, and their next-token targets (int64, CPU)."""
    x = np.stack([data[i:i + block_size] for i in starts.tolist()]).astype(np.int64)
    y = np.stack([data[i + 1:i + 1 + block_size] for i in starts.tolist()]).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


@torch.no_grad()
def estimate_loss(model, path, block_size, batch_size, eval_iters, seed, device, dtype, vocab_size,
                  attention=None, rank=0, world_size=1):
    """Mean loss over eval_iters batches drawn by a generator seeded with `seed` (so the same
    batches every time), split over the ranks. train.py evaluates with seed = its seed + 1."""
    model.eval()
    data, starts = draw_batches(path, eval_iters, batch_size, block_size, torch.Generator().manual_seed(seed))
    total = torch.zeros(2, device=device)
    for ix in starts[rank::world_size]:
        x, y = read_batch(data, ix, block_size)
        if max(x.max().item(), y.max().item()) >= vocab_size:
            fail(f"{path} has token {max(x.max().item(), y.max().item())}, outside the model's vocabulary of "
                 f"{vocab_size}: is it the dataset the model is for?")
        with autocast_for(device, dtype):
            _, loss = model(x.to(device), y.to(device), attention)
        total += torch.stack([loss.float(), torch.ones((), device=device)])
    if world_size > 1:
        dist.all_reduce(total)
    model.train()
    return (total[0] / total[1]).item()


def training_attention(model, schedule, step, device):
    """What attention train.py uses at `step`: (mode name, window, forward's `attention`
    argument, kept share of the causal pairs). A dense run passes schedule=None."""
    T = model.config.block_size
    window = hsa_window_at(model, schedule, step)
    pattern = model.hsa_pattern(T, device, window) if window is not None else None
    if pattern is None:
        return "dense", T, None, 1.0
    return model.config.hsa_mode, window, pattern, model.attention_density(T, window)


def hsa_window_at(model, schedule, step):
    """The sparse pattern's window at `step`; None where the schedule keeps attention dense."""
    growth = schedule.hsa_window_growth(step) if schedule is not None else None
    return model.hsa_window(model.config.block_size, growth) if growth is not None else None


def attention_density_at(model, schedule, step):
    """training_attention's kept share of causal pairs, without building the pattern."""
    window = hsa_window_at(model, schedule, step)
    return 1.0 if window is None else model.attention_density(model.config.block_size, window)


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
    except OSError as e:
        previous = f"the previous checkpoint {path} is intact" if os.path.exists(path) else "nothing was saved"
        fail(f"cannot save {path}: {e.strerror or first_line(e)}; {previous}")
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
    except Exception as e:  # truncated inside, unsafe to unpickle, ...
        fail(f"cannot load {path}: {type(e).__name__}: {first_line(e)}")
    missing = [k for k in ("model", "model_config", "config", "iter_num", "schedule") if k not in checkpoint]
    if missing:
        fail(f"{path} is not a train.py checkpoint, or one from an older version: it has no {missing[0]!r}")
    return checkpoint


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
