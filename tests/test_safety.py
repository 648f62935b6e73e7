"""Safe by default (issue 24): no run replaces another, a signal stops a run with a checkpoint it
resumes from exactly (under DDP too), a failed save keeps the previous checkpoint, and the log
lines are short, with an ETA that leaves out the slow first steps."""

import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import runtime
from test_train import (TRAIN, args_for, make_toy_data, read_metrics, run_in_process, run_subprocess,
                        train_losses)


@pytest.fixture
def workdir(tmp_path):
    make_toy_data(tmp_path)
    return tmp_path


def exit_code(monkeypatch, cwd, args):
    """Run train.py in this process; the code it exits with (0 when it returns)."""
    try:
        run_in_process(monkeypatch, cwd, args)
    except SystemExit as e:
        return e.code
    return 0


def signal_at_optimizer_step(monkeypatch, step, *signums):
    """Send this process the signals during the step-th optimizer step, as a user or a scheduler would."""
    real_step, calls = torch.optim.AdamW.step, [0]

    def step_with_signals(self, *a, **kw):
        calls[0] += 1
        if calls[0] == step:
            for signum in signums:
                os.kill(os.getpid(), signum)  # its handler runs before os.kill returns
        return real_step(self, *a, **kw)
    monkeypatch.setattr(torch.optim.AdamW, "step", step_with_signals)


def snapshot(out_dir):
    return {path.name: path.read_bytes() for path in sorted(out_dir.iterdir())}


def steps_once(records):
    """Each step's evaluation and log record at most once: no step of a run recorded twice."""
    evals = [r["step"] for r in records if "val_loss" in r]
    logs = [r["step"] for r in records if "loss" in r]
    return len(evals) == len(set(evals)) and len(logs) == len(set(logs))


def test_a_fresh_run_never_replaces_another(workdir, monkeypatch, capsys):
    out = workdir / "out"
    assert exit_code(monkeypatch, workdir, args_for(out, max_iters=6, eval_interval=3, keep_checkpoints=(3,))) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert exit_code(monkeypatch, workdir, args_for(out, max_iters=6)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out} already holds a run (ckpt.pt, ckpt_3.pt)"), err
    # run from outside the project's folder: train.py by the path that works there
    assert f"python {TRAIN} --init_from=resume --out_dir={out}" in err[0] and "--overwrite=True" in err[0]
    assert snapshot(out) == before  # not one byte changed
    # said to be intended, the new run replaces the old one whole: one header, no old kept checkpoint
    assert exit_code(monkeypatch, workdir, args_for(out, max_iters=4, eval_interval=2, overwrite=True)) == 0
    assert sorted(os.listdir(out)) == ["ckpt.pt", "metrics.jsonl"]
    records = read_metrics(out)
    assert [r["run"]["max_iters"] for r in records if "run" in r] == [4]
    assert sorted(train_losses(records)) == [0, 1, 2, 3]


def test_resume_keeps_each_step_once_and_a_finished_run_is_left_alone(workdir, monkeypatch, capsys):
    straight, resumed = workdir / "straight", workdir / "resumed"
    run_in_process(monkeypatch, workdir, args_for(straight))
    # killed in step 12: the checkpoint is from step 9, the log already holds steps 9-11
    run_in_process(monkeypatch, workdir, args_for(resumed), stop_at_optimizer_step=13)
    assert max(train_losses(read_metrics(resumed))) == 11
    run_in_process(monkeypatch, workdir, ["--init_from=resume", f"--out_dir={resumed}"])
    a, b = read_metrics(straight), read_metrics(resumed)
    assert steps_once(b)
    assert train_losses(a) == train_losses(b)
    assert [r for r in a if "val_loss" in r] == [r for r in b if "val_loss" in r]
    assert [r["resumed_at"] for r in b if "run" in r] == [0, 9]
    # resuming a finished run says so, exits 0 and touches nothing
    before = snapshot(resumed)
    capsys.readouterr()
    assert exit_code(monkeypatch, workdir, ["--init_from=resume", f"--out_dir={resumed}"]) == 0
    assert capsys.readouterr().out == f"{resumed}/ckpt.pt is at step 18 of 18: the run is finished, nothing to do\n"
    assert snapshot(resumed) == before
    # a finished run extended on purpose goes on under the new schedule, which it says, and its
    # records stay one per step: the step-18 evaluation is the extended run's
    assert exit_code(monkeypatch, workdir, ["--init_from=resume", f"--out_dir={resumed}", "--max_iters=24",
                                            "--allow_changes_on_resume=True"]) == 0
    assert "resuming at step 18, in the restoration phase, with max_iters=24 (was 18)" in capsys.readouterr().out
    records = read_metrics(resumed)
    assert steps_once(records) and max(train_losses(records)) == 23
    assert records[[i for i, r in enumerate(records) if "run" in r][-1]]["changed"] == {"max_iters": [18, 24]}
    assert [r for r in records if "val_loss" in r and r["step"] < 18] == [r for r in a if "val_loss" in r][:2]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGUSR1, 138)])
def test_a_signal_stops_after_the_step_with_a_checkpoint(workdir, monkeypatch, capsys, signum, code):
    out = workdir / "out"
    signal_at_optimizer_step(monkeypatch, 6, signum)  # during step 5
    assert exit_code(monkeypatch, workdir, args_for(out)) == code
    assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 6
    stdout = capsys.readouterr().out.splitlines()
    name = signal.Signals(signum).name
    assert stdout[-2:] == [f"saved {out}/ckpt.pt (step 6, stopped by {name})",
                           f"go on with: python {TRAIN} --init_from=resume --out_dir={out}"]
    assert max(train_losses(read_metrics(out))) == 5


def test_a_stopped_run_resumes_bit_exactly(workdir, monkeypatch):
    straight, stopped = workdir / "straight", workdir / "stopped"
    run_in_process(monkeypatch, workdir, args_for(straight))
    signal_at_optimizer_step(monkeypatch, 11, signal.SIGTERM)  # in step 10, between the evaluations at 9 and 18
    assert exit_code(monkeypatch, workdir, args_for(stopped)) == 143
    run_in_process(monkeypatch, workdir, ["--init_from=resume", f"--out_dir={stopped}"])
    a, b = read_metrics(straight), read_metrics(stopped)
    assert steps_once(b) and train_losses(a) == train_losses(b)  # exact, not approximately
    ca, cb = (torch.load(d / "ckpt.pt", weights_only=True) for d in (straight, stopped))
    assert ca["iter_num"] == cb["iter_num"] == 18
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    assert all(torch.equal(ca["sparsity"]["masks"][k], cb["sparsity"]["masks"][k]) for k in ca["sparsity"]["masks"])


# train.py in a process of its own, which a second Ctrl-C ends at once (os._exit): Ctrl-C in optimizer
# step STEP - 1, then again in that step ("step") or once the stop's save has written part of its file
# ("save"), as a user who presses it twice, a moment apart, would.
CTRL_C_TWICE = """
import os, runpy, signal, sys, torch
train, step, again = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_step, real_save, steps = torch.optim.AdamW.step, torch.save, [0]

def step_with_ctrl_c(self, *a, **kw):
    steps[0] += 1
    if steps[0] == step:
        os.kill(os.getpid(), signal.SIGINT)
        if again == "step":
            os.kill(os.getpid(), signal.SIGINT)
    return real_step(self, *a, **kw)

class CtrlCMidWrite:  # the checkpoint's file, through which torch.save writes
    def __init__(self, f):
        self.f, self.writes = f, 0
    def write(self, data):
        self.writes += 1
        if self.writes == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return self.f.write(data)
    def flush(self):
        self.f.flush()

def save(obj, f, *a, **kw):
    return real_save(obj, CtrlCMidWrite(f) if again == "save" and steps[0] >= step else f, *a, **kw)

torch.optim.AdamW.step, torch.save = step_with_ctrl_c, save
sys.argv, sys.path[0] = [train, *sys.argv[4:]], os.path.dirname(train)  # as `python train.py` has them
runpy.run_path(train, run_name="__main__")
"""


@pytest.mark.parametrize("step, again, kept", [(12, "step", 9), (4, "step", None), (12, "save", 9)],
                         ids=["in-a-step", "before-any-save", "in-the-save"])
def test_a_second_ctrl_c_stops_at_once(workdir, step, again, kept):
    """Exit 130 at once with one line, no traceback, no half-written checkpoint left; the last checkpoint
    (from step 9, or none before it) stays. In the save it once ended in a traceback of torch's zip
    writer, with exit status 1."""
    out = workdir / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(workdir / "data"))
    result = subprocess.run([sys.executable, "-c", CTRL_C_TWICE, TRAIN, str(step), again, *args_for(out)],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 130, result.stderr
    kept_line = f"the last checkpoint in {out} is intact" if kept else "no checkpoint was saved yet"
    assert result.stderr.splitlines()[-2:] == [
        "SIGINT: stopping after this step to save a checkpoint (Ctrl-C again stops at once)",
        f"interrupted again: stopped at once; {kept_line}"], result.stderr
    assert "saved" not in result.stdout.splitlines()[-1]  # no save on the way out
    assert sorted(os.listdir(out)) == (["ckpt.pt", "metrics.jsonl"] if kept else ["metrics.jsonl"])  # no .tmp
    if kept:
        assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == kept


def test_an_out_dir_that_cannot_be_written_stops_in_one_line(workdir):
    # a file where the folder would go; a place where no folder can be made, even by root
    (workdir / "taken").write_text("a file")
    for out_dir, reason in ((workdir / "taken", "File exists"), ("/proc/mst_run", "No such file or directory")):
        result = run_subprocess(workdir, args_for(out_dir))
        assert result.returncode == 2 and result.stderr.splitlines() == [
            f"error: cannot write to out_dir {out_dir}: {reason}"], result.stderr
    assert (workdir / "taken").read_text() == "a file"


def test_under_ddp_a_signal_to_one_rank_stops_all_at_the_same_step(workdir):
    """Two gloo processes; only rank 1 is told to stop. Rank 0 saves once, both leave, and the run
    resumes to the very losses and weights of one that was never stopped."""
    common = dict(gradient_accumulation_steps=2, max_iters=40, eval_interval=20, update_interval=2)
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(workdir / "data"))
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", TRAIN]
    stopped_dir, straight_dir = workdir / "stopped", workdir / "straight"
    stopped, straight = (subprocess.Popen(launch + args_for(out, **common), cwd=workdir, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                         for out in (stopped_dir, straight_dir))  # side by side, to save time
    deadline = time.time() + 120
    while not (os.path.exists(stopped_dir / "metrics.jsonl") and
               max(train_losses(read_metrics(stopped_dir)), default=-1) >= 2):
        assert stopped.poll() is None and time.time() < deadline, stopped.communicate()
        time.sleep(0.005)
    workers = subprocess.run(["pgrep", "-P", str(stopped.pid)], capture_output=True, text=True).stdout.split()
    rank1 = [int(pid) for pid in workers if b"RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")]
    assert len(rank1) == 1, workers
    os.kill(rank1[0], signal.SIGUSR1)
    stdout, stderr = stopped.communicate(timeout=120)
    assert straight.wait(timeout=120) == 0, straight.communicate()
    assert stopped.returncode != 0 and "Traceback" not in stdout
    saves = [line for line in stdout.splitlines() if "stopped by SIGUSR1" in line]
    assert len(saves) == 1, stdout + stderr  # rank 0 saved, once
    stop_step = torch.load(stopped_dir / "ckpt.pt", weights_only=True)["iter_num"]
    assert saves[0] == f"saved {stopped_dir}/ckpt.pt (step {stop_step}, stopped by SIGUSR1)" and stop_step < 40
    assert "go on with: torchrun ... train.py --init_from=resume" in stdout
    resumed = run_subprocess(workdir, ["--init_from=resume", f"--out_dir={stopped_dir}"], nproc=2)
    assert resumed.returncode == 0, resumed.stderr
    a, b = read_metrics(straight_dir), read_metrics(stopped_dir)
    assert steps_once(b) and train_losses(a) == train_losses(b)
    ca, cb = (torch.load(d / "ckpt.pt", weights_only=True) for d in (straight_dir, stopped_dir))
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    path = str(tmp_path / "ckpt.pt")
    runtime.save_checkpoint({"iter_num": 3, "weights": torch.arange(10.0)}, path)
    real_save = torch.save

    def disk_full(obj, f, *a, **kw):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(SystemExit) as exit_info:
        runtime.save_checkpoint({"iter_num": 6, "weights": torch.zeros(10)}, path)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err == (f"error: cannot save {path}: No space left on device; the previous "
                                                 f"checkpoint {path} is intact\n")
    monkeypatch.setattr(torch, "save", real_save)
    after = torch.load(path, weights_only=True)
    assert after["iter_num"] == 3 and torch.equal(after["weights"], torch.arange(10.0))
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # the partial .tmp is gone


def test_a_save_that_outgrows_the_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    """A real failing write, without root: under RLIMIT_FSIZE a write past the limit fails with EFBIG,
    as one to a full disk fails with ENOSPC, and torch's zip writer turns either into a RuntimeError
    ("unexpected pos") while it closes the archive."""
    script = (
        "import resource, signal, sys, torch, runtime\n"
        "path = sys.argv[1]\n"
        "runtime.save_checkpoint({'iter_num': 3, 'weights': torch.arange(10.0)}, path)\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process at the limit\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "runtime.save_checkpoint({'iter_num': 6, 'weights': torch.zeros(100_000)}, path)\n")
    path = str(tmp_path / "ckpt.pt")
    result = subprocess.run([sys.executable, "-c", script, path], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(TRAIN), OMP_NUM_THREADS="1"))
    assert (result.returncode, result.stderr) == (2, f"error: cannot save {path}: File too large; the previous "
                                                     f"checkpoint {path} is intact\n")
    after = torch.load(path, weights_only=True)
    assert after["iter_num"] == 3 and torch.equal(after["weights"], torch.arange(10.0))
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # the partial .tmp is gone


def test_log_lines_fit_100_characters_and_leave_out_what_does_not_apply(workdir, monkeypatch, capsys):
    # no MFU on the CPU; no sparsity, attention or FLOPs on a dense run
    mst_line = (r"iter \d+/12: loss \d\.\d{4}, lr \d\.\de-0\d, (sparsify|ultra|restoration) \d\.\d{3} \(\d\.\d{3}\)"
                r"(, hsa(/\d+)?)?, \d+ ms(, eta \d+:\d\d)?")
    dense_line = r"iter \d+/12: loss \d\.\d{4}, lr \d\.\de-0\d, \d+ ms(, eta \d+:\d\d)?"
    for out, mst, pattern in (("mst", True, mst_line), ("dense", False, dense_line)):
        run_in_process(monkeypatch, workdir, args_for(out, mst=mst, max_iters=12, eval_interval=6))  # as typed
        lines = capsys.readouterr().out.splitlines()
        assert max(len(line) for line in lines) <= 100, max(lines, key=len)
        iters = [line for line in lines if line.startswith("iter ")]
        assert len(iters) == 12 and all(re.fullmatch(pattern, line) for line in iters), iters
        assert not mst or {"ultra", "hsa"} <= set(" ".join(iters).replace(",", "").split())
        evals = [line for line in lines if line.startswith("step ")]
        assert [("FLOPs" in line) for line in evals] == [False, mst, mst]  # steps 0, 6, 12


def test_the_eta_leaves_out_the_slow_first_steps(workdir, monkeypatch):
    """On a clock of the test's own, the first step takes 1.5 s, as a compilation would, every later
    one 0.03 s, and an evaluation's forward passes a third of a step each: the first ETA comes after
    the first steps, and is within 30% of the time that was really left."""
    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    real_step, real_estimate_loss, calls = torch.optim.AdamW.step, runtime.estimate_loss, [0]

    def timed_step(self, *a, **kw):
        calls[0] += 1
        now[0] += 1.5 if calls[0] == 1 else 0.03
        return real_step(self, *a, **kw)

    def timed_estimate_loss(*a, **kw):
        now[0] += 4 * 0.01  # eval_iters forward passes
        return real_estimate_loss(*a, **kw)
    monkeypatch.setattr(torch.optim.AdamW, "step", timed_step)
    monkeypatch.setattr(runtime, "estimate_loss", timed_estimate_loss)
    out = workdir / "out"
    run_in_process(monkeypatch, workdir, args_for(out, max_iters=30, eval_interval=10, log_interval=2, eval_iters=4))
    end = now[0]
    logs = [r for r in read_metrics(out) if "loss" in r]
    first = next(r for r in logs if r["eta_s"] is not None)
    assert first["step"] > 5 and all(r["eta_s"] is None for r in logs if r["step"] < first["step"])
    left = end - (1000.0 + first["elapsed_s"])  # 21 steps and 3 evaluations: 0.87 s
    assert first["eta_s"] == pytest.approx(left, rel=0.3)
    # the ETA as it was, the whole time so far over the steps so far: more than twice too long
    assert first["elapsed_s"] / (first["step"] + 1) * (29 - first["step"]) > 2 * left
