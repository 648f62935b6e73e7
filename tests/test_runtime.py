"""runtime.py: checkpoints read with one-line errors, the evaluation loss against a loss written out
by hand, token files, and the attention train.py uses at a step."""

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
    schedule = SparsitySchedule(max_iters=100, sparsify_end=0.1, ultra_end=0.5, restore_end=1.0,
                                hsa_phases=("ultra", "restoration"), hsa_window_follows_sparsity=True)
    assert runtime.training_attention(model, None, 30, "cpu") == ("dense", 32, None, 1.0)  # a dense run
    assert runtime.training_attention(model, schedule, 5, "cpu")[:3] == ("dense", 32, None)  # sparsify phase
    mode, window, pattern, density = runtime.training_attention(model, schedule, 30, "cpu")  # ultra
    assert (mode, window) == ("blocksparse", 8) and pattern.shape == (32, 32) and density < 1.0
    mode, window, _, wider = runtime.training_attention(model, schedule, 60, "cpu")  # restoration: grown
    growth = 1 - schedule.target_sparsity(60) / 0.9
    assert window == 8 + int(growth * 24) // 8 * 8 > 8 and wider > density
    assert math.isclose(wider, model.attention_density(32, window))
