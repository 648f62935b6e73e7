# A 5M-parameter GPT-2 on the embedded Shakespeare corpus that passes through every MST phase
# and Hybrid Sparse Attention in a few minutes on two CPU cores:
#   python prepare.py shakespeare && python train.py config/mst_tiny.py
out_dir = "out/mst_tiny"
dataset = "shakespeare"
eval_interval = 30
eval_iters = 10
log_interval = 10
keep_checkpoints = (150,)  # a checkpoint from the middle of the ultra phase, for evaluate.py and sample.py
n_layer = 4
n_head = 4
n_embd = 96
block_size = 128
batch_size = 8
gradient_accumulation_steps = 1
learning_rate = 2e-3
min_lr = 2e-4
max_iters = 240
warmup_iters = 20
# The ramp to the peak over the first 10% (24 steps) holds three topology updates, restoration
# (steps 216-239) five: the default job shows the sparsity ramping, not jumping.
sparsify_end = 0.1
update_interval = 6
# A tile of 16 tokens, so that the 128-token sequences have a sparse pattern worth the name.
attn_block = 16
attn_window = 32
attn_stride = 64
