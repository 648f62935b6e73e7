"""train.py end to end on the CPU: the three phases, exact resume, safe checkpoints, bad input,
non-finite losses, and DDP through torchrun with gloo."""

import json
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "train.py")

# A tiny model that still passes through warm-up, ultra (with HSA) and restoration.
TINY = dict(dataset="toy", n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=256, batch_size=4,
            gradient_accumulation_steps=1, learning_rate=3e-3, min_lr=3e-4, warmup_iters=2,
            max_iters=18, lr_decay_iters=18, sparsify_end=8, ultra_end=12, restore_end=18, update_interval=4,
            eval_interval=9, eval_iters=2, log_interval=1, attn_block=8, attn_window=8, attn_stride=16,
            hsa_mode="blocksparse", grow_mode="mixed")


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
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def run_in_process(monkeypatch, cwd, args, stop_at_optimizer_step=None):
    """Run train.py in this process; optionally die like a killed job at an optimizer step."""
    monkeypatch.chdir(cwd)
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
    result = run_subprocess(workdir, args_for(out, max_iters=60, lr_decay_iters=60, sparsify_end=20,
                                              ultra_end=40, restore_end=60, update_interval=5, eval_interval=30,
                                              log_interval=5))
    assert result.returncode == 0, result.stderr
    records = read_metrics(out)
    logs = [r for r in records if "loss" in r]
    phases = [r["phase"] for r in logs]
    assert phases.index("warmup") < phases.index("ultra") < phases.index("restoration")
    assert {r["attn_mode"] for r in logs if r["phase"] == "ultra"} == {"blocksparse"}
    assert {r["attn_mode"] for r in logs if r["phase"] != "ultra"} == {"dense"}
    assert max(r["sparsity"] for r in logs) == pytest.approx(0.9, abs=1e-3)
    evals = [r for r in records if "val_loss" in r]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 1.0  # it learns
    assert logs[-1]["flops_ratio"] < 0.8
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.startswith("done: val loss") and f"{logs[-1]['flops_ratio']:.3f}" in last_line


def test_resume_is_bit_exact(workdir, monkeypatch):
    straight, resumed = workdir / "straight", workdir / "resumed"
    run_in_process(monkeypatch, workdir, args_for(straight))
    # The same run killed during step 9, just after the update and phase change at step 8 ...
    run_in_process(monkeypatch, workdir, args_for(resumed), stop_at_optimizer_step=10)
    assert torch.load(resumed / "ckpt.pt", weights_only=True)["iter_num"] == 9
    # ... then resumed from its checkpoint
    run_in_process(monkeypatch, workdir, args_for(resumed, init_from="resume"))
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
    assert ca["flops_mst"] == cb["flops_mst"]


def test_failed_save_leaves_previous_checkpoint(workdir, monkeypatch):
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out), stop_at_optimizer_step=10)
    before = torch.load(out / "ckpt.pt", weights_only=True)
    real_save, saves = torch.save, [0]

    def broken_save(obj, f, *a, **kw):
        saves[0] += 1
        if saves[0] >= 2:  # the save at step 18: write half a file, then the machine "dies"
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError("disk full")
        return real_save(obj, f, *a, **kw)
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        run_in_process(monkeypatch, workdir, args_for(out, init_from="resume"))
    after = torch.load(out / "ckpt.pt", weights_only=True)
    assert after["iter_num"] == before["iter_num"] == 9
    assert all(torch.equal(after["model"][k], before["model"][k]) for k in before["model"])
    assert not os.path.exists(out / "ckpt.pt.tmp")


def test_non_finite_loss_stops_and_keeps_checkpoint(workdir, monkeypatch):
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out), stop_at_optimizer_step=10)
    before = torch.load(out / "ckpt.pt", weights_only=True)
    result = run_subprocess(workdir, args_for(out, init_from="resume", learning_rate="1e400", decay_lr=False))
    assert result.returncode != 0
    assert "loss became nan by step 10" in result.stderr and "Traceback" not in result.stderr
    after = torch.load(out / "ckpt.pt", weights_only=True)
    assert after["iter_num"] == 9
    assert all(torch.equal(after["model"][k], before["model"][k]) for k in before["model"])


@pytest.mark.parametrize("overrides, message", [
    (["--lerning_rate=1e-3"], "unknown config key 'lerning_rate' (did you mean 'learning_rate'?)"),
    (["--max_iters=ten"], "'max_iters' must be int"),
    (["--peak_sparsity=1.0"], "peak_sparsity=1.0 must lie in [0, 1)"),
    (["--ultra_end=5"], "phase boundaries must satisfy"),
    (["--restore_end=19"], "phase boundaries must satisfy"),
    (["--update_interval=0"], "update_interval=0 must be a positive"),
    (["--grow_mode=magnitude"], "grow_mode='magnitude' must be one of"),
    (["--sparsity_distribution=er"], "unknown sparsity distribution 'er'"),
    (["--attn_window=12"], "must be multiples of attn_block"),
    (["--attn_stride=64"], "must lie in [1, block_size=32]"),
    (["--dataset=missing"], "data/missing/train.bin not found"),
    (["--dataset=empty"], "data/empty/train.bin holds 0 tokens"),
    (["--init_from=resume"], "ckpt.pt does not exist"),
    (["no_such_config.py"], "config file 'no_such_config.py' not found"),
])
def test_bad_input_is_one_line_before_training(workdir, overrides, message):
    os.makedirs(workdir / "data" / "empty")
    for split in ("train", "val"):
        open(workdir / "data" / "empty" / f"{split}.bin", "wb").close()
    result = run_subprocess(workdir, args_for(workdir / "out") + overrides)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not os.path.exists(workdir / "out" / "metrics.jsonl")  # nothing ran


def test_resume_with_another_shape_is_refused(workdir, monkeypatch):
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out), stop_at_optimizer_step=10)
    for override, message in (("--n_embd=64", "checkpoint has n_embd=32"),
                              ("--block_size=64", "block_size=64 differs from the checkpoint's 32")):
        result = run_subprocess(workdir, args_for(out, init_from="resume") + [override, "--attn_stride=16"])
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_config_file_typo_fails(workdir):
    with open(workdir / "typo.py", "w") as f:
        f.write("batch_size = 4\nmax_itres = 10\n")
    result = run_subprocess(workdir, ["typo.py"])
    assert result.returncode == 2
    assert "typo.py: unknown config key 'max_itres' (did you mean 'max_iters'?)" in result.stderr


def test_ddp_two_processes_match_one_and_keep_masks_identical(workdir):
    # The same global batch (4 micro-batches of 4) on one process and on two; random growing too.
    common = dict(gradient_accumulation_steps=4, grow_mode="mixed", eval_interval=18, update_interval=2)
    one = run_subprocess(workdir, args_for(workdir / "one", **common))
    two = run_subprocess(workdir, args_for(workdir / "two", **common), nproc=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr  # train.py checks mask checksums across ranks at every update
    a, b = train_losses(read_metrics(workdir / "one")), train_losses(read_metrics(workdir / "two"))
    assert sorted(a) == sorted(b) == list(range(18))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=2e-5), step
    ca = torch.load(workdir / "one" / "ckpt.pt", weights_only=True)
    cb = torch.load(workdir / "two" / "ckpt.pt", weights_only=True)
    for k in ca["sparsity"]["masks"]:
        assert torch.equal(ca["sparsity"]["masks"][k], cb["sparsity"]["masks"][k])
