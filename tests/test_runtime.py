"""runtime.py: checkpoints read with one-line errors, the evaluation loss against a loss written out
by hand, token files, and the attention train.py uses at a step."""

import argparse
import math

import numpy as np
import pytest
import torch

import runtime
from model import GPT, GPTConfig
from sparse import SparsitySchedule


def tiny_model():
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=32, vocab_size=64, n_layer=1, n_head=2, n_embd=16, attn_window=8,
                         attn_stride=16, attn_block=8))


def one_line_error(capsys, call):
    with pytest.raises(SystemExit) as exit_info:
        call()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    return err


def test_checkpoints_that_cannot_load_are_one_line(tmp_path, capsys):
    state = {"model": tiny_model().state_dict(), "model_config": vars(tiny_model().config), "config": {},
             "iter_num": 3, "schedule": None}
    good = str(tmp_path / "good.pt")
    runtime.save_checkpoint(state, good)
    assert runtime.read_checkpoint(good)["iter_num"] == 3
    data = open(good, "rb").read()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("hello")
    torch.save({k: v for k, v in state.items() if k != "schedule"}, tmp_path / "old.pt")
    for name, says in (("missing.pt", "not found"), ("cut.pt", "is not a checkpoint"), ("text.pt", "is not a checkpoint"),
                       ("old.pt", "or one from an older version: it has no 'schedule'")):
        assert says in one_line_error(capsys, lambda: runtime.read_checkpoint(str(tmp_path / name)))
    model, checkpoint = runtime.open_checkpoint(good, "cpu")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), state["model"].values()))


def test_a_checkpoint_unsafe_to_unpickle_is_one_clear_line(tmp_path, capsys):
    path = str(tmp_path / "pickled.pt")
    torch.save({"model": {}, "args": argparse.Namespace(lr=1e-3)}, path)  # an object weights_only refuses
    err = one_line_error(capsys, lambda: runtime.read_checkpoint(path))
    assert err == (f"error: {path} holds objects that loading with weights_only=True refuses (argparse.Namespace): "
                   "it was not written by train.py, or comes from a source not to be trusted, so it is not loaded\n")
    # torch bolds words of its messages with terminal escapes; a first line never carries them
    assert runtime.first_line(RuntimeError("\x1b[1mdo this\x1b[0m only if you trust it.\n\tsecond")) == \
        "do this only if you trust it."


def test_estimate_loss_is_the_mean_over_fixed_batches(tmp_path):
    model = tiny_model()
    tokens = np.random.default_rng(0).integers(0, 64, 5000).astype(np.uint16)
    path = str(tmp_path / "val.bin")
    tokens.tofile(path)
    loss = runtime.estimate_loss(model, path, 32, 4, 3, 7, "cpu", "float32", 64)
    assert loss == runtime.estimate_loss(model, path, 32, 4, 3, 7, "cpu", "float32", 64)  # the same batches
    generator, losses = torch.Generator().manual_seed(7), []
    with torch.no_grad():
        for _ in range(3):  # by hand: the generator's draws, the next-token targets, the mean
            starts = torch.randint(len(tokens) - 32, (4,), generator=generator)
            x = torch.tensor(np.stack([tokens[i:i + 32] for i in starts.tolist()]).astype(np.int64))
            y = torch.tensor(np.stack([tokens[i + 1:i + 33] for i in starts.tolist()]).astype(np.int64))
            logits, _ = model(x, y)
            losses.append(torch.nn.functional.cross_entropy(logits.reshape(-1, 64), y.reshape(-1)).item())
    assert loss == pytest.approx(sum(losses) / 3, rel=1e-6)
    assert model.training  # left in training mode, as train.py expects


def test_token_files_are_checked(tmp_path):
    assert "not found" in runtime.check_tokens(str(tmp_path / "none.bin"), 32)
    np.zeros(20, dtype=np.uint16).tofile(tmp_path / "short.bin")
    assert "holds 20 tokens, fewer than block_size + 1 = 33" in runtime.check_tokens(str(tmp_path / "short.bin"), 32)
    np.zeros(40, dtype=np.uint16).tofile(tmp_path / "ok.bin")
    assert runtime.check_tokens(str(tmp_path / "ok.bin"), 32) is None


def test_training_attention_follows_the_schedule():
    model = tiny_model()
    schedule = SparsitySchedule(max_iters=100, sparsify_end=0.1, ultra_end=0.5, restore_end=1.0, peak_sparsity=0.9,
                                hsa_phases=("ultra", "restoration"), hsa_window_follows_sparsity=True)
    assert runtime.training_attention(model, None, 30, "cpu") == ("dense", 32, None, 1.0)  # a dense run
    assert runtime.training_attention(model, schedule, 5, "cpu")[:3] == ("dense", 32, None)  # sparsify phase
    mode, window, pattern, density = runtime.training_attention(model, schedule, 30, "cpu")  # ultra
    assert (mode, window) == ("blocksparse", 8) and pattern.shape == (32, 32) and density < 1.0
    mode, window, _, wider = runtime.training_attention(model, schedule, 60, "cpu")  # restoration: grown
    growth = 1 - schedule.target_sparsity(60) / 0.9
    assert window == 8 + int(growth * 24) // 8 * 8 > 8 and wider > density
    assert math.isclose(wider, model.attention_density(32, window))


def test_one_answer_for_the_step_the_log_and_the_flop_plan():
    """Without a device (the FLOP plan) the same mode, window and density, and no pattern built; the
    log's labels: the mode, with /W once the window has grown."""
    model = tiny_model()
    schedule = SparsitySchedule(max_iters=100, sparsify_end=0.1, ultra_end=0.5, restore_end=1.0, peak_sparsity=0.9,
                                hsa_phases=("ultra", "restoration"), hsa_window_follows_sparsity=True)
    for step in range(100):
        built, planned = (runtime.training_attention(model, schedule, step, d) for d in ("cpu", None))
        assert planned._replace(pattern=built.pattern) == built and planned.pattern is None
    ultra, grown = (runtime.training_attention(model, schedule, step) for step in (30, 60))
    assert (ultra.label(8), ultra.label(8, "hsa")) == ("blocksparse", "hsa")
    assert (grown.label(8), grown.label(8, "hsa")) == (f"blocksparse/{grown.window}", f"hsa/{grown.window}")
    assert runtime.training_attention(model, schedule, 5).label(8) == "dense"


def test_the_largest_token_of_a_file_and_ids_outside_the_vocabulary(tmp_path, capsys):
    tokens = np.random.default_rng(1).integers(0, 64, 2500).astype(np.uint16)
    tokens[2499] = 63  # the largest id in the last, short chunk
    path = str(tmp_path / "train.bin")
    tokens.tofile(path)
    assert runtime.largest_token(path) == runtime.largest_token(path, chunk=1000) == int(tokens.max()) == 63
    tokens[1234] = 900  # in a middle chunk
    tokens.tofile(path)
    assert runtime.largest_token(path, chunk=1000) == runtime.largest_token(path) == 900
    assert runtime.check_tokens(path, 32, vocab_size=901) is None
    assert runtime.check_tokens(path, 32, vocab_size=900) == (f"{path} holds token id 900, outside the model's "
                                                              "vocabulary of 900 ids (vocab_size): is it the dataset "
                                                              "meant, tokenised for this model?")
    # a batch is checked for what it reads, inputs and targets: one line, not the embedding's IndexError
    data = np.memmap(path, dtype=np.uint16, mode="r")
    x, y = runtime.read_batch(data, torch.tensor([0, 1240]), 32, vocab_size=64)  # around 1234: no error
    assert torch.equal(x[1], torch.from_numpy(tokens[1240:1272].astype(np.int64)))
    assert torch.equal(y[1], torch.from_numpy(tokens[1241:1273].astype(np.int64)))
    for start in (1203, 1202):  # 1234 is the inputs' last token, then only the targets' last
        err = one_line_error(capsys, lambda: runtime.read_batch(data, torch.tensor([0, start]), 32, vocab_size=64))
        assert err == f"error: {runtime.out_of_vocabulary(data.filename, 900, 64)}\n" and "900" in err
