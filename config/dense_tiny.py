# The dense baseline for config/mst_tiny.py: the same model, data, steps and evaluation.
#   python train.py config/dense_tiny.py
out_dir = "out/dense_tiny"
dataset = "shakespeare"
eval_interval = 75
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
max_iters = 300
lr_decay_iters = 300
warmup_iters = 20
mst = False
