"""Real checkpoints for the tests of sample.py and evaluate.py: train.py trains tiny GPTs on a
synthetic token stream once per session, an MST run that passes through the ultra-sparse phase
with sparse attention, a dense run, and an MST run whose attention window grows in restoration."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 512  # ids below 512 are all valid GPT-2 tokens, so samples decode
TINY = ["--dataset=markov", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--gradient_accumulation_steps=1", "--warmup_iters=5", "--eval_iters=3", "--log_interval=10",
        "--attn_block=8", "--attn_window=8", "--attn_stride=16", f"--vocab_size={VOCAB}", "--learning_rate=1e-2",
        "--hsa_mode=blocksparse", "--max_iters=40", "--lr_decay_iters=40", "--update_interval=3", "--device=cpu",
        "--seed=7", "--peak_sparsity=0.9"]
# Dense to 0.9 by step 10, held with blocksparse attention at its configured window to 30, dense
# again at 40, with a topology that moves at every update. Step 20 is an evaluation in the ultra
# phase, and not a topology update (20 % 3 != 0), so its FLOPs are plain.
MST = ["--eval_interval=20", "--sparsify_end=0.25", "--ultra_end=0.75", "--restore_end=1.0",
       "--embedding_max_sparsity=1.0", "--hsa_phases=('ultra',)", "--hsa_window_follows_sparsity=False",
       "--drop_fraction=0.3", "--keep_checkpoints=(20,)"]
DENSE = ["--mst=False", "--max_iters=20", "--lr_decay_iters=20", "--eval_interval=10"]
# Restoration from step 20 to 40 with HSA on: at the step-30 evaluation the target sparsity has
# fallen to 1/8 of its peak, so the window has grown from 8 to 24 of the 32 positions.
GROWN_WINDOW = ["--eval_interval=10", "--sparsify_end=0.25", "--ultra_end=0.5", "--restore_end=1.0",
                "--hsa_phases=('ultra','restoration')", "--hsa_window_follows_sparsity=True",
                "--keep_checkpoints=(30,)"]


def write_markov_tokens(path, n, rng):
    """A learnable stream: each id mostly follows from the one before."""
    ids = np.empty(n, dtype=np.uint16)
    ids[0] = 0
    noise = rng.integers(0, VOCAB, n)
    follow = rng.random(n) < 0.8
    for i in range(1, n):
        ids[i] = (ids[i - 1] * 5 + 3) % VOCAB if follow[i] else noise[i]
    ids.tofile(path)


def train(cwd, out_dir, overrides):
    """Run train.py; its metrics.jsonl as (header, {step: eval record}, {step: log record})."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=os.path.join(cwd, "data"))
    command = [sys.executable, os.path.join(REPO, "train.py"), *TINY, *overrides, f"--out_dir={out_dir}"]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        header, *records = [json.loads(line) for line in f]
    assert "step" not in header
    return header, {r["step"]: r for r in records if "val_loss" in r}, {r["step"]: r for r in records if "loss" in r}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A folder holding data/markov/{train,val}.bin: train.py and evaluate.py run from here, with
    MST_DATA_DIR pointing at its data/."""
    root = tmp_path_factory.mktemp("runs")
    os.makedirs(root / "data" / "markov")
    rng = np.random.default_rng(0)
    write_markov_tokens(root / "data" / "markov" / "train.bin", 20000, rng)
    write_markov_tokens(root / "data" / "markov" / "val.bin", 4000, rng)
    return root


@pytest.fixture(scope="session")
def runs(data_root):
    mst_header, mst_evals, mst_logs = train(data_root, str(data_root / "mst"), MST)
    _, dense_evals, _ = train(data_root, str(data_root / "dense"), DENSE)
    return {"root": data_root, "mst_header": mst_header, "mst_evals": mst_evals, "mst_logs": mst_logs,
            "dense_evals": dense_evals, "ultra": str(data_root / "mst" / "ckpt_20.pt"),
            "mst_end": str(data_root / "mst" / "ckpt.pt"), "dense": str(data_root / "dense" / "ckpt.pt")}


@pytest.fixture(scope="session")
def grown_window_run(data_root):
    _, evals, _ = train(data_root, str(data_root / "grown"), GROWN_WINDOW)
    return {"root": data_root, "evals": evals, "restoration": str(data_root / "grown" / "ckpt_30.pt")}


@pytest.fixture(scope="module")
def one_thread():
    # Ops this small are all thread start-up cost, which grows without bound when the other core is
    # busy; train.py runs with one thread too, so both sides compute alike.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_line_error(capsys):
    """main(args) must exit nonzero with a single 'error: ...' line on stderr; returns that line."""
    def check(main, args):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        err = capsys.readouterr().err
        assert exit_info.value.code != 0
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
        return err
    return check


@pytest.fixture(autouse=True)
def restore_signal_handlers():
    """train.py run in this process installs its stop handlers: they must not outlive the test."""
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
    handlers = [signal.getsignal(s) for s in signals]
    yield
    for s, handler in zip(signals, handlers):
        signal.signal(s, handler)
