"""evaluate.py on real checkpoints (trained in conftest.py): the loss against the val loss train.py
logged, with the attention train.py used at that step, and the report against the masks and the
FLOPs train.py counted."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

import evaluate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.usefixtures("one_thread")


def run_evaluate(args, tmp_path):
    out = tmp_path / "out.json"
    evaluate.main([*args, "--json", str(out)])
    with open(out) as f:
        return json.load(f)


# -- loss: the numbers train.py logged -----------------------------------------------------------

@pytest.mark.parametrize("which, step", [("ultra", 20), ("mst_end", 40), ("dense", 20)])
def test_loss_reproduces_the_logged_val_loss(runs, which, step, tmp_path, monkeypatch):
    monkeypatch.setenv("MST_DATA_DIR", str(runs["root"] / "data"))  # the data train.py read, found as train.py does
    logged = runs["dense_evals" if which == "dense" else "mst_evals"][step]
    [result] = run_evaluate(["loss", "--ckpt", runs[which], "--device", "cpu"], tmp_path)
    assert result["step"] == step
    assert (result["phase"], result["attention"], result["window"]) == (logged["phase"], logged["attn_mode"],
                                                                        logged["attn_window"])
    assert result["trained_with"]
    assert result["loss"] == pytest.approx(logged["val_loss"], rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(logged["val_loss"]), rel=1e-5)


def test_ultra_checkpoint_is_evaluated_with_its_sparse_attention(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("MST_DATA_DIR", str(runs["root"] / "data"))
    logged = runs["mst_evals"][20]
    assert (logged["phase"], logged["attn_mode"], logged["attn_window"]) == ("ultra", "blocksparse", 8)
    dense, hsa = run_evaluate(["loss", "--ckpt", runs["ultra"], "--device", "cpu", "--attention", "both"], tmp_path)
    assert (dense["attention"], hsa["attention"]) == ("dense", "blocksparse")
    assert hsa["trained_with"] and not dense["trained_with"]
    assert hsa["loss"] == pytest.approx(logged["val_loss"], rel=1e-5)
    assert abs(dense["loss"] - hsa["loss"]) > 1e-6  # the pattern does change the model's output
    # the train split, with train.py's batches, gives train.py's train loss too
    [train] = run_evaluate(["loss", "--ckpt", runs["ultra"], "--device", "cpu", "--split", "train"], tmp_path)
    assert train["loss"] == pytest.approx(logged["train_loss"], rel=1e-5)


def test_loss_with_a_window_grown_in_restoration(grown_window_run, tmp_path, monkeypatch):
    monkeypatch.setenv("MST_DATA_DIR", str(grown_window_run["root"] / "data"))
    logged = grown_window_run["evals"][30]
    assert logged["phase"] == "restoration" and logged["attn_mode"] == "blocksparse"
    assert 8 < logged["attn_window"] < 32  # grown from attn_window, and still short of the whole sequence
    [auto] = run_evaluate(["loss", "--ckpt", grown_window_run["restoration"], "--device", "cpu"], tmp_path)
    assert (auto["phase"], auto["attention"], auto["window"]) == ("restoration", "blocksparse", logged["attn_window"])
    assert auto["trained_with"]
    assert auto["loss"] == pytest.approx(logged["val_loss"], rel=1e-5)
    # 'hsa' is the pattern at that grown window too, and it is not dense attention
    dense, hsa = run_evaluate(["loss", "--ckpt", grown_window_run["restoration"], "--device", "cpu",
                               "--attention", "both"], tmp_path)
    assert (hsa["window"], hsa["loss"]) == (auto["window"], auto["loss"])
    assert abs(dense["loss"] - hsa["loss"]) > 1e-6
    report = run_evaluate(["report", "--ckpt", grown_window_run["restoration"]], tmp_path)
    assert (report["attention"], report["attention_window"]) == ("blocksparse", logged["attn_window"])


def test_loss_options_change_the_batches(runs, tmp_path):
    data_dir = str(runs["root"] / "data")
    args = ["loss", "--ckpt", runs["dense"], "--device", "cpu", "--data_dir", data_dir]
    [default] = run_evaluate(args, tmp_path)
    [again] = run_evaluate(args, tmp_path)
    [other_seed] = run_evaluate(args + ["--seed", "99"], tmp_path)
    [more] = run_evaluate(args + ["--eval_iters", "5", "--batch_size", "2"], tmp_path)
    assert default["loss"] == again["loss"]
    assert other_seed["seed"] == 99 and other_seed["loss"] != default["loss"]
    assert (more["eval_iters"], more["batch_size"]) == (5, 2) and more["loss"] != default["loss"]


# -- report ----------------------------------------------------------------------------------------

def masks_of(path):
    return torch.load(path, weights_only=True)["sparsity"]["masks"]


def test_report_densities_and_changes_match_the_masks(runs, tmp_path, capsys):
    report = run_evaluate(["report", "--ckpt", runs["mst_end"], "--previous", runs["ultra"]], tmp_path)
    after, before = masks_of(runs["mst_end"]), masks_of(runs["ultra"])
    weights = {which: torch.load(runs[which], weights_only=True)["model"] for which in ("mst_end", "ultra")}
    layers = {row["name"]: row for row in report["layers"]}
    assert set(layers) == set(after)  # embedding_max_sparsity > 0: the embedding has a mask too
    total_changed = 0
    for name, mask in after.items():
        live = [i for i, on in enumerate(mask.tolist()) if on]
        live_before = [i for i, on in enumerate(before[name].tolist()) if on]
        changed = len(set(live) ^ set(live_before))  # positions live in one and not the other
        assert layers[name]["density"] == pytest.approx(len(live) / len(mask))
        assert layers[name]["changed"] == changed
        assert layers[name]["grown"] == len(set(live) - set(live_before))
        total_changed += changed
        # the RMS of the live weights and the relative move, in plain Python floats
        w, w_before = weights["mst_end"][name].reshape(-1).tolist(), weights["ultra"][name].reshape(-1).tolist()
        assert layers[name]["rms"] == pytest.approx(math.sqrt(sum(w[i] ** 2 for i in live) / len(live)), rel=1e-9)
        moved = math.sqrt(sum((a - b) ** 2 for a, b in zip(w, w_before)) / sum(b ** 2 for b in w_before))
        assert layers[name]["moved"] == pytest.approx(moved, rel=1e-9) and moved > 0
    assert report["changed"] == total_changed > 0
    assert report["density"] == pytest.approx(sum(int(m.sum()) for m in after.values())
                                              / sum(m.numel() for m in after.values()))
    assert report["masked_weights_not_zero"] == 0
    printed = capsys.readouterr().out
    assert f"{total_changed:,} positions" in printed and "transformer.h.1.mlp.c_fc.weight" in printed


def test_report_flops_agree_with_train_py(runs, tmp_path):
    # ckpt_20 holds the FLOPs counted before step 20; the 'iter 20' record holds them after it
    report = run_evaluate(["report", "--ckpt", runs["ultra"]], tmp_path)
    step = runs["mst_logs"][20]
    tokens_per_iter = runs["mst_header"]["tokens_per_iter"]
    assert report["attention"] == "blocksparse" and report["attention_density"] < 1.0
    assert report["flops_per_token"] * tokens_per_iter == pytest.approx(step["flops"] - report["training_flops"],
                                                                        rel=1e-9)
    assert report["flops_per_token_dense"] * tokens_per_iter == pytest.approx(
        step["flops_dense"] - report["training_flops_dense"], rel=1e-9)
    types = {t["type"]: t for t in report["types"]}
    assert sum(t["flops_share"] for t in types.values()) == pytest.approx(1.0)
    assert sum(t["param_share"] for t in types.values()) == pytest.approx(1.0)
    assert types["attention"]["params"] == 0 and types["other"]["flops_per_token"] == 0
    c = torch.load(runs["ultra"], weights_only=True)["model_config"]
    dense_attention = c["n_layer"] * 12 * c["n_embd"] * (c["block_size"] + 1) / 2
    assert types["attention"]["flops_per_token"] == pytest.approx(dense_attention * report["attention_density"])


def test_report_of_a_dense_checkpoint_is_all_ones(runs, tmp_path):
    report = run_evaluate(["report", "--ckpt", runs["dense"], "--previous", runs["dense"]], tmp_path)
    assert report["density"] == report["density_all_params"] == 1.0
    assert all(row["density"] == 1.0 and row["changed"] == 0 and row["moved"] == 0 for row in report["layers"])
    assert report["flops_per_token"] == report["flops_per_token_dense"]


# -- bad input: one line, nonzero exit -------------------------------------------------------------

def test_bad_input_is_one_line(runs, tmp_path, one_line_error):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    missing = str(tmp_path / "missing.pt")
    data_dir = str(runs["root"] / "data")
    for args, says in [(["loss", "--ckpt", missing], "not found"),
                       (["loss", "--ckpt", runs["ultra"], "--data_dir", str(tmp_path)], "val.bin not found"),
                       (["loss", "--ckpt", runs["ultra"], "--eval_iters", "0", "--data_dir", data_dir],
                        "must be positive"),
                       (["loss", "--ckpt", runs["ultra"], "--attention", "sideways"], "invalid choice"),
                       (["report", "--ckpt", str(junk)], "not a checkpoint"),
                       (["report", "--ckpt", runs["ultra"], "--previous", missing], "not found"),
                       (["report"], "required"),
                       (["--frobnicate", "7"], "unknown option --frobnicate"),
                       (["loss", "--ckpt", runs["ultra"], "--frobnicate", "7"], "unrecognized arguments: --frobnicate 7"),
                       ([], "required")]:
        assert says in one_line_error(evaluate.main, args)


def test_a_json_file_that_cannot_be_written_is_one_line(runs, tmp_path, capsys):
    missing = str(tmp_path / "no" / "such" / "x.json")
    data_dir = str(runs["root"] / "data")
    for args in (["loss", "--ckpt", runs["dense"], "--data_dir", data_dir], ["report", "--ckpt", runs["dense"]]):
        with pytest.raises(SystemExit) as exit_info:  # refused before any work: nothing printed
            evaluate.main([*args, "--json", missing])
        out, err = capsys.readouterr()
        assert exit_info.value.code == 2 and out == ""
        assert err == f"error: --json={missing}: the folder {tmp_path / 'no' / 'such'} does not exist\n"
    with pytest.raises(SystemExit):
        evaluate.main(["report", "--ckpt", runs["dense"], "--json", str(tmp_path)])
    assert capsys.readouterr().err == f"error: --json={tmp_path} is a folder, not a file\n"
    if os.path.exists("/dev/full"):  # a write that fails after the check: the results, then one line
        with pytest.raises(SystemExit) as exit_info:
            evaluate.main(["report", "--ckpt", runs["dense"], "--json", "/dev/full"])
        out, err = capsys.readouterr()
        assert exit_info.value.code == 2 and "density of the sparsified weights" in out
        assert err == "error: cannot write /dev/full: No space left on device\n"


def test_command_line_errors_have_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "evaluate.py"), "report", "--ckpt",
                             str(tmp_path / "missing.pt")], capture_output=True, text=True, cwd=tmp_path,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"error: checkpoint {tmp_path / 'missing.pt'} not found"]
    assert result.stdout == ""
