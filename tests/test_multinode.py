"""train.py under torchrun beyond one process: two nodes over the c10d rendezvous, here two
launchers on localhost with one CPU process each; and errors, printed once."""

import os
import signal
import socket
import subprocess
import sys

import pytest

import runtime
from test_train import ONE_PROCESS, TRAIN, TWO_PROCESSES, args_for, assert_same_run, make_toy_data, run_subprocess

# as in test_train.py's DDP test: one process of batch_size 8 against two of 4; mixed growing
COMMON = dict(grow_mode="mixed", eval_interval=9, update_interval=2)


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_nodes_through_the_rendezvous_match_one_process(tmp_path):
    make_toy_data(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(tmp_path / "data"))
    # Node 1's process has LOCAL_RANK 0 but RANK 1: it must take the second half of each batch.
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                "--rdzv_backend=c10d", f"--rdzv_endpoint=localhost:{free_port()}", f"--rdzv_id={tmp_path.name}"]
    two = args_for(tmp_path / "two", **COMMON, **TWO_PROCESSES)
    nodes = [subprocess.Popen(launcher + [f"--node_rank={node}", TRAIN, *two],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for node in (0, 1)]
    one = run_subprocess(tmp_path, args_for(tmp_path / "one", **COMMON, **ONE_PROCESS))  # meanwhile, on one process
    try:
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert one.returncode == 0, one.stderr
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output
    assert sum("done: val loss" in output for output in outputs) == 1  # rank 0 alone reports and saves
    assert_same_run(tmp_path / "one", tmp_path / "two")


def test_an_error_every_process_hits_is_printed_once(tmp_path):
    result = run_subprocess(tmp_path, args_for(tmp_path / "out", dataset="missing"), nproc=2)
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "missing/train.bin not found" in errors[0], result.stderr
    assert "exitcode  : 2" in result.stderr  # torchrun's summary: the first process left as bad input does


def test_an_error_of_another_local_rank_alone_is_still_printed(monkeypatch, capsys):
    waits = []
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(runtime.time, "sleep", waits.append)  # torchrun would stop it here if rank 0 failed too
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exit_info:
            runtime.fail("only this rank")
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert exit_info.value.code == 2 and waits == [2]
    assert capsys.readouterr().err == "error: only this rank\n"
