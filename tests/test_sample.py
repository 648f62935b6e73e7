"""sample.py and evaluate.py on real checkpoints: train.py trains a tiny GPT in tmp_path (an MST run
that passes through the ultra-sparse phase with sparse attention, and a dense run), and the tests
check the evaluation against the val loss train.py logged, the sampling's determinism, and the
report against the masks themselves."""

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import evaluate
import sample
from model import GPT, GPTConfig, load_checkpoint
from prepare import get_gpt2_encoding

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 512  # ids below 512 are all valid GPT-2 tokens, so samples decode
TINY = ["--dataset=markov", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--gradient_accumulation_steps=1", "--warmup_iters=5", "--eval_iters=3", "--log_interval=10",
        "--attn_block=8", "--attn_window=8", "--attn_stride=16", f"--vocab_size={VOCAB}", "--learning_rate=1e-2",
        "--device=cpu", "--seed=7"]
# dense to 0.9 by step 10, held (with blocksparse attention) to 30, dense again at 40; step 20 is
# an evaluation in the ultra phase, and not a topology update (20 % 3 != 0), so its FLOPs are plain
MST = ["--max_iters=40", "--lr_decay_iters=40", "--eval_interval=20", "--sparsify_end=10", "--ultra_end=30",
       "--restore_end=40", "--update_interval=3", "--sparse_embedding=True", "--hsa_mode=blocksparse"]
DENSE = ["--mst=False", "--max_iters=20", "--lr_decay_iters=20", "--eval_interval=10"]
PROMPT = " the"  # one token, 262


def write_markov_tokens(path, n, rng):
    """A learnable stream: each id mostly follows from the one before."""
    ids = np.empty(n, dtype=np.uint16)
    ids[0] = 0
    noise = rng.integers(0, VOCAB, n)
    follow = rng.random(n) < 0.8
    for i in range(1, n):
        ids[i] = (ids[i - 1] * 5 + 3) % VOCAB if follow[i] else noise[i]
    ids.tofile(path)


def train(cwd, out_dir, overrides, copy_at=()):
    """Run train.py; keep a copy of ckpt.pt as saved at each step in copy_at."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    command = [sys.executable, os.path.join(REPO, "train.py"), *TINY, *overrides, f"--out_dir={out_dir}"]
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    for line in proc.stdout:
        log.append(line)
        step = int(line.split()[1].rstrip(":")) if line.startswith("iter ") else None
        if step in copy_at:  # 'iter N' comes after step N's evaluation saved ckpt.pt
            proc.send_signal(signal.SIGSTOP)  # frozen, it cannot save the next one while we copy
            try:
                shutil.copy(os.path.join(out_dir, "ckpt.pt"), os.path.join(out_dir, f"ckpt_{step}.pt"))
            finally:
                proc.send_signal(signal.SIGCONT)
    assert proc.wait() == 0, "".join(log)
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return {r["step"]: r for r in records if "val_loss" in r}, {r["step"]: r for r in records if "loss" in r}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Ops this small are all thread start-up cost, which grows without bound when the other core is
    # busy; train.py runs with one thread too, so both sides compute alike.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    os.makedirs(root / "data" / "markov")
    rng = np.random.default_rng(0)
    write_markov_tokens(root / "data" / "markov" / "train.bin", 20000, rng)
    write_markov_tokens(root / "data" / "markov" / "val.bin", 4000, rng)
    mst_evals, mst_logs = train(root, str(root / "mst"), MST, copy_at=(20,))
    dense_evals, _ = train(root, str(root / "dense"), DENSE)
    return {"root": root, "mst_evals": mst_evals, "mst_logs": mst_logs, "dense_evals": dense_evals,
            "ultra": str(root / "mst" / "ckpt_20.pt"), "mst_end": str(root / "mst" / "ckpt.pt"),
            "dense": str(root / "dense" / "ckpt.pt")}


def run_evaluate(args, tmp_path):
    out = tmp_path / "out.json"
    evaluate.main([*args, "--json", str(out)])
    with open(out) as f:
        return json.load(f)


# -- evaluate.py loss: the numbers train.py logged ---------------------------------------------

@pytest.mark.parametrize("which, step", [("ultra", 20), ("mst_end", 40), ("dense", 20)])
def test_loss_reproduces_the_logged_val_loss(runs, which, step, tmp_path, monkeypatch):
    monkeypatch.chdir(runs["root"])  # the default data dir is data/<dataset> from here, as for train.py
    logged = runs["dense_evals" if which == "dense" else "mst_evals"][step]
    [result] = run_evaluate(["loss", "--ckpt", runs[which], "--device", "cpu"], tmp_path)
    assert result["step"] == step
    assert (result["phase"], result["attention"]) == (logged["phase"], logged["attn_mode"])
    assert result["loss"] == pytest.approx(logged["val_loss"], rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(logged["val_loss"]), rel=1e-5)


def test_ultra_checkpoint_is_evaluated_with_its_sparse_attention(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(runs["root"])
    logged = runs["mst_evals"][20]
    assert (logged["phase"], logged["attn_mode"]) == ("ultra", "blocksparse")
    dense, hsa = run_evaluate(["loss", "--ckpt", runs["ultra"], "--device", "cpu", "--attention", "both"], tmp_path)
    assert (dense["attention"], hsa["attention"]) == ("dense", "blocksparse")
    assert hsa["trained_with"] and not dense["trained_with"]
    assert hsa["loss"] == pytest.approx(logged["val_loss"], rel=1e-5)
    assert abs(dense["loss"] - hsa["loss"]) > 1e-6  # the pattern does change the model's output
    # the train split, with train.py's batches, gives train.py's train loss too
    [train] = run_evaluate(["loss", "--ckpt", runs["ultra"], "--device", "cpu", "--split", "train"], tmp_path)
    assert train["loss"] == pytest.approx(logged["train_loss"], rel=1e-5)


def test_loss_options_change_the_batches(runs, tmp_path):
    data_dir = str(runs["root"] / "data" / "markov")
    args = ["loss", "--ckpt", runs["dense"], "--device", "cpu", "--data_dir", data_dir]
    [default] = run_evaluate(args, tmp_path)
    [again] = run_evaluate(args, tmp_path)
    [other_seed] = run_evaluate(args + ["--seed", "99"], tmp_path)
    [more] = run_evaluate(args + ["--eval_iters", "5", "--batch_size", "2"], tmp_path)
    assert default["loss"] == again["loss"]
    assert other_seed["seed"] == 99 and other_seed["loss"] != default["loss"]
    assert (more["eval_iters"], more["batch_size"]) == (5, 2) and more["loss"] != default["loss"]


# -- sample.py ---------------------------------------------------------------------------------

def test_sampling_is_deterministic_for_a_seed(runs, capsys):
    def run(seed):
        sample.main(["--ckpt", runs["ultra"], "--start", PROMPT, "--num_samples", "2", "--max_new_tokens", "24",
                     "--seed", str(seed), "--device", "cpu"])
        return capsys.readouterr().out

    first, second, other = run(1), run(1), run(2)
    assert first == second
    assert first != other
    assert first.startswith(PROMPT) and first.count("---------------") == 2


def test_samples_start_with_the_prompt_and_stay_in_the_vocabulary(runs, tmp_path, capsys):
    enc = get_gpt2_encoding()
    model, checkpoint = load_checkpoint(runs["ultra"], "cpu")
    start = enc.encode(" and the")
    for attention in ("dense", "blocksparse"):
        model.set_attention(attention)
        ids = sample.sample(model, start, num_samples=3, max_new_tokens=40, seed=3, num_tokens=enc.n_vocab)
        assert ids.shape == (3, len(start) + 40)  # 42 > block_size: generation crops the context
        assert ids[:, :len(start)].tolist() == [start] * 3
        assert 0 <= ids.min() and ids.max() < VOCAB
    # a prompt read from a file gives the same output as the same text given inline
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(" and the", encoding="utf-8")
    outputs = []
    for start in (" and the", f"FILE:{prompt_file}"):
        sample.main(["--ckpt", runs["ultra"], "--start", start, "--max_new_tokens", "10", "--device", "cpu"])
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]


def test_sampling_applies_the_checkpoint_masks(runs, tmp_path):
    # a weight that the mask says is dead must not take part, even if the file holds a value there
    checkpoint = torch.load(runs["ultra"], weights_only=True)
    group, mask = next(iter(checkpoint["sparsity"]["masks"].items()))
    name = group.split(",")[0]
    dead = ~mask[0].view_as(checkpoint["model"][name])
    assert dead.any() and (checkpoint["model"][name][dead] == 0).all()
    checkpoint["model"][name][dead] = 1.0
    torch.save(checkpoint, tmp_path / "tampered.pt")
    model, _ = load_checkpoint(str(tmp_path / "tampered.pt"), "cpu")
    assert (dict(model.named_parameters())[name][dead] == 0).all()


def test_padded_vocabulary_ids_are_never_sampled():
    # vocab 50304 = GPT-2's 50257 tokens + 47 padding ids that the tokenizer cannot decode. Rig the
    # output layer so that the padding ids get huge logits: they must still never come out.
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=50304, n_layer=1, n_head=2, n_embd=16, attn_window=8,
                          attn_stride=16, attn_block=8))
    with torch.no_grad():
        model.lm_head.weight[:50257] = 0.0
        model.lm_head.weight[50257:] *= 500.0
    rigged = sample.sample(model, [198], num_samples=4, max_new_tokens=8, seed=0)
    assert (rigged[:, 1:] >= 50257).any()  # without the guard the rig works
    ids = sample.sample(model, [198], num_samples=4, max_new_tokens=8, seed=0, num_tokens=50257)
    assert ids.max() < 50257
    assert model.lm_head._forward_hooks == {}  # the guard is removed afterwards


def test_gpt2_weights_map_onto_our_model():
    transformers = pytest.importorskip("transformers")  # not a dependency: this runs where it is installed
    config = transformers.GPT2Config(vocab_size=300, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                     activation_function="gelu")  # GPT-2's own is the tanh approximation
    torch.manual_seed(0)
    hf_model = transformers.GPT2LMHeadModel(config).eval()
    model = sample.gpt2_from_hf_model(hf_model).eval()
    ids = torch.randint(0, 300, (2, 64))
    with torch.no_grad():
        ours, _ = model(ids, ids)
        theirs = hf_model(ids).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_gpt2_from_the_local_cache(tmp_path):
    transformers = pytest.importorskip("transformers")
    # a random GPT-2 laid out the way the Hugging Face cache holds a downloaded one
    repo = tmp_path / "hf" / "hub" / "models--openai-community--gpt2"
    config = transformers.GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=4)
    revision = "0" * 40
    transformers.GPT2LMHeadModel(config).save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    command = [sys.executable, os.path.join(REPO, "sample.py"), "--start", "Hello", "--max_new_tokens", "5",
               "--num_samples", "1", "--device", "cpu"]
    result = subprocess.run(command + ["--init_from", "gpt2"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello")
    result = subprocess.run(command + ["--init_from", "gpt2-medium"], capture_output=True, text=True, env=env,
                            cwd=tmp_path)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "not in the local Hugging Face cache" in result.stderr


# -- evaluate.py report --------------------------------------------------------------------------

def masks_of(path):
    checkpoint = torch.load(path, weights_only=True)
    return {name: row for group, mask in checkpoint["sparsity"]["masks"].items()
            for name, row in zip(group.split(","), mask)}


def test_report_densities_and_changes_match_the_masks(runs, tmp_path, capsys):
    report = run_evaluate(["report", "--ckpt", runs["mst_end"], "--previous", runs["ultra"]], tmp_path)
    after, before = masks_of(runs["mst_end"]), masks_of(runs["ultra"])
    layers = {row["name"]: row for row in report["layers"]}
    assert set(layers) == set(after)  # sparse_embedding: the embedding has a mask too
    total_changed = 0
    for name, mask in after.items():
        live = [i for i, on in enumerate(mask.tolist()) if on]
        live_before = [i for i, on in enumerate(before[name].tolist()) if on]
        changed = len(set(live) ^ set(live_before))  # positions live in one and not the other
        assert layers[name]["density"] == pytest.approx(len(live) / len(mask))
        assert layers[name]["changed"] == changed
        assert layers[name]["grown"] == len(set(live) - set(live_before))
        total_changed += changed
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
    tokens_per_iter = 1 * 4 * 32
    assert report["attention"] == "blocksparse" and report["attention_density"] < 1.0
    assert report["flops_per_token"] * tokens_per_iter == pytest.approx(step["flops_mst"] - report["training_flops"],
                                                                        rel=1e-9)
    assert report["flops_per_token_dense"] * tokens_per_iter == pytest.approx(
        step["flops_dense"] - report["training_flops_dense"], rel=1e-9)
    types = {t["type"]: t for t in report["types"]}
    assert sum(t["flops_share"] for t in types.values()) == pytest.approx(1.0)
    assert sum(t["param_share"] for t in types.values()) == pytest.approx(1.0)
    assert types["attention"]["params"] == 0 and types["other"]["flops_per_token"] == 0
    c = torch.load(runs["ultra"], weights_only=True)["model_config"]
    dense_attention = c["n_layer"] * 12 * c["n_embd"] * (32 + 1) / 2
    assert types["attention"]["flops_per_token"] == pytest.approx(dense_attention * report["attention_density"])


def test_report_of_a_dense_checkpoint_is_all_ones(runs, tmp_path):
    report = run_evaluate(["report", "--ckpt", runs["dense"], "--previous", runs["dense"]], tmp_path)
    assert report["density"] == report["density_all_params"] == 1.0
    assert all(row["density"] == 1.0 and row["changed"] == 0 for row in report["layers"])
    assert report["flops_per_token"] == report["flops_per_token_dense"]


# -- bad input: one line, nonzero exit ------------------------------------------------------------

def one_line_error(capsys, main, args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code != 0
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_bad_input_is_one_line(runs, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    not_ours = tmp_path / "not_ours.pt"
    torch.save({"weights": torch.zeros(2)}, not_ours)
    missing = str(tmp_path / "missing.pt")
    for args, says in [(["--ckpt", missing], "not found"),
                       (["--out_dir", str(tmp_path)], "not found"),
                       (["--ckpt", str(junk)], "not a checkpoint"),
                       (["--ckpt", str(not_ours)], "not a train.py checkpoint"),
                       (["--ckpt", runs["ultra"], "--start", f"FILE:{tmp_path}/nope.txt"], "prompt file"),
                       (["--ckpt", runs["ultra"], "--start", "Hello"], "outside this model's vocabulary"),
                       (["--ckpt", runs["ultra"], "--temperature", "0"], "--temperature"),
                       (["--ckpt", runs["ultra"], "--attention", "sideways"], "invalid choice"),
                       (["--ckpt", runs["ultra"], "--out_dir", "elsewhere"], "not allowed with")]:
        assert says in one_line_error(capsys, sample.main, args)
    if importlib.util.find_spec("transformers") is None:  # with it, test_gpt2_from_the_local_cache checks this
        assert "transformers" in one_line_error(capsys, sample.main, ["--init_from", "gpt2", "--device", "cpu"])
    for args, says in [(["loss", "--ckpt", missing], "not found"),
                       (["loss", "--ckpt", runs["ultra"], "--data_dir", str(tmp_path)], "val.bin not found"),
                       (["loss", "--ckpt", runs["ultra"], "--eval_iters", "0",
                         "--data_dir", str(runs["root"] / "data" / "markov")], "must be positive"),
                       (["report", "--ckpt", str(junk)], "not a checkpoint"),
                       (["report", "--ckpt", runs["ultra"], "--previous", missing], "not found"),
                       (["report"], "required"),
                       ([], "required")]:
        assert says in one_line_error(capsys, evaluate.main, args)


def test_command_line_errors_have_no_traceback(tmp_path):
    for script, args in [("sample.py", ["--ckpt", str(tmp_path / "missing.pt")]),
                         ("evaluate.py", ["report", "--ckpt", str(tmp_path / "missing.pt")])]:
        result = subprocess.run([sys.executable, os.path.join(REPO, script), *args], capture_output=True, text=True,
                                cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert result.returncode != 0
        assert result.stderr.strip().splitlines() == [f"error: checkpoint {tmp_path / 'missing.pt'} not found"]
        assert result.stdout == ""
