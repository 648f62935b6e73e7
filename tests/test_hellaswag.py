"""evaluate.py hellaswag on a tiny train.py checkpoint and a handful of examples written here in the
real file's format: the accuracies against a float64 reference that scores every candidate on its
own from the model's logits; the download, its cache, and the one line when it cannot happen."""

import contextlib
import copy
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import evaluate
from model import GPT, GPTConfig
from tokenizer import get_gpt2_encoding

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK_SIZE = 32

pytestmark = pytest.mark.usefixtures("one_thread")

# (activity_label, ctx_a, ctx_b, endings). Endings of unequal lengths, so that the summed and the
# mean loss can pick differently; the third context is too long for block_size with its endings.
EXAMPLES = [
    ("Making tea", "A woman fills a kettle at the sink.", "she",
     ["puts it on the stove and waits.", "sings.", "throws the kettle out of the window and laughs loudly at it.",
      "boils water."]),
    ("Skateboarding", "A boy rolls down a ramp on a board.", "the boy",
     ["falls.", "lands a jump and keeps rolling down the street.", "eats soup.", "is a cloud of purple ideas."]),
    ("Gardening", "A man kneels in a garden bed beside a row of tomatoes and a basket of tools, pulls on a "
     "pair of gloves, looks at the sky for a while, and then, after a long pause, picks up a small trowel "
     "from the grass.", "he",
     ["digs a hole.", "plants a seedling in the soil.", "drives a bus.", "reads the trowel a story."]),
    ("Washing a car", "Two people soap a red car in a driveway.", "they",
     ["rinse it with a hose.", "fly away.", "dry it with towels until it shines in the sun.", "paint it."]),
    ("How to fold a shirt", "Lay the shirt flat on a table.", "",
     ["Fold the sleeves in.", "Then burn it.", "Fold the sides toward the middle and smooth out the wrinkles.",
      "Ask the table."]),
    ("Playing piano", "A girl sits at a piano in a bright room.", "she",
     ["plays a song.", "closes the lid.", "eats the keys one at a time.", "begins to play a slow waltz for her family."]),
    ("Running", "A runner ties her shoes at the start line.", "the runner",
     ["starts.", "sprints off when the gun sounds.", "sleeps.", "turns into a bird and flies over the finish line."]),
]


def write_examples(path, labels):
    """The examples as hellaswag_val.jsonl holds them: one JSON object a line, with every field."""
    with open(path, "w", encoding="utf-8") as f:
        for ind, ((activity, ctx_a, ctx_b, endings), label) in enumerate(zip(EXAMPLES, labels)):
            ctx = f"{ctx_a} {ctx_b[0].upper() + ctx_b[1:]}" if ctx_b else ctx_a
            f.write(json.dumps({"ind": 100 + ind, "activity_label": activity, "ctx_a": ctx_a, "ctx_b": ctx_b,
                                "ctx": ctx, "split": "val", "split_type": "indomain", "label": label,
                                "endings": endings, "source_id": f"activitynet~v_test{ind}"}) + "\n")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny MST run over GPT-2's whole vocabulary: ckpt_2.pt is in the ultra phase with blocksparse
    attention at a window of 8, ckpt.pt dense at the end. Returns its folder, checkpoints and evaluations."""
    root = tmp_path_factory.mktemp("hellaswag_run")
    os.makedirs(root / "data" / "random")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4000), ("val", 1000)):
        rng.integers(0, 50257, n).astype(np.uint16).tofile(root / "data" / "random" / f"{split}.bin")
    command = [sys.executable, os.path.join(REPO, "train.py"), "--dataset=random", "--n_layer=2", "--n_head=2",
               "--n_embd=16", f"--block_size={BLOCK_SIZE}", "--batch_size=2", "--gradient_accumulation_steps=1",
               "--max_iters=4", "--lr_decay_iters=4", "--warmup_iters=1", "--learning_rate=1e-2", "--eval_interval=2",
               "--eval_iters=1", "--attn_block=8", "--attn_window=8", "--attn_stride=16", "--hsa_mode=blocksparse",
               "--sparsify_end=0.25", "--ultra_end=0.75", "--update_interval=1", "--hsa_phases=('ultra',)",
               "--hsa_window_follows_sparsity=False", "--keep_checkpoints=(2,)", "--device=cpu", "--out_dir=out"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MST_DATA_DIR=str(root / "data"))
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    evals = {r["step"]: r for r in map(json.loads, open(root / "out" / "metrics.jsonl")) if "val_loss" in r}
    return {"root": root, "ultra": str(root / "out" / "ckpt_2.pt"), "end": str(root / "out" / "ckpt.pt"),
            "evals": evals}


def checkpoint_logits(path, attention=None):
    """The float64 logits of the model a train.py checkpoint holds, for one sequence of ids; attention:
    (pattern, window), or None for dense."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = GPT(GPTConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model"])  # an MST checkpoint's masked weights are zeros already
    model.double().eval()

    def logits_of(ids):
        x = torch.tensor([ids])
        pattern = None if attention is None else model.hsa_pattern(len(ids), "cpu", attention[1], attention[0])
        with torch.no_grad():
            return model(x, x, pattern)[0][0]
    return logits_of


def reference_losses(logits_of):
    """Per example, the 4 candidates' (summed, mean) loss over the ending's tokens, in float64, each
    candidate run alone and unpadded."""
    enc = get_gpt2_encoding()
    losses = []
    for _, ctx_a, ctx_b, endings in EXAMPLES:
        ctx = f"{ctx_a} {ctx_b[0].upper() + ctx_b[1:]}" if ctx_b else ctx_a
        context, ends = enc.encode(ctx), [enc.encode(" " + e) for e in endings]
        context = context[-(BLOCK_SIZE + 1 - max(map(len, ends))):]  # what fits with the longest ending
        example = []
        for end in ends:
            log_probs = torch.log_softmax(logits_of((context + end)[:-1]).double(), dim=-1)
            token_losses = [-log_probs[len(context) - 1 + j, t].item() for j, t in enumerate(end)]
            example.append((sum(token_losses), sum(token_losses) / len(token_losses)))
        losses.append(example)
    return losses


def picks(losses):
    """Per example, the candidate of the lowest summed loss and of the lowest mean loss; each must win
    by a margin far above float32's rounding, or the comparison would prove nothing."""
    chosen = []
    for example in losses:
        for k in (0, 1):
            first, second = sorted(candidate[k] for candidate in example)[:2]
            assert second - first > 1e-4, example
        chosen.append(tuple(min(range(4), key=lambda i: example[i][k]) for k in (0, 1)))
    return chosen


def labels_for(chosen):
    """Labels that make the summed and the mean loss score differently: in turn the sum's pick, the
    mean's pick, and an ending neither picks where there is one."""
    labels = []
    for i, (by_sum, by_mean) in enumerate(chosen):
        neither = next(j for j in range(4) if j not in (by_sum, by_mean))
        labels.append((by_sum, by_mean, neither)[i % 3])
    return labels


def expected_scores(losses, data_dir):
    """Writes the examples under data_dir with labels that tell acc from acc_norm; returns the picks,
    the labels and the two accuracies they give."""
    chosen = picks(losses)
    assert any(by_sum != by_mean for by_sum, by_mean in chosen)
    labels = labels_for(chosen)
    os.makedirs(data_dir / "hellaswag")
    write_examples(data_dir / "hellaswag" / "hellaswag_val.jsonl", labels)
    acc = sum(by_sum == label for (by_sum, _), label in zip(chosen, labels)) / len(labels)
    acc_norm = sum(by_mean == label for (_, by_mean), label in zip(chosen, labels)) / len(labels)
    assert acc != acc_norm
    return chosen, labels, acc, acc_norm


def hellaswag(args, data_dir, tmp_path):
    out = tmp_path / "hellaswag.json"
    evaluate.main(["hellaswag", *args, "--device", "cpu", "--data_dir", str(data_dir), "--json", str(out)])
    return json.load(open(out))


@pytest.mark.parametrize("which, attention", [("end", "dense"), ("ultra", "auto"), ("ultra", "dense")])
def test_accuracies_match_a_float64_reference(run, which, attention, tmp_path, capsys):
    step = 4 if which == "end" else 2
    logged = run["evals"][step]
    trained = None if attention == "dense" or logged["attn_mode"] == "dense" else (logged["attn_mode"],
                                                                                  logged["attn_window"])
    if which == "ultra" and attention == "auto":  # the checkpoint does run sparse attention here
        assert trained == ("blocksparse", 8)
        dense = reference_losses(checkpoint_logits(run[which]))
    losses = reference_losses(checkpoint_logits(run[which], trained))
    if trained is not None:  # and the pattern changes the model's output on these sequences
        assert max(abs(a[0] - b[0]) for x, y in zip(losses, dense) for a, b in zip(x, y)) > 1e-3
    chosen, labels, acc, acc_norm = expected_scores(losses, tmp_path / "data")

    [result] = hellaswag(["--ckpt", run[which], "--attention", attention], tmp_path / "data", tmp_path)
    assert (result["acc"], result["acc_norm"], result["examples"]) == (acc, acc_norm, len(EXAMPLES))
    assert result["contexts_cut"] == 1  # the gardening example's
    assert (result["attention"], result["step"]) == ((trained or ("dense",))[0], step)
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"hellaswag acc_norm {acc_norm:.4f}, acc {acc:.4f} over {len(EXAMPLES)} examples")

    # --limit scores the first examples only
    [first] = hellaswag(["--ckpt", run[which], "--attention", attention, "--limit", "3"], tmp_path / "data", tmp_path)
    assert first["examples"] == 3
    assert first["acc"] == sum(by_sum == label for (by_sum, _), label in zip(chosen[:3], labels)) / 3
    assert first["acc_norm"] == sum(by_mean == label for (_, by_mean), label in zip(chosen[:3], labels)) / 3


def test_openai_gpt2(tmp_path, monkeypatch, capsys):
    transformers = pytest.importorskip("transformers")  # not a dependency: this runs where it is installed
    # a random GPT-2 with the exact GELU, as ours, for the one OpenAI's weights would give (test_sample.py
    # checks how they are found in the Hugging Face cache)
    config = transformers.GPT2Config(n_positions=BLOCK_SIZE, n_embd=16, n_layer=1, n_head=2,
                                     activation_function="gelu")
    torch.manual_seed(0)
    hf_model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        hf_model.transformer.wte.weight.mul_(20)  # logits far apart, so every pick is clear
    monkeypatch.setattr(transformers.GPT2LMHeadModel, "from_pretrained", lambda name, **kwargs: hf_model)

    double = copy.deepcopy(hf_model).double()
    with torch.no_grad():
        losses = reference_losses(lambda ids: double(torch.tensor([ids])).logits[0])
    _, _, acc, acc_norm = expected_scores(losses, tmp_path / "data")
    [scores] = hellaswag(["--init_from", "gpt2"], tmp_path / "data", tmp_path)
    assert (scores["model"], scores["acc"], scores["acc_norm"]) == ("gpt2", acc, acc_norm)
    assert capsys.readouterr().out.startswith(f"hellaswag acc_norm {acc_norm:.4f}, acc {acc:.4f} over "
                                              f"{len(EXAMPLES)} examples")


# -- the download -----------------------------------------------------------------------------------

@contextlib.contextmanager
def serving(body, announced=None):
    """A local HTTP server that answers every GET with `body`, announced as `announced` bytes (its
    length by default). Yields its URL and the list of paths requested."""
    requested = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) if announced is None else announced))
            self.end_headers()
            self.wfile.write(body)  # HTTP/1.0: the connection closes after it, cut or not

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/rowanz/hellaswag/data/hellaswag_val.jsonl", requested
    finally:
        server.shutdown()
        server.server_close()


def unreachable_url():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hellaswag_val.jsonl"


def test_downloaded_once_then_read_from_the_cache(run, tmp_path, monkeypatch):
    source = tmp_path / "served.jsonl"
    write_examples(source, [0] * len(EXAMPLES))
    body = source.read_bytes()
    cached = tmp_path / "data" / "hellaswag" / "hellaswag_val.jsonl"
    with serving(body) as (url, requested):
        monkeypatch.setattr(evaluate, "HELLASWAG_URL", url)
        [first] = hellaswag(["--ckpt", run["end"]], tmp_path / "data", tmp_path)
        assert len(requested) == 1 and cached.read_bytes() == body
        assert os.listdir(cached.parent) == ["hellaswag_val.jsonl"]
        [again] = hellaswag(["--ckpt", run["end"]], tmp_path / "data", tmp_path)
        assert len(requested) == 1  # not downloaded again
    assert first == again and first["examples"] == len(EXAMPLES)
    monkeypatch.setattr(evaluate, "HELLASWAG_URL", unreachable_url())  # offline now: the cache still serves
    assert hellaswag(["--ckpt", run["end"]], tmp_path / "data", tmp_path) == [first]


def test_offline_or_cut_download_is_one_line_and_caches_nothing(run, tmp_path, monkeypatch, one_line_error,
                                                                  capsys):
    folder = tmp_path / "data" / "hellaswag"
    args = ["hellaswag", "--ckpt", run["end"], "--device", "cpu", "--data_dir", str(tmp_path / "data")]
    monkeypatch.setattr(evaluate, "HELLASWAG_URL", unreachable_url())
    error = one_line_error(evaluate.main, args)
    assert error.startswith("error: cannot reach 127.0.0.1")
    assert f"by hand to {folder / 'hellaswag_val.jsonl'}" in error  # where to put the file
    assert not os.path.exists(folder) or os.listdir(folder) == []
    body = b'{"ctx": "A man", "endings": ["a", "b", "c", "d"], "label": 0}\n' * 10
    with serving(body[:-30], announced=len(body)) as (url, requested):  # the connection drops 30 bytes short
        monkeypatch.setattr(evaluate, "HELLASWAG_URL", url)
        with pytest.raises(SystemExit) as exit_info:
            evaluate.main(args)
        assert len(requested) == 1
    notice, error = capsys.readouterr().err.strip().splitlines()  # the download's start, then the error
    assert exit_info.value.code == 2 and notice.startswith(f"downloading {url}")
    assert error == (f"error: cannot download HellaSwag (cut off after {len(body) - 30:,} of {len(body):,} bytes): "
                     f"download {url} by hand to {folder / 'hellaswag_val.jsonl'}")
    assert os.listdir(folder) == []  # neither the cut file nor its .tmp


def test_bad_input_is_one_line(run, tmp_path, one_line_error):
    folder = tmp_path / "data" / "hellaswag"
    os.makedirs(folder)
    write_examples(folder / "hellaswag_val.jsonl", [0] * len(EXAMPLES))
    with open(folder / "hellaswag_val.jsonl", "a") as f:
        f.write('{"ctx": "A man", "endings": ["a", "b", "c"], "label": 0}\n')
    data = ["--device", "cpu", "--data_dir", str(tmp_path / "data")]
    for args, says in [([], "give --ckpt=PATH"),
                       (["--ckpt", run["end"], "--init_from", "gpt2"], "give --ckpt=PATH"),
                       (["--ckpt", run["end"], "--limit", "0"], "--limit=0"),
                       (["--ckpt", run["end"]], f"line {len(EXAMPLES) + 1}: not a HellaSwag example"),
                       (["--ckpt", run["end"], "--attention", "sideways"], "invalid choice")]:
        assert says in one_line_error(evaluate.main, ["hellaswag", *args, *data])
    # an ending longer than block_size leaves no room for a context
    write_examples(folder / "hellaswag_val.jsonl", [0] * len(EXAMPLES))
    long_ending = " ".join(["word"] * (BLOCK_SIZE + 1))
    with open(folder / "hellaswag_val.jsonl", "w") as f:
        f.write(json.dumps({"ctx": "A man", "endings": ["a", "b", "c", long_ending], "label": 0}) + "\n")
    error = one_line_error(evaluate.main, ["hellaswag", "--ckpt", run["end"], *data])
    assert f"example 1 has an ending of {BLOCK_SIZE + 1} tokens" in error and f"block_size of {BLOCK_SIZE}" in error
