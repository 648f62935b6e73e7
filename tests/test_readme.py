"""The README's commands: the sampling-and-evaluation ones, run as written after the default job,
and the dense runs the default job is compared with.

For the first, the default job (config/mst_tiny.py) is shrunk to a one-layer model so that it
trains in seconds; its steps, phases, evaluations and kept checkpoints stay those of the config, so
every path the commands name exists exactly as after the real job."""

import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import torch

import runtime
from configurator import load_config
from flops import training_flops_per_token
from model import GPT, GPTConfig
from sparse import sparse_parameters

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALLER = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=64", "--batch_size=2", "--eval_iters=2",
           "--attn_window=32", "--attn_stride=64"]


def readme_block(marker):
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = text.split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
    return [line for line in block.strip().splitlines() if not line.startswith("```")]


def test_sampling_section_runs_as_written_after_the_default_job(tmp_path):
    rng = np.random.default_rng(0)
    os.makedirs(tmp_path / "data" / "shakespeare")
    for split, n in (("train", 30000), ("val", 5000)):  # ids that the tokenizer decodes
        rng.integers(0, 5000, n).astype(np.uint16).tofile(tmp_path / "data" / "shakespeare" / f"{split}.bin")
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(tmp_path / "data"))
    train = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), os.path.join(REPO, "config", "mst_tiny.py"),
                            *SMALLER], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert train.returncode == 0, train.stderr
    evals = {r["step"]: r for r in map(json.loads, open(tmp_path / "out" / "mst_tiny" / "metrics.jsonl"))
             if "val_loss" in r}

    outputs = []
    for command in readme_block("readme:sampling"):
        command = re.sub(r"^python (\w+\.py)", lambda m: f"{sys.executable} {os.path.join(REPO, m.group(1))}", command)
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, env=env,
                                timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        outputs.append(result.stdout)
    samples, _, hsa_samples, final_loss, ultra_losses, report, plots = outputs
    assert samples.startswith("ROMEO:") and samples.count("---------------") == 2
    assert hsa_samples.startswith("JULIET:\nO Romeo, Romeo!")
    # evaluate.py reproduces what train.py logged: dense at the end, blocksparse in the ultra phase
    assert f"val loss {evals[240]['val_loss']:.4f}" in final_loss and "(as trained)" in final_loss
    dense_line, hsa_line = ultra_losses.strip().splitlines()
    assert evals[150]["phase"] == "ultra" and evals[150]["attn_mode"] == "blocksparse"
    assert f"val loss {evals[150]['val_loss']:.4f}" in hsa_line and "blocksparse" in hsa_line
    assert "as trained" in hsa_line and "trained with blocksparse" in dense_line
    # the kept checkpoint is sparse and the last one is dense again: the report counts what regrew
    assert "changes since out/mst_tiny/ckpt_150.pt (step 150)" in report
    assert "grown" in report and "masked weights that are not zero: 0" in report
    assert "sparsity.png" in plots and os.path.exists(tmp_path / "out" / "mst_tiny" / "plots" / "sparsity.png")
    assert sorted(os.listdir(tmp_path)) == ["data", "out"]  # the commands write only under out/


# The README's losses are what one 2-core machine printed; another CPU sums floats in another order (its vector
# width), and these runs differed by up to 0.0003 from one machine to the next.
CPU_SPREAD = 0.002


def test_dense_comparison_runs_print_the_readme_numbers(tmp_path):
    """Each dense command writes its own out_dir, its FLOPs share is the one train.py counts, and
    the shortened run prints the README's val loss on the Shakespeare data prepare.py made, with two
    threads (the default on two cores, where the README's numbers come from). The other three train
    240 steps, 4 minutes on two cores, too long for CI: only their FLOPs are checked."""
    if not os.path.isfile(os.path.join(runtime.data_root(), "shakespeare", "val.bin")):
        raise AssertionError("no Shakespeare data: run the README's set-up (python prepare.py shakespeare) first")
    claims = [re.fullmatch(r"(python train\.py .+?)  # ([\d.]+)x: (\d\.\d{4})", line).groups()
              for line in readme_block("readme:dense")]
    argvs = [[os.path.join(REPO, a) if a.startswith("config/") else a for a in shlex.split(command)[2:]]
             for command, _, _ in claims]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    result = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), *argvs[0]], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    first = load_config({"max_iters": 0, "out_dir": ""},  # the steps and out_dir its command names
                        [a for a in argvs[0] if a.split("=")[0] in ("--max_iters", "--out_dir")])
    done = re.search(r"done: val loss (\d\.\d{4}) after (\d+) steps", result.stdout)
    assert done and int(done.group(2)) == first["max_iters"], result.stdout
    assert abs(float(done.group(1)) - float(claims[0][2])) <= CPU_SPREAD, (done.group(1), claims[0][2])

    # every run's settings, as train.py would read its command, from the settings the first one ran with
    ran = torch.load(tmp_path / first["out_dir"] / "ckpt.pt", weights_only=True)
    runs = [{**ran["config"], **load_config(ran["config"], argv)} for argv in argvs]
    assert len({r["out_dir"] for r in runs}) == len(runs) and not any(r["mst"] for r in runs)

    def counted_flops(r):  # a dense run's, as train.py counts them
        model = GPT(GPTConfig(**{k: r[k] for k in ran["model_config"]}))
        tokens = r["gradient_accumulation_steps"] * r["batch_size"] * r["block_size"]
        numels = {name: p.numel() for name, p in sparse_parameters(model)}
        return r["max_iters"] * tokens * training_flops_per_token(numels, (r["n_layer"], r["n_embd"], r["block_size"]))
    flops = [counted_flops(r) for r in runs]
    assert abs(flops[0] - ran["flops"]) <= 1e-9 * ran["flops"]  # train.py sums the steps one by one
    full = flops[[share for _, share, _ in claims].index("1")]
    assert [float(share) for _, share, _ in claims] == [round(f / full, 3) for f in flops]


def test_the_default_job_printed_what_the_readme_says():
    """The README's set-up runs the default job before the tests: its metrics hold the val loss, the
    FLOP share and the log lines the README quotes (two cores, default threads)."""
    path = os.path.join(REPO, "out", "mst_tiny", "metrics.jsonl")
    if not os.path.isfile(path):
        raise AssertionError("no out/mst_tiny: run the README's set-up (it ends with the default job) first")
    last = [r for r in map(json.loads, open(path)) if "val_loss" in r][-1]
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    loss, steps, share = re.search(r"`done: val loss (\d\.\d{4}) after (\d+) steps in [\d:]+; training FLOPs "
                                   r"\S+ = ([\d.]+)x\s+the dense model's`", readme).groups()
    assert (last["step"], f"{last['flops'] / last['flops_dense']:.3f}") == (int(steps), share)
    assert abs(last["val_loss"] - float(loss)) <= CPU_SPREAD, (last["val_loss"], loss)

    # "Reading the log" quotes two of its lines: all but the times must be what the job logged
    records = list(map(json.loads, open(path)))
    iter_line, step_line = readme.split("## Reading the log")[1].split("```")[1].strip().splitlines()
    step, loss, lr, phase, share, target = re.fullmatch(
        r"iter (\d+)/240: loss (\S+), lr (\S+), (\w+) (\S+) \((\S+)\), hsa, \d+ ms, eta [\d:]+", iter_line).groups()
    logged = next(r for r in records if r.get("step") == int(step) and "loss" in r)
    assert (f"{logged['lr']:.1e}", logged["phase"], f"{logged['sparsity']:.3f}", f"{logged['target_sparsity']:.3f}",
            logged["attn_mode"] != "dense") == (lr, phase, share, target, True)
    assert abs(logged["loss"] - float(loss)) <= CPU_SPREAD, (logged["loss"], loss)
    step, train_loss, val_loss, attention, share = re.fullmatch(
        r"step (\d+)/240: train loss (\S+), val loss (\S+) \((\w+) attention\), FLOPs (\S+)x", step_line).groups()
    evaluated = next(r for r in records if r.get("step") == int(step) and "val_loss" in r)
    assert (evaluated["attn_mode"], f"{evaluated['flops'] / evaluated['flops_dense']:.3f}") == (attention, share)
    assert abs(evaluated["train_loss"] - float(train_loss)) <= CPU_SPREAD
    assert abs(evaluated["val_loss"] - float(val_loss)) <= CPU_SPREAD


def test_the_laptop_ddp_command_runs(tmp_path):
    """The README's two-process command, shortened to a few steps: it starts, splits the step and
    finishes (on the Shakespeare data the set-up prepared)."""
    [command] = readme_block("readme:ddp")
    words = shlex.split(command)
    assert words[:4] == ["torchrun", "--standalone", "--nproc_per_node=2", "train.py"]
    argv = [os.path.join(REPO, a) if a.startswith("config/") else a for a in words[4:]]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", *words[1:3], os.path.join(REPO, "train.py"),
                             *argv, "--max_iters=6", "--eval_interval=3", "--warmup_iters=2"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "2 process(es) x 1 micro-steps x 4 sequences" in result.stdout and "done: val loss" in result.stdout
