"""sample.py on real checkpoints (trained in conftest.py): determinism for a seed, the prompt, the
vocabulary, the checkpoint's masks, and OpenAI's GPT-2 weights where transformers is installed."""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

import sample
from model import GPT, GPTConfig
from runtime import open_checkpoint
from tokenizer import get_gpt2_encoding

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = " the"  # one token, 262

pytestmark = pytest.mark.usefixtures("one_thread")


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
    model, _ = open_checkpoint(runs["ultra"], "cpu")
    start = enc.encode(" and the")
    for attention in ("dense", "blocksparse"):
        ids = sample.sample(model, start, num_samples=3, max_new_tokens=40, seed=3, num_tokens=enc.n_vocab,
                            attention=attention)
        assert ids.shape == (3, len(start) + 40)  # 42 > block_size: generation crops the context
        assert ids[:, :len(start)].tolist() == [start] * 3
        assert 0 <= ids.min() and ids.max() < model.config.vocab_size
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
    name, mask = next(iter(checkpoint["sparsity"]["masks"].items()))
    dead = ~mask.view_as(checkpoint["model"][name])
    assert dead.any() and (checkpoint["model"][name][dead] == 0).all()
    checkpoint["model"][name][dead] = 1.0
    torch.save(checkpoint, tmp_path / "tampered.pt")
    model, _ = open_checkpoint(str(tmp_path / "tampered.pt"), "cpu")
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


def test_bad_input_is_one_line(runs, tmp_path, one_line_error):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    not_ours = tmp_path / "not_ours.pt"
    torch.save({"weights": torch.zeros(2)}, not_ours)
    for args, says in [(["--ckpt", str(tmp_path / "missing.pt")], "not found"),
                       (["--out_dir", str(tmp_path)], "not found"),
                       (["--ckpt", str(junk)], "not a checkpoint"),
                       (["--ckpt", str(not_ours)], "not a train.py checkpoint"),
                       (["--ckpt", runs["ultra"], "--start", f"FILE:{tmp_path}/nope.txt"], "prompt file"),
                       (["--ckpt", runs["ultra"], "--start", "Hello"], "outside this model's vocabulary"),
                       (["--ckpt", runs["ultra"], "--temperature", "0"], "--temperature"),
                       (["--ckpt", runs["ultra"], "--attention", "sideways"], "invalid choice"),
                       (["--ckpt", runs["ultra"], "--out_dir", "elsewhere"], "not allowed with")]:
        assert says in one_line_error(sample.main, args)
    if importlib.util.find_spec("transformers") is None:  # with it, test_gpt2_from_the_local_cache checks this
        assert "transformers" in one_line_error(sample.main, ["--init_from", "gpt2", "--device", "cpu"])


def test_command_line_errors_have_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "sample.py"), "--ckpt", str(tmp_path / "missing.pt")],
                            capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"error: checkpoint {tmp_path / 'missing.pt'} not found"]
    assert result.stdout == ""
