# A 5M-parameter GPT-2 on the embedded Shakespeare corpus that passes through every MST phase
# and Hybrid Sparse Attention in a few minutes on two CPU cores:
#   python prepare.py shakespeare && python train.py config/mst_tiny.py
out_dir = "out/mst_tiny"
dataset = "shakespeare"
eval_interval = 60
eval_iters = 10
log_interval = 10
n_layer = 4
n_head = 4
n_embd = 96
block_size = 128
batch_size = 8
gradient_accumulation_steps = 1
learning_rate = 2e-3
min_lr = 2e-4
max_iters = 240
lr_decay_iters = 240
warmup_iters = 20
# Sparsity Variation: dense -> 0.9 by step 60, held to 180, back to dense at 240.
sparsify_end = 60
ultra_end = 180
restore_end = 240
update_interval = 12
# In a model this small the tied embedding holds 90% of the weights; left dense it would
# hide what the method saves.
sparse_embedding = True
hsa_mode = "blocksparse"
attn_block = 16
attn_window = 32
attn_stride = 64
