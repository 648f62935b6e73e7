"""runs.py's pieces on their own, against hand-made inputs: what train.py does besides training."""

import json
import os
import signal
import subprocess
import sys

import pytest

import runs


def test_old_checkpoints_keep_their_rate_shape():
    assert runs.lr_schedule_of_old_run({"lr_schedule": "wsd", "decay_lr": False}) == {}  # a new checkpoint
    assert runs.lr_schedule_of_old_run({"decay_lr": False}) == {"lr_schedule": "constant"}
    assert runs.lr_schedule_of_old_run({"hold_lr_until_restoration": True, "ultra_end": 0.8}) == {
        "lr_schedule": "wsd", "lr_decay_start": 0.8}
    assert runs.lr_schedule_of_old_run({"hold_lr_until_restoration": True, "mst": False, "ultra_end": 0.8}) == {
        "lr_schedule": "cosine"}  # a dense run never held its rate
    with pytest.raises(SystemExit):
        runs.lr_schedule_of_old_run({"restore_lr": 1e-4})


LOOP = dict(init_from="scratch", batch_size=4, gradient_accumulation_steps=1, eval_iters=2, log_interval=1,
            eval_interval=5, warmup_iters=2, lr_decay_iters=0, lr_decay_start=0.9, lr_schedule="wsd", max_iters=10,
            learning_rate=1e-3, min_lr=1e-4, beta1=0.9, beta2=0.95, weight_decay=0.1, grad_clip=1.0, dtype="float32",
            flops_budget=0.0, density_lr_power=1.0)


@pytest.mark.parametrize("change, message", [
    ({"init_from": "gpt2"}, "init_from='gpt2'"), ({"eval_iters": 0}, "must be positive"),
    ({"lr_decay_start": 1.5}, "lr_decay_start is a fraction"), ({"lr_schedule": "step"}, "lr_schedule='step'"),
    ({"max_iters": 4, "lr_decay_start": 1.0}, "held until step 4"),  # round(1.0 * 4) = 4 = the decay's end
    ({"lr_decay_iters": 8}, "held until step 9"), ({"min_lr": 1.0, "learning_rate": 0.5}, "0 <= min_lr"),
    ({"beta1": 1.5}, "beta1=1.5 must lie in"), ({"beta2": -0.1}, "beta2=-0.1"), ({"grad_clip": -1}, "negative"),
    ({"dtype": "float16"}, "gradient scaler"), ({"dtype": "garbage"}, "dtype='garbage'"),
    ({"flops_budget": 5.0}, "neither a share"), ({"learning_rate": -1.0}, "0 <= min_lr <= learning_rate"),
])
def test_loop_settings_that_cannot_run(change, message):
    runs.check_loop_settings(LOOP)  # the base is fine
    with pytest.raises(ValueError, match=message):
        runs.check_loop_settings(dict(LOOP, **change))


def test_the_rate_is_held_to_lr_decay_start_but_decays_in_a_short_run():
    assert runs.lr_hold_end(LOOP) == 9  # round(0.9 * 10)
    assert runs.lr_hold_end(dict(LOOP, max_iters=2500, warmup_iters=100)) == 2250
    assert [runs.lr_hold_end(dict(LOOP, max_iters=n, warmup_iters=0)) for n in (1, 2, 3, 4, 5)] == [0, 1, 2, 3, 4]
    assert runs.lr_hold_end(dict(LOOP, lr_decay_start=1.0)) == 10  # asked for: never decays (an error)
    assert runs.lr_hold_end(dict(LOOP, lr_schedule="cosine")) == 2  # from the warm-up's end
    for n in (1, 2, 3, 4):
        runs.check_loop_settings(dict(LOOP, max_iters=n, warmup_iters=0))


def test_a_fresh_run_does_not_replace_another(tmp_path, capsys):
    out = tmp_path / "run"
    runs.refuse_to_replace(str(out), "scratch", False, None, "", 10)  # no folder yet
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    runs.refuse_to_replace(str(out), "scratch", False, None, "", 10)  # no checkpoint: nothing to lose
    (out / "ckpt.pt").write_bytes(b"")
    with pytest.raises(SystemExit) as stop:
        runs.refuse_to_replace(str(out), "scratch", False, None, "", 10)
    assert stop.value.code == 2 and "already holds a run (ckpt.pt)" in capsys.readouterr().err
    runs.refuse_to_replace(str(out), "scratch", True, None, "", 10)  # --overwrite=True
    with pytest.raises(SystemExit) as stop:  # a finished run: said, exit 0
        runs.refuse_to_replace(str(out), "resume", False, {"iter_num": 10}, "c.pt", 10)
    assert stop.value.code == 0 and "the run is finished" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["a_file", "a_file/run", "/proc/mst_run"])
def test_an_out_dir_that_cannot_be_made_is_one_line(tmp_path, capsys, where):
    # out_dir a file, under one, or where nothing can be made (/proc refuses even root)
    (tmp_path / "a_file").write_text("not a folder")
    out_dir = where if where.startswith("/") else str(tmp_path / where)
    with pytest.raises(SystemExit) as stop:
        runs.make_out_dir(out_dir, replace=False)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"error: cannot write to out_dir {out_dir}: ") and \
        err.count("\n") == 1, err


def test_make_out_dir_replaces_the_old_run_whole(tmp_path):
    for name in ("ckpt.pt", "ckpt_5.pt", "best.pt", "metrics.jsonl", "notes.txt"):
        (tmp_path / name).write_text("x")
    runs.make_out_dir(str(tmp_path), replace=True)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_metrics_file_holds_each_step_once(tmp_path):
    metrics = runs.MetricsFile(str(tmp_path))
    metrics.start({"run": 1, "resumed_at": 0}, 0)
    for step in range(8):
        metrics.log({"step": step})
    with open(metrics.path, "a") as f:
        f.write('{"step": 8, "lo')  # cut short by a kill
    metrics.start({"run": 2, "resumed_at": 5}, 5)  # resumed from the step-5 checkpoint
    metrics.log({"step": 5})
    records = [json.loads(line) for line in open(metrics.path)]
    assert records == [{"run": 1, "resumed_at": 0}] + [{"step": s} for s in range(5)] + [
        {"run": 2, "resumed_at": 5}, {"step": 5}]
    metrics.start({"run": 3, "resumed_at": 0}, 0)  # a fresh run starts the file anew
    assert [json.loads(line) for line in open(metrics.path)] == [{"run": 3, "resumed_at": 0}]


# MetricsFile on a disk that fills up: under RLIMIT_FSIZE a write past the limit fails part way with
# EFBIG, as one to a full disk fails with ENOSPC, and needs no root and no special file system.
FULL_DISK = """
import os, resource, signal, sys
import runs
metrics = runs.MetricsFile(sys.argv[1])
metrics.start({"run": {}, "resumed_at": 0}, 0)
metrics.log({"step": 0, "loss": 1.0})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process at the limit
room = int(sys.argv[3])  # bytes left for the file
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(metrics.path) + room, resource.RLIM_INFINITY))
if sys.argv[2] == "log":
    metrics.log({"step": 1, "loss": 2.0, "note": "a record longer than the room left"})
else:  # a resumed run rewrites the file through a .tmp
    resource.setrlimit(resource.RLIMIT_FSIZE, (room, resource.RLIM_INFINITY))
    metrics.start({"run": {}, "resumed_at": 1}, 1)
"""


@pytest.mark.parametrize("write, room", [("log", 10), ("start", 0)])
def test_a_full_disk_is_one_line_and_leaves_whole_records(tmp_path, write, room):
    before = '{"run": {}, "resumed_at": 0}\n{"step": 0, "loss": 1.0}\n'
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path), write, str(room)], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, PYTHONPATH=os.path.dirname(runs.__file__)))
    path = tmp_path / "metrics.jsonl"
    assert (result.returncode, result.stderr) == (2, f"error: cannot write {path}: File too large; no checkpoint "
                                                     "was saved yet\n")
    assert path.read_text() == before  # not half a record, nor a file cut short
    assert os.listdir(tmp_path) == ["metrics.jsonl"]  # no metrics.jsonl.tmp


def test_a_long_warm_up_is_warned_of():
    # warmup_iters counts steps: config/mst_tiny.py shortened to 20 steps warms up to the end
    mst_tiny = dict(LOOP, warmup_iters=20, max_iters=240)
    assert runs.warmup_warnings(mst_tiny) == []  # 8%, as the configs' own runs: no warning
    assert runs.warmup_warnings(dict(mst_tiny, max_iters=20)) == [
        "the warm-up takes 20 of the 20 steps (warmup_iters counts steps: shorten it too)"]
    assert runs.warmup_warnings(dict(mst_tiny, max_iters=200)) == []  # a tenth: still fine
    assert len(runs.warmup_warnings(dict(mst_tiny, max_iters=199))) == 1
    assert runs.warmup_warnings(dict(mst_tiny, max_iters=20, lr_schedule="constant")) == []  # no warm-up at all


def test_eta_by_hand():
    # 100 steps from 0, an evaluation every 40 (at 0, 40, 80 and 100), one micro-step, 6 eval batches
    eta = runs.ETA(0, 100, 40, 6, 1)
    eta.spent_outside_steps(30.0, True)  # step 0's evaluation, before the clock: it may have compiled
    assert eta.seconds_left(31.0, 4) is None  # too early
    assert eta.seconds_left(32.0, 5) is None  # the clock starts: (32 s, step 5, 30 s of evaluations)
    # step 10 at 37 s: 1 s a step; 3 evaluations left (40, 80, 100), each at most 6 forward passes of
    # 2/3 of a step: 4 s; 89 steps left
    assert eta.seconds_left(37.0, 10) == pytest.approx(89 * 1.0 + 3 * 4.0)
    eta.spent_outside_steps(2.5, True)  # the step-40 evaluation, on the clock: its own time counts
    assert eta.seconds_left(37.0 + 35 + 2.5, 45) == pytest.approx(54 * 1.0 + 2 * 2.5)
    eta.spent_outside_steps(10.0, False)  # keeping a checkpoint: not a step, not an evaluation
    assert eta.seconds_left(37.0 + 40 + 12.5, 50) == pytest.approx(49 * 1.0 + 2 * 2.5)


def test_clock():
    assert [runs.clock(s) for s in (0, 59.9, 61, 3599, 3600, 7322)] == ["0:00", "0:59", "1:01", "59:59",
                                                                      "1:00:00", "2:02:02"]


def test_stop_signals_one_process(capfd):
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    try:
        stop = runs.StopSignals("out/x", ddp=False, master=True, device_type="cpu")
        assert stop.agreed() == 0
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGUSR1)  # the first signal is the one the run stops for
        assert stop.agreed() == signal.SIGTERM
        assert "SIGTERM: stopping after this step" in capfd.readouterr().err
        stop = runs.StopSignals("out/x", ddp=False, master=True, device_type="cpu")
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.agreed() == signal.SIGINT
        exits = []
        os._exit, real_exit = exits.append, os._exit  # the real one would end pytest here
        try:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C twice: at once
        finally:
            os._exit = real_exit
        assert exits == [130] and capfd.readouterr().err.endswith(
            "(Ctrl-C again stops at once)\ninterrupted again: stopped at once; no checkpoint was saved yet\n")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
