# GPT-2 124M on OpenWebText with Mixed Sparsity Training, in the paper's setup.
#   python prepare.py openwebtext
#   torchrun --standalone --nproc_per_node=8 train.py config/mst_gpt2.py
# 480 sequences of 1024 tokens per step (12 per micro-step x 40 micro-steps, split over the GPUs).
out_dir = "out/mst_gpt2"
dataset = "openwebtext"
n_layer = 12
n_head = 12
n_embd = 768
block_size = 1024
batch_size = 12
gradient_accumulation_steps = 40
max_iters = 600000
lr_decay_iters = 600000
learning_rate = 6e-4
min_lr = 6e-5
warmup_iters = 2000
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
eval_interval = 2000
eval_iters = 200
# MST: warm-up over the first 10%, 90% sparse until 80%, dense again at the end (README, "Choices").
mst = True
sparsify_end = 60000
ultra_end = 480000
restore_end = 600000
peak_sparsity = 0.9
sparsity_distribution = "erdos_renyi"
sparse_embedding = True  # as the authors did; the lm_head alone is 31% of the dense FLOPs
update_interval = 100
drop_fraction = 0.3
grow_mode = "mixed"
grow_gradient_share = 0.75
hsa_mode = "blocksparse"
hsa_phases = ("ultra",)
