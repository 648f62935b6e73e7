"""The README's sampling-and-evaluation commands, run as written after the default job.

The default job (config/mst_tiny.py) is shrunk to a one-layer model so that it trains in seconds;
its steps, phases, evaluations and kept checkpoints stay those of the config, so every path the
commands name exists exactly as after the real job."""

import json
import os
import re
import subprocess
import sys

import numpy as np

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
