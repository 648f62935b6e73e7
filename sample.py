"""
Sample text from a trained model: a train.py checkpoint (dense or MST), or OpenAI's GPT-2.

    python sample.py --out_dir=out/mst_tiny --start="ROMEO:" --num_samples=3 --max_new_tokens=200
    python sample.py --ckpt=out/mst_tiny/ckpt.pt --start=FILE:prompt.txt --attention=hsa --seed=7
    python sample.py --init_from=gpt2 --start="The meaning of life is"

A checkpoint's MST masks are applied to its weights (runtime.open_checkpoint), so it is sampled
on exactly the topology it was trained with. Attention is dense unless --attention asks for the
checkpoint's sparse pattern (`hsa`, at its configured attn_window) or another one. The same
--seed gives the same samples on the same device.

--init_from=gpt2 (or gpt2-medium, -large, -xl) needs the `transformers` package and the weights
in the local Hugging Face cache; mst depends on neither and never downloads them. Our MLP uses
the exact GELU where GPT-2 used the tanh approximation, so its outputs differ very slightly from
OpenAI's (as nanoGPT's do).
"""

import argparse
import os
import sys

import torch

from model import ATTENTION_MODES, GPT, GPTConfig
from runtime import OneLineParser, autocast_for, fail, first_line, open_checkpoint, pick_device
from tokenizer import get_gpt2_encoding  # the tokenizer prepare.py made the training data with

GPT2_MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
# Hugging Face stores GPT-2's Conv1D weights as (in, out); nn.Linear wants (out, in)
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gpt2_from_hf_model(hf_model):
    """Our GPT holding the weights of a transformers GPT2LMHeadModel.

    The vocabulary stays at GPT-2's 50257 rather than our 50304: padding rows would be zero
    and give logit 0, far above GPT-2's typical logits, so they would have to be masked out
    everywhere. Unpadded, the logits are GPT-2's own.
    """
    c = hf_model.config
    T = c.n_positions
    tile = min(128, T)  # any valid pattern settings: they matter only for --attention other than dense
    config = GPTConfig(block_size=T, vocab_size=c.vocab_size, n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd,
                       dropout=0.0, bias=True, attn_block=tile, attn_window=max(tile, min(256, T) // tile * tile),
                       attn_stride=max(tile, min(512, T) // tile * tile))
    model = GPT(config)
    theirs = hf_model.state_dict()
    state = {}
    for name, ours in model.state_dict().items():
        # lm_head is tied to the token embedding in both models; some versions list it only once
        weight = theirs["transformer.wte.weight" if name == "lm_head.weight" else name].float()
        if name.endswith(CONV1D_WEIGHTS):
            weight = weight.t()
        if weight.shape != ours.shape:
            raise ValueError(f"{name}: GPT-2 has shape {tuple(weight.shape)}, our model {tuple(ours.shape)}")
        state[name] = weight
    model.load_state_dict(state)
    return model


def load_gpt2(name, device):
    try:
        import transformers  # imported only here: mst does not depend on transformers
    except ImportError:
        fail(f"--init_from={name} needs the transformers package (pip install transformers); mst does not install it")
    transformers.logging.set_verbosity_error()  # no progress bars or notices around our own output
    transformers.logging.disable_progress_bar()
    for repo in (name, f"openai-community/{name}"):  # the cache holds whichever name it was fetched under
        try:
            hf_model = transformers.GPT2LMHeadModel.from_pretrained(repo, local_files_only=True)  # never downloads
            break
        except OSError:
            continue
    else:
        fail(f"the {name} weights are not in the local Hugging Face cache: fetch them once "
             f"(e.g. huggingface-cli download openai-community/{name}); mst never downloads them")
    model = gpt2_from_hf_model(hf_model)
    return model.to(device), {"config": {}, "iter_num": None, "sparsity": None}


def read_prompt(start):
    if not start.startswith("FILE:"):
        return start
    path = start[len("FILE:"):]
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read the prompt file {path}: {first_line(e)}")


def encode_prompt(text, enc, vocab_size):
    # "<|endoftext|>" in a prompt is the document separator the model was trained with
    ids = enc.encode(text, allowed_special={"<|endoftext|>"}) or [enc.eot_token]  # empty: start a new document
    too_large = [i for i in ids if i >= vocab_size]
    if too_large:
        fail(f"the prompt has token {too_large[0]} ({enc.decode([too_large[0]])!r}), outside this model's "
             f"vocabulary of {vocab_size}")
    return ids


def sample(model, start_ids, num_samples, max_new_tokens, temperature=1.0, top_k=None, seed=1337,
           device="cpu", dtype="auto", num_tokens=None, attention="dense"):
    """(num_samples, len(start_ids) + max_new_tokens) ids; the same seed gives the same ids.

    num_tokens: how many ids the tokenizer can decode. A model whose vocabulary is padded
    past it (50304 > 50257) never samples the padding ids.
    """
    model.eval()
    hook = None
    if num_tokens is not None and model.config.vocab_size > num_tokens:
        def forbid_padding(module, inputs, logits):
            logits[..., num_tokens:] = float("-inf")
            return logits
        hook = model.lm_head.register_forward_hook(forbid_padding)
    idx = torch.tensor([start_ids] * num_samples, dtype=torch.long, device=device)  # all samples in one batch
    generator = torch.Generator(device=device).manual_seed(seed)  # the only randomness generate() uses
    try:
        with autocast_for(device, dtype):
            return model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, generator=generator,
                                  mode=attention)
    finally:
        if hook is not None:
            hook.remove()


def main(argv=None):
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out_dir", default="out", help="sample from OUT_DIR/ckpt.pt (default: out)")
    where.add_argument("--ckpt", help="sample from this checkpoint file (ckpt.pt, best.pt, a copy)")
    parser.add_argument("--init_from", default="resume", choices=("resume",) + GPT2_MODELS,
                        help="'resume': a train.py checkpoint (default); gpt2*: OpenAI's weights via transformers")
    parser.add_argument("--start", default="\n", help="the prompt, or FILE:path to read it from a file")
    parser.add_argument("--num_samples", type=int, default=3)
    parser.add_argument("--max_new_tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="< 1 sharpens, > 1 flattens the distribution")
    parser.add_argument("--top_k", type=int, default=200, help="sample among the k likeliest tokens; 0: all")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--attention", default="dense", choices=("hsa",) + ATTENTION_MODES,
                        help="dense (default), hsa (the checkpoint's hsa_mode), or a pattern by name")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                        help="auto: bf16 autocast on CUDA, fp32 on the CPU, as train.py")
    args = parser.parse_args(argv)
    if args.num_samples < 1 or args.max_new_tokens < 0:
        fail("--num_samples must be at least 1 and --max_new_tokens at least 0")
    if not args.temperature > 0:
        fail(f"--temperature={args.temperature} must be positive")
    if args.top_k < 0:
        fail(f"--top_k={args.top_k} must be positive (or 0 for no cut)")
    device = pick_device(args.device)
    prompt = read_prompt(args.start)  # before the (slow) model load, so a bad path fails at once

    if args.init_from == "resume":
        path = args.ckpt or os.path.join(args.out_dir, "ckpt.pt")
        model, checkpoint = open_checkpoint(path, device)
    else:
        path = args.init_from
        model, checkpoint = load_gpt2(args.init_from, device)
    attention = model.config.hsa_mode if args.attention == "hsa" else args.attention
    if device != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = True  # as in training
        torch.backends.cudnn.allow_tf32 = True

    try:
        enc = get_gpt2_encoding()
    except Exception as e:
        fail(f"no GPT-2 tokenizer: {first_line(e)}")
    start_ids = encode_prompt(prompt, enc, model.config.vocab_size)

    masks = (checkpoint.get("sparsity") or {}).get("masks", {})
    live = sum(int(m.sum()) for m in masks.values())
    density = f"density {live / sum(m.numel() for m in masks.values()):.3f}" if masks else "dense weights"
    step = "" if checkpoint["iter_num"] is None else f" (step {checkpoint['iter_num']})"
    print(f"{path}{step}: {density}, {attention} attention, {len(start_ids)} prompt tokens, seed {args.seed}",
          file=sys.stderr)

    ids = sample(model, start_ids, args.num_samples, args.max_new_tokens, args.temperature, args.top_k or None,
                 args.seed, device, args.dtype, num_tokens=enc.n_vocab, attention=attention)
    for row in ids.tolist():
        print(enc.decode(row))
        print("---------------")


if __name__ == "__main__":
    main()
