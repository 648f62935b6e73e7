# The comparison setup of README "Does MST deliver?" on the docmix corpus (40M GPT-2 tokens of
# real text): GPT-2 124M, 32 x 1024 tokens per step, 2500 steps (about two epochs), dense.
#   python prepare.py tokens --train docmix_train.u16.xz --val docmix_val.u16.xz --name docmix
#   python train.py config/docmix_dense.py
out_dir = "out/docmix_dense"
dataset = "docmix"
batch_size = 32
gradient_accumulation_steps = 1
max_iters = 2500
warmup_iters = 100
eval_interval = 250
eval_iters = 40
log_interval = 50
always_save_checkpoint = False
mst = False
