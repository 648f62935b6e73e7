"""What a user meets first on the command line: train.py --help made from its settings block, the
datasets found from any working directory, and GPU-only commands that say so on the CPU."""

import ast
import io
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from ast import literal_eval
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch

import runtime
from test_readme import SMALLER
from test_train import args_for, make_toy_data, run_subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "train.py")


def settings_in_source():
    """{key: default} of train.py's module globals before config_keys, evaluated as train.py does."""
    defaults = {}
    for node in ast.parse(open(TRAIN, encoding="utf-8").read()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "config_keys":
            return defaults
        if isinstance(node, ast.Assign):
            defaults[node.targets[0].id] = eval(compile(ast.Expression(node.value), TRAIN, "eval"), {"torch": torch})


def help_text(flag, monkeypatch):
    monkeypatch.setattr(sys, "argv", [TRAIN, flag])
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        runpy.run_path(TRAIN, run_name="__main__")
    assert exit_info.value.code == 0
    return out.getvalue()


def test_help_lists_every_setting_with_its_default_and_comment(monkeypatch):
    text = help_text("--help", monkeypatch)
    assert help_text("-h", monkeypatch) == text
    shown, key = {}, None  # key -> (default as written, its description, joined from its lines)
    for line in text.splitlines():
        assert len(line) <= 100, line
        match = re.match(r"  --(\w+)=(\S+)( {2,}(\S.*))?$", line)
        if match:
            key = match.group(1)
            assert match.group(4) is None or line.index(match.group(4)) == 38, line  # its own column
            shown[key] = match.group(2), match.group(4) or ""
        elif line.startswith(" " * 38) and key:  # the description goes on
            shown[key] = shown[key][0], f"{shown[key][1]} {line.strip()}".strip()
        else:
            key = None
    assert all(description for _, description in shown.values()), shown  # every setting says what it is
    defaults = settings_in_source()
    assert sorted(shown) == sorted(defaults) and "learning_rate" in shown and "data_dir" in shown
    for key, default in defaults.items():
        written = shown[key][0]
        try:
            value = literal_eval(written)
        except (ValueError, SyntaxError):
            value = written  # a bare word, as configurator.py reads an override
        assert value == default and type(value) is type(default), (key, written)
    # the comments, and the section headings, are the source's own
    source = open(TRAIN, encoding="utf-8").read().split("# ---")[1].splitlines()
    for line in source:
        if line.startswith("# "):
            assert f"\n\n{line[2:]}\n" in text
        elif "  # " in line:
            assert shown[line.split(" = ")[0]][1] == line.split("  # ", 1)[1], line
    assert shown["eval_iters"][1] == "batches per split; the same batches at every evaluation"


# -- the data, from any working directory --------------------------------------------------------

def test_the_data_folder_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MST_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runtime.data_root() == os.path.join(REPO, "data")
    assert runtime.prepare_command("shakespeare") == f"python {os.path.join(REPO, 'prepare.py')} shakespeare"
    # a pool names the prepare.py command that cuts it from its source (prepare.py pool's names)
    assert runtime.prepare_command("docmix_pool2.5M").endswith("prepare.py pool docmix --tokens 2.5M")
    assert runtime.prepare_command("my_set_pool12345").endswith("prepare.py pool my_set --tokens 12345")
    monkeypatch.setenv("MST_DATA_DIR", "store")  # relative to where the user stands
    assert runtime.data_root() == str(tmp_path / "store")
    assert runtime.data_root("elsewhere") == str(tmp_path / "elsewhere")  # the setting wins
    assert runtime.prepare_command("shakespeare").endswith(f"prepare.py shakespeare --data_dir {tmp_path / 'store'}")


def test_missing_data_advice_works_from_another_directory(tmp_path):
    make_toy_data(tmp_path / "source")  # token files to import, like a user's own corpus
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(store))
    train = [sys.executable, TRAIN, *args_for(tmp_path / "out", max_iters=9, eval_interval=9)]
    result = subprocess.run(train, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and not os.path.exists(tmp_path / "out")
    [line] = result.stderr.splitlines()
    advice = re.search(r"make it with `(.*)`", line).group(1)
    assert line.startswith(f"error: {store / 'toy' / 'train.bin'} not found")
    assert advice == (f"python {os.path.join(REPO, 'prepare.py')} tokens --train ... --val ... --name toy "
                      f"--data_dir {store}")
    # followed as written, from where the user stands, even in a shell without MST_DATA_DIR
    source = tmp_path / "source" / "data" / "toy"
    command = shlex.split(advice.replace("--train ... --val ...", f"--train {source / 'train.bin'} "
                                                                   f"--val {source / 'val.bin'}"))
    env_without = {k: v for k, v in env.items() if k != "MST_DATA_DIR"}
    prepared = subprocess.run([sys.executable, *command[1:]], cwd=elsewhere, env=env_without, capture_output=True,
                              text=True, timeout=300)
    assert prepared.returncode == 0, prepared.stderr
    # train.py finds it now, through the data_dir setting as through the variable
    result = subprocess.run(train + [f"--data_dir={store}"], cwd=elsewhere, env=env_without, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    # and evaluate.py, from yet another directory, reads the same data: train.py's val loss
    logged = [r for r in map(json.loads, open(tmp_path / "out" / "metrics.jsonl")) if "val_loss" in r][-1]
    evaluated = subprocess.run([sys.executable, os.path.join(REPO, "evaluate.py"), "loss", "--ckpt",
                                str(tmp_path / "out" / "ckpt.pt")], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    assert logged["step"] == 9 and f"val loss {logged['val_loss']:.4f}" in evaluated.stdout


# -- GPU-only commands on the CPU ----------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path):
    make_toy_data(tmp_path)
    result = run_subprocess(tmp_path, args_for(tmp_path / "out", device="cuda"))
    assert result.returncode == 2
    assert result.stderr == "error: --device=cuda but this torch sees no CUDA device\n"
    assert not os.path.exists(tmp_path / "out")


def test_bench_without_a_gpu_points_at_smoke(tmp_path):
    # without the check it builds GPT-2 124M on the CPU and runs until the kernel kills it
    result = subprocess.run([sys.executable, os.path.join(REPO, "bench.py")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "python bench.py --smoke" in line
    assert os.listdir(tmp_path) == []


def test_the_readme_smoke_run_runs(tmp_path):
    lines = open(os.path.join(REPO, "README.md"), encoding="utf-8").read().splitlines()
    [cpu] = [line for line in lines if line.startswith("python train.py config/mst_tiny.py --max_iters=20")]
    os.makedirs(tmp_path / "data" / "shakespeare")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        rng.integers(0, 5000, 20000).astype(np.uint16).tofile(tmp_path / "data" / "shakespeare" / f"{split}.bin")
    command = shlex.split(cpu.split("#")[0])
    result = subprocess.run([sys.executable, os.path.join(REPO, command[1]), os.path.join(REPO, command[2]),
                             *command[3:], *SMALLER], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(tmp_path / "data")))
    assert result.returncode == 0, result.stderr
    assert "done: val loss" in result.stdout and "after 20 steps" in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["data", "out"]
