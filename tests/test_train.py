"""train.py end to end on the CPU: the three phases, exact resume, safe checkpoints, bad input,
non-finite losses, and DDP through torchrun with gloo."""

import errno
import json
import math
import os
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "train.py")

# A tiny model that still passes through sparsify (steps 0-7), ultra (8-11, with HSA) and restoration
# (12-17, HSA with a growing window), with a moving topology and mixed growing.
TINY = dict(dataset="toy", n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=256, batch_size=4,
            gradient_accumulation_steps=1, learning_rate=3e-3, min_lr=3e-4, warmup_iters=2, peak_sparsity=0.9,
            max_iters=18, sparsify_end=8 / 18, ultra_end=12 / 18, lr_decay_start=12 / 18, restore_end=1.0,
            update_interval=4, eval_interval=9, eval_iters=2, log_interval=1, attn_block=8, attn_window=8,
            attn_stride=16, hsa_mode="blocksparse", grow_mode="mixed", drop_fraction=0.3,
            hsa_phases=("ultra", "restoration"), hsa_window_follows_sparsity=True, embedding_max_sparsity=0.0)


def make_toy_data(root, name="toy", n=40_000, seed=0):
    """A learnable token stream: each token mostly follows a fixed successor of the one before."""
    rng = np.random.default_rng(seed)
    successor = rng.integers(0, 256, 256)
    tokens = np.empty(n, dtype=np.uint16)
    tokens[0] = 0
    noise = rng.random(n) < 0.2
    random_tokens = rng.integers(0, 256, n)
    for i in range(1, n):
        tokens[i] = random_tokens[i] if noise[i] else successor[tokens[i - 1]]
    os.makedirs(os.path.join(root, "data", name), exist_ok=True)
    tokens[: n * 9 // 10].tofile(os.path.join(root, "data", name, "train.bin"))
    tokens[n * 9 // 10:].tofile(os.path.join(root, "data", name, "val.bin"))


def args_for(out_dir, **overrides):
    settings = dict(TINY, out_dir=str(out_dir))
    settings.update(overrides)
    return [f"--{k}={v}" for k, v in settings.items()]


def run_subprocess(cwd, args, nproc=None):
    command = [sys.executable, TRAIN, *args]
    if nproc:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   TRAIN, *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=os.path.join(cwd, "data"))
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def run_in_process(monkeypatch, cwd, args, stop_at_optimizer_step=None):
    """Run train.py in this process; optionally die like a killed job at an optimizer step."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MST_DATA_DIR", os.path.join(cwd, "data"))
    monkeypatch.setattr(sys, "argv", [TRAIN, *args])
    if stop_at_optimizer_step is not None:
        real_step, calls = torch.optim.AdamW.step, [0]

        def step(self, *a, **kw):
            calls[0] += 1
            if calls[0] == stop_at_optimizer_step:
                raise KeyboardInterrupt("simulated kill")
            return real_step(self, *a, **kw)
        monkeypatch.setattr(torch.optim.AdamW, "step", step)
    try:
        runpy.run_path(TRAIN, run_name="__main__")
    except KeyboardInterrupt:
        pass
    finally:
        monkeypatch.undo()


def read_metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def train_losses(records):
    return {r["step"]: r["loss"] for r in records if "loss" in r}


@pytest.fixture
def workdir(tmp_path):
    make_toy_data(tmp_path)
    return tmp_path


def test_tiny_run_passes_all_phases_and_reports_flops(workdir):
    out = workdir / "out"
    result = run_subprocess(workdir, args_for(out, max_iters=60, sparsify_end=1 / 3, ultra_end=2 / 3,
                                              update_interval=5, eval_interval=30, log_interval=5))
    assert result.returncode == 0, result.stderr
    records = read_metrics(out)
    logs = [r for r in records if "loss" in r]
    phases = [r["phase"] for r in logs]
    assert phases.index("sparsify") < phases.index("ultra") < phases.index("restoration")
    assert {(r["attn_mode"], r["attn_window"]) for r in logs if r["phase"] == "ultra"} == {("blocksparse", 8)}
    assert {r["attn_mode"] for r in logs if r["phase"] == "sparsify"} == {"dense"}
    windows = [r["attn_window"] for r in logs if r["phase"] == "restoration"]  # widening back to dense
    assert windows == sorted(windows) and windows[0] == 8 and windows[-1] > 8
    assert max(r["sparsity"] for r in logs) == pytest.approx(0.9, abs=1e-3)
    assert logs[-1]["sparsity"] == 0.0  # the last update lands on final_sparsity
    evals = [r for r in records if "val_loss" in r]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 1.0  # it learns
    assert logs[-1]["flops_ratio"] < 0.8
    done = [line for line in result.stdout.splitlines() if line.startswith("done: ")]
    assert len(done) == 1 and f"{logs[-1]['flops_ratio']:.3f}x the dense model's" in done[0]


def test_fp8_head_trains_like_the_plain_head(workdir):
    """The FP8 output layer changes the loss only by its rounding: the same tiny MST run, through
    every phase, ends at nearly the same validation loss (evaluation uses the plain head)."""
    ends = {}
    for fp8_head in (False, True):
        out = workdir / f"out_{fp8_head}"
        result = run_subprocess(workdir, args_for(out, max_iters=60, sparsify_end=1 / 3, ultra_end=2 / 3,
                                                  update_interval=5, eval_interval=30, fp8_head=fp8_head))
        assert result.returncode == 0, result.stderr
        evals = [r["val_loss"] for r in read_metrics(out) if "val_loss" in r]
        assert evals[0] - evals[-1] > 1.0  # it learns
        ends[fp8_head] = evals[-1]
    assert ends[True] != ends[False] and abs(ends[True] - ends[False]) < 0.02


LEVERS = dict(density_lr_scaling=True, grown_adam_state="gradient", embedding_max_sparsity=1.0)


@pytest.mark.parametrize("levers", [{}, LEVERS], ids=["plain", "levers"])
def test_resume_is_bit_exact(workdir, monkeypatch, levers):
    straight, resumed = workdir / "straight", workdir / "resumed"
    run_in_process(monkeypatch, workdir, args_for(straight, **levers))
    # The same run killed during step 9, just after the update and phase change at step 8 ...
    run_in_process(monkeypatch, workdir, args_for(resumed, **levers), stop_at_optimizer_step=10)
    assert torch.load(resumed / "ckpt.pt", weights_only=True)["iter_num"] == 9
    # ... then resumed from its checkpoint, with no settings but where it is: it takes its own
    run_in_process(monkeypatch, workdir, ["--init_from=resume", f"--out_dir={resumed}"])
    a, b = train_losses(read_metrics(straight)), train_losses(read_metrics(resumed))
    assert sorted(a) == list(range(18))
    for step in range(18):
        assert a[step] == b[step], step  # exact, not approximately
    ca = torch.load(straight / "ckpt.pt", weights_only=True)
    cb = torch.load(resumed / "ckpt.pt", weights_only=True)
    assert ca["iter_num"] == cb["iter_num"] == 18
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    for k in ca["sparsity"]["masks"]:
        assert torch.equal(ca["sparsity"]["masks"][k], cb["sparsity"]["masks"][k])
    assert ca["flops"] == cb["flops"]
    if levers:  # a rate per mask group, and grown weights that start warm: the run is another one
        plain = workdir / "plain"
        run_in_process(monkeypatch, workdir, args_for(plain, embedding_max_sparsity=1.0))
        assert train_losses(read_metrics(plain))[17] != a[17]
        assert len(cb["optimizer"]["param_groups"]) > 2


def test_failed_save_leaves_previous_checkpoint(workdir, monkeypatch, capsys):
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out), stop_at_optimizer_step=10)
    before = torch.load(out / "ckpt.pt", weights_only=True)
    real_save, saves = torch.save, [0]

    def broken_save(obj, f, *a, **kw):
        saves[0] += 1
        if saves[0] >= 2:  # the save at step 18: write half a file, then the disk is full
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **kw)
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(monkeypatch, workdir, args_for(out, init_from="resume"))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: cannot save {out}/ckpt.pt: No space left on device; the previous checkpoint "
                     f"{out}/ckpt.pt is intact"]
    after = torch.load(out / "ckpt.pt", weights_only=True)
    assert after["iter_num"] == before["iter_num"] == 9
    assert all(torch.equal(after["model"][k], before["model"][k]) for k in before["model"])
    assert not os.path.exists(out / "ckpt.pt.tmp")


def test_non_finite_loss_stops_and_keeps_checkpoint(workdir, monkeypatch):
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out), stop_at_optimizer_step=10)
    before = torch.load(out / "ckpt.pt", weights_only=True)
    result = run_subprocess(workdir, args_for(out, init_from="resume", learning_rate="1e400", lr_schedule="constant",
                                              allow_changes_on_resume=True))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: loss became nan by step 10 (checked every log_interval steps); the last checkpoint, {out}/ckpt.pt "
        "at step 9, is intact"]
    after = torch.load(out / "ckpt.pt", weights_only=True)
    assert after["iter_num"] == 9
    assert all(torch.equal(after["model"][k], before["model"][k]) for k in before["model"])
    # a fresh run has none to keep, and says so (it once called a checkpoint that never was "untouched")
    fresh = workdir / "fresh"
    result = run_subprocess(workdir, args_for(fresh, learning_rate="1e400", lr_schedule="constant"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: loss became nan by step 1 (checked every log_interval steps); no checkpoint was saved yet"]
    assert sorted(os.listdir(fresh)) == ["metrics.jsonl"]


@pytest.mark.parametrize("overrides, message", [
    (["--lerning_rate=1e-3"], "unknown config key 'lerning_rate' (did you mean 'learning_rate'?)"),
    (["--EMBEDDING=lm_head.weight"], "unknown config key 'EMBEDDING'"),  # a constant train.py imports
    (["--max_iters=ten"], "'max_iters' must be int"),
    (["--peak_sparsity=1.0"], "peak_sparsity=1.0 must lie in [0, 1)"),
    (["--ultra_end=0.2"], "phase boundaries are fractions of max_iters and must satisfy"),
    (["--restore_end=1.5"], "phase boundaries are fractions of max_iters and must satisfy"),
    (["--warmup_iters=-1"], "must not be negative"), (["--density_lr_power=-0.5"], "density_lr_power must not be"),
    (["--lr_decay_start=1.5"], "lr_decay_start is a fraction of max_iters in [0, 1]"),
    (["--lr_schedule=linear"], "lr_schedule='linear' must be 'wsd', 'cosine' or 'constant'"),
    (["--lr_decay_iters=12"], "the rate would never decay: it is held until step 12 (lr_decay_start)"),
    (["--lr_decay_start=1.0"], "held until step 18 (lr_decay_start), where the decay should already be over (step 18"),
    (["--flops_budget=0.01"], "flops_budget=0.01: 4.822e+06 FLOPs are out of reach"),
    (["--embedding_max_sparsity=2.0"], "max_sparsity=2.0 of transformer.wte.weight must lie in [0, 1]"),
    (["--hsa_mode=sliding"], "unknown attention mode 'sliding'"),
    (["--hsa_phases=('warmup',)"], "hsa_phases has unknown phases ['warmup']"),
    (["--n_head=3"], "n_embd=32 must be divisible by n_head=3"),
    (["--update_interval=0"], "update_interval=0 must be a positive"),
    (["--grow_mode=magnitude"], "grow_mode='magnitude' must be one of"),
    (["--sparsity_distribution=er"], "unknown sparsity distribution 'er'"),
    (["--attn_window=12"], "must be multiples of attn_block"),
    (["--attn_stride=64"], "must lie in [1, block_size=32]"),
    (["--dataset=missing"], "data/missing/train.bin not found"),
    (["--dataset=empty"], "data/empty/train.bin holds 0 tokens"),
    (["--init_from=resume"], "ckpt.pt does not exist"),
    (["no_such_config.py"], "config file 'no_such_config.py' not found"),
    (["--dataset=wide_ids"], "train.bin holds token id 300, outside the model's vocabulary of 256 ids"),
    (["--vocab_size=100"], "train.bin holds token id 255, outside the model's vocabulary of 100 ids"),
    (["--learning_rate=-1"], "0 <= min_lr <= learning_rate"), (["--beta1=1.5"], "beta1=1.5 must lie in [0, 1)"),
    (["--dropout=2.0"], "dropout=2.0 must lie in [0, 1)"), (["--dtype=garbage"], "dtype='garbage' must be"),
    (["--dtype=float16"], "gradient scaler"), (["--min_lr=1.0"], "0 <= min_lr <= learning_rate"),
    (["--flops_budget=5"], "flops_budget=5 is neither a share"),
])
def test_bad_input_is_one_line_before_training(workdir, overrides, message):
    os.makedirs(workdir / "data" / "empty")
    for split in ("train", "val"):
        open(workdir / "data" / "empty" / f"{split}.bin", "wb").close()
    make_toy_data(workdir, name="wide_ids")  # a train.bin with one id past the model's 256
    ids = np.fromfile(workdir / "data" / "wide_ids" / "train.bin", dtype=np.uint16)
    ids[31_000] = 300
    ids.tofile(workdir / "data" / "wide_ids" / "train.bin")
    result = run_subprocess(workdir, args_for(workdir / "out") + overrides)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not os.path.exists(workdir / "out")  # nothing written
    assert not os.path.exists(workdir / "out")  # nothing ran, nothing was created


def test_what_the_cpu_ignores_and_a_long_warm_up_are_said(workdir, monkeypatch, capsys):
    # bf16 and torch.compile are for CUDA: on the CPU the run is float32 and eager, and says so; a
    # warm-up of 2 of 6 steps is a third of the run
    run_in_process(monkeypatch, workdir, args_for(workdir / "out", max_iters=6, eval_interval=3, dtype="bfloat16",
                                                  compile=True))
    lines = capsys.readouterr().out.splitlines()
    assert "note: on the CPU runs are float32 and uncompiled: dtype='bfloat16' and compile=True ignored" in lines
    assert "warning: the warm-up takes 2 of the 6 steps (warmup_iters counts steps: shorten it too)" in lines
    assert torch.load(workdir / "out" / "ckpt.pt", weights_only=True)["config"]["dtype"] == "float32"  # what ran
    run_in_process(monkeypatch, workdir, args_for(workdir / "quiet", max_iters=20, eval_interval=10))  # 2 of 20
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith(("note:", "warning:"))]


def test_fp8_head_without_fp8_is_one_line(workdir, monkeypatch, capsys):
    import runtime
    monkeypatch.setattr(runtime, "has_fp8", lambda device: False)  # as on a GPU older than Ada
    with pytest.raises(SystemExit) as exit_:
        run_in_process(monkeypatch, workdir, args_for(workdir / "out", fp8_head=True))
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and "set fp8_head=False" in lines[0]
    assert not os.path.exists(workdir / "out")


def test_resume_with_another_shape_or_schedule_is_refused(workdir, monkeypatch):
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out), stop_at_optimizer_step=10)
    for override, message in (("--n_embd=64", "n_embd=64 differs from the checkpoint's n_embd=32"),
                              ("--block_size=64", "block_size=64 differs from the checkpoint's block_size=32"),
                              ("--max_iters=30", "max_iters=30 differs from the checkpoint's max_iters=18"),
                              ("--ultra_end=0.5", "ultra_end=0.5 differs from the checkpoint's ultra_end=0.66"),
                              ("--peak_sparsity=0.8", "peak_sparsity=0.8 differs")):
        result = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={out}", override])
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
        assert "--allow_changes_on_resume=True" in lines[0]
    # said to be intended, a schedule change goes through; a shape change still cannot load, in one line
    result = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={out}", "--max_iters=20",
                                      "--allow_changes_on_resume=True"])
    assert result.returncode == 0, result.stderr
    assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 20
    result = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={out}", "--n_embd=64", "--max_iters=22",
                                      "--allow_changes_on_resume=True"])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot resume from" in result.stderr  # which weight, and both shapes; not a line cut at its colon
    assert ("size mismatch for transformer.wte.weight: copying a param with shape torch.Size([256, 32]) from "
            "checkpoint, the shape in current model is torch.Size([256, 64])") in result.stderr, result.stderr
    # I/O settings may change without asking
    result = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={out}", "--max_iters=20",
                                      "--allow_changes_on_resume=True", "--log_interval=5", "--eval_interval=4"])
    assert result.returncode == 0, result.stderr
    # and so may fp8_head, a speed setting (a run moved to a GPU without FP8 can turn it off)
    result = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={out}", "--fp8_head=True"])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("old_keys, schedule", [
    ({}, "cosine"),  # before any of the keys: one cosine from the warm-up
    ({"hold_lr_until_restoration": False, "restore_lr": 0.0}, "cosine"),
    ({"hold_lr_until_restoration": True, "restore_lr": 0.0}, "wsd"),  # held until ultra_end
    ({"decay_lr": False}, "constant"),
])
def test_a_checkpoint_from_before_lr_schedule_resumes_with_the_rate_it_had(workdir, monkeypatch, old_keys, schedule):
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out), stop_at_optimizer_step=10)
    checkpoint = torch.load(out / "ckpt.pt", weights_only=True)
    for key in ("lr_schedule", "lr_decay_start"):
        del checkpoint["config"][key]
    checkpoint["config"].update(old_keys)
    torch.save(checkpoint, out / "ckpt.pt")
    run_in_process(monkeypatch, workdir, ["--init_from=resume", f"--out_dir={out}"])
    lr = {r["step"]: r["lr"] for r in read_metrics(out) if "loss" in r}
    cosine = lambda t, start: 3e-4 + 0.5 * (1 + math.cos(math.pi * (t - start) / (18 - start))) * (3e-3 - 3e-4)
    expected = {"cosine": cosine(10, 2), "wsd": 3e-3, "constant": 3e-3}[schedule]
    assert lr[10] == pytest.approx(expected)
    assert lr[13] == pytest.approx({"cosine": cosine(13, 2), "wsd": cosine(13, 12), "constant": 3e-3}[schedule])


def test_a_checkpoint_that_rewarms_the_rate_is_refused_in_one_line(workdir, monkeypatch):
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out), stop_at_optimizer_step=10)
    checkpoint = torch.load(out / "ckpt.pt", weights_only=True)
    del checkpoint["config"]["lr_schedule"]
    checkpoint["config"].update(hold_lr_until_restoration=False, restore_lr=1e-3)
    torch.save(checkpoint, out / "ckpt.pt")
    result = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={out}"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "restore_lr" in lines[0], result.stderr


def test_resume_from_a_broken_checkpoint_is_one_line_and_changes_nothing(workdir, monkeypatch):
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out), stop_at_optimizer_step=10)
    data = (out / "ckpt.pt").read_bytes()
    (out / "ckpt.pt").write_bytes(data[: len(data) // 2])  # a copy cut short
    before = sorted(os.listdir(out))
    result = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={out}"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "is not a checkpoint" in lines[0], result.stderr
    assert sorted(os.listdir(out)) == before
    # a resume from a folder that does not exist creates nothing
    result = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={workdir / 'nowhere'}"])
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not os.path.exists(workdir / "nowhere")


def test_log_lines_progress_checkpoints_and_what_next(workdir):
    result = run_subprocess(workdir, args_for("out", keep_checkpoints=(5,), log_interval=3))  # as a user types it
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert max(len(line) for line in lines) <= 150, max(lines, key=len)
    iters = [line for line in lines if line.startswith("iter ")]
    assert iters[0].startswith("iter 0/18: ") and iters[-1].startswith("iter 17/18: ")
    assert iters[-1].endswith(", eta 0:00")
    assert "saved out/ckpt.pt (step 9)" in lines and "saved out/ckpt_5.pt (step 5, kept)" in lines
    assert torch.load(workdir / "out" / "ckpt_5.pt", weights_only=True)["iter_num"] == 5
    done = lines.index(next(line for line in lines if line.startswith("done: ")))
    assert lines[done + 1] == "  checkpoint: out/ckpt.pt"
    assert f"python {os.path.join(REPO, 'sample.py')}" in lines[done + 2]  # run from outside the project
    assert "evaluate.py" in lines[done + 3] and "plot.py" in lines[done + 4]
    header = read_metrics(workdir / "out")[0]
    assert header["run"]["max_iters"] == 18 and header["params"] > 0 and header["train_tokens"] == 36_000
    dense = run_subprocess(workdir, args_for(workdir / "dense", mst=False))
    done_line = next(line for line in dense.stdout.splitlines() if line.startswith("done: "))
    assert "dense model" not in done_line and "MST" not in done_line and "training FLOPs" in done_line


def test_a_short_run_of_any_config_follows_max_iters(workdir):
    # phase boundaries are fractions, and lr_decay_iters=0 means max_iters: one flag shortens the run
    out = workdir / "out"
    result = run_subprocess(workdir, args_for(out, max_iters=10, update_interval=1))
    assert result.returncode == 0, result.stderr
    logs = [r for r in read_metrics(out) if "loss" in r]
    assert [r["phase"] for r in logs] == ["sparsify"] * 4 + ["ultra"] * 3 + ["restoration"] * 3
    assert logs[-1]["lr"] < logs[7]["lr"] and logs[-1]["sparsity"] == 0.0


@pytest.mark.parametrize("schedule", ["wsd", "cosine", "constant"])
def test_every_lr_schedule_by_hand(workdir, schedule):
    # warm-up over 2 steps, then: wsd holds to lr_decay_start (step 9 of 18) and decays by cosine to
    # min_lr at step 18; cosine decays from the warm-up's end; constant never moves. MST or dense alike.
    for mst in (True, False):
        out = workdir / f"{schedule}_{mst}"
        args = args_for(out, lr_schedule=schedule, lr_decay_start=0.5, mst=mst)
        assert run_subprocess(workdir, args).returncode == 0
        lr = {r["step"]: r["lr"] for r in read_metrics(out) if "loss" in r}
        start = {"wsd": 9, "cosine": 2}.get(schedule)
        for t in range(18):
            if schedule == "constant":
                expected = 3e-3
            elif t < 2:
                expected = 3e-3 * (t + 1) / 3
            else:
                progress = max(0, t - start) / (18 - start)
                expected = 3e-4 + 0.5 * (1 + math.cos(math.pi * progress)) * (3e-3 - 3e-4)
            assert lr[t] == pytest.approx(expected), (schedule, mst, t)


def test_flops_budget_solves_the_peak_sparsity_and_the_plan_is_what_the_run_counts(workdir):
    out = workdir / "out"
    result = run_subprocess(workdir, args_for(out, flops_budget=0.6))
    assert result.returncode == 0, result.stderr
    header, *records = read_metrics(out)
    peak = header["run"]["peak_sparsity"]
    assert 0.0 < peak < 0.999 and peak != TINY["peak_sparsity"]
    final = records[-1]
    assert final["step"] == 18 and final["flops"] / final["flops_dense"] == pytest.approx(0.6, abs=0.01)
    plan = next(line for line in result.stdout.splitlines() if line.startswith("planned training FLOPs: "))
    assert plan.split()[3] == f"{final['flops']:.4g}" and f"at peak sparsity {peak:g}" in plan
    # an absolute budget: the FLOPs of that run
    result = run_subprocess(workdir, args_for(workdir / "abs", flops_budget=final["flops"]))
    assert result.returncode == 0 and read_metrics(workdir / "abs")[0]["run"]["peak_sparsity"] == pytest.approx(peak)


def assert_same_run(one, many, steps=18, rel=2e-5):
    """The runs in out_dirs `one` and `many` logged the same losses, their evaluations' included, and
    ended with the same masks."""
    a, b = train_losses(read_metrics(one)), train_losses(read_metrics(many))
    assert sorted(a) == sorted(b) == list(range(steps))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=rel), step
    a, b = ({r["step"]: (r["train_loss"], r["val_loss"]) for r in read_metrics(d) if "val_loss" in r}
            for d in (one, many))
    assert sorted(a) == sorted(b) and len(a) > 1
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=rel), step
    ca = torch.load(os.path.join(one, "ckpt.pt"), weights_only=True)
    cb = torch.load(os.path.join(many, "ckpt.pt"), weights_only=True)
    for k in ca["sparsity"]["masks"]:
        assert torch.equal(ca["sparsity"]["masks"][k], cb["sparsity"]["masks"][k])


# Two processes of batch_size 4 see the batches of one of batch_size 8, as the README's two-process command
# and the default job: 16 sequences a step, an evaluation batch of 8.
ONE_PROCESS, TWO_PROCESSES = dict(batch_size=8, gradient_accumulation_steps=2), dict(batch_size=4,
                                                                                     gradient_accumulation_steps=4)


@pytest.mark.parametrize("fp8_head", [False, True])
def test_ddp_two_processes_match_one_and_keep_masks_identical(workdir, fp8_head):
    # The same global batch on one process and on two, evaluated alike; random growing too.
    common = dict(grow_mode="mixed", eval_interval=9, update_interval=2, fp8_head=fp8_head)
    one = run_subprocess(workdir, args_for(workdir / "one", **common, **ONE_PROCESS))
    two = run_subprocess(workdir, args_for(workdir / "two", **common, **TWO_PROCESSES), nproc=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr  # train.py checks mask checksums across ranks at every update
    # Gradients summed in another order move an FP8 value across a rounding step now and then, and the
    # runs drift apart: by 2e-4 within 18 steps on some CPUs, where fp32 ones stay below 2e-5. A batch
    # split or averaged wrongly is off by 1e-2 or more.
    assert_same_run(workdir / "one", workdir / "two", rel=1e-3 if fp8_head else 2e-5)


def test_a_resumed_run_plans_the_flops_it_will_count(workdir):
    """Extending a finished run: the plan counts what is done plus what the new schedule adds, from the
    masks the run has, and the run ends on exactly that count."""
    out = workdir / "out"
    assert run_subprocess(workdir, args_for(out)).returncode == 0
    result = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={out}", "--max_iters=30",
                                      "--allow_changes_on_resume=True"])
    assert result.returncode == 0, result.stderr
    planned = re.search(r"planned training FLOPs: (\S+) = (\S+)x", result.stdout)
    done = re.search(r"training FLOPs (\S+) = (\S+)x the dense model's", result.stdout.split("done: ")[1])
    assert planned.groups() == (f"{float(done.group(1)):.4g}", done.group(2))
    # the time it reports is this process's, which it says (it counted the run's first 18 steps as not there)
    assert re.search(r"^done: val loss \d\.\d{4} after 30 steps in \d+:\d\d \(this process, from step 18\); ",
                     result.stdout, re.M), result.stdout


def test_the_closing_hints_run_from_where_train_py_ran(workdir):
    """Run from outside the project's folder, the commands the run suggests name its scripts by a path
    that works from there."""
    out = workdir / "out"
    result = run_subprocess(workdir, args_for(out, max_iters=6, eval_interval=3))
    assert result.returncode == 0, result.stderr
    hints = [line.split("next:")[-1].strip() for line in result.stdout.split("  next: ")[1].splitlines()][:3]
    assert hints[0].startswith(f"python {os.path.join(REPO, 'sample.py')} ")
    evaluate = hints[1].replace("python ", f"{sys.executable} ", 1)
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=os.path.join(workdir, "data"))
    ran = subprocess.run(evaluate, shell=True, cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    assert ran.returncode == 0 and "val loss" in ran.stdout, ran.stderr


FAKE_WANDB = '''
import json, os
calls = []
def record(*call):
    calls.append(call)
    with open(os.environ["FAKE_WANDB_CALLS"], "w") as f:
        json.dump(calls, f)
def init(**kw): record("init", kw)
def log(data, step): record("log", data, step)
def finish(): record("finish")
'''


def test_wandb_log_sends_the_metrics_records(workdir):
    """With a stand-in wandb module: one run named after its out_dir, every number of every metrics
    record at its step, and a finish. wandb itself is no dependency: the stand-in proves the calls."""
    (workdir / "fake").mkdir()
    (workdir / "fake" / "wandb.py").write_text(FAKE_WANDB)
    out = workdir / "runs" / "tiny"
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(workdir / "data"), PYTHONPATH=str(workdir / "fake"),
               FAKE_WANDB_CALLS=str(workdir / "calls.json"))
    command = [sys.executable, TRAIN, *args_for(out, max_iters=6, eval_interval=3, wandb_log=True)]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    calls = json.load(open(workdir / "calls.json"))
    (_, init), *logs, finish = calls
    assert init["project"] == "runs" and init["name"] == "tiny" and init["config"]["max_iters"] == 6
    assert init["dir"] == str(out) and finish == ["finish"]
    records = [r for r in read_metrics(out) if "step" in r]
    assert [(step, data) for _, data, step in logs] == [
        (r["step"], {k: v for k, v in r.items() if isinstance(v, (int, float))}) for r in records]


def test_wandb_log_without_wandb_is_one_line(workdir):
    (workdir / "fake").mkdir()
    (workdir / "fake" / "wandb.py").write_text("raise ImportError('No module named wandb')\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(workdir / "data"), PYTHONPATH=str(workdir / "fake"))
    out = workdir / "out"
    result = subprocess.run([sys.executable, TRAIN, *args_for(out, wandb_log=True)], cwd=workdir,
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: wandb_log=True needs the wandb package, which this Python lacks: pip install wandb"]
    assert not out.exists()


def test_wandb_log_with_wandb_itself_offline(workdir):
    wandb = pytest.importorskip("wandb")  # not among the requirements: where it is installed
    out = workdir / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(workdir / "data"), WANDB_MODE="offline",
               PYTHONPATH=os.path.dirname(os.path.dirname(wandb.__file__)))
    result = subprocess.run([sys.executable, TRAIN, *args_for(out, max_iters=6, eval_interval=3, wandb_log=True)],
                            cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [p for p in os.listdir(out / "wandb") if p.startswith("offline-run-")]
