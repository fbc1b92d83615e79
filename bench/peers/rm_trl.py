"""Peer twin of ``rm_project.py``: TRL 1.16.0's RewardTrainer (pairwise) on K-way rankings
expanded to C(K,2) chosen/rejected pairs.

Runs in the peer's own environment (``bench/reward_model.py --vs-trl`` creates it in
``.peers/trl116``), never in the project's. Builds a tiny GPT-2 reward model and a word-level
tokenizer locally, makes N prompts with K ranked responses of random words, expands them to
chosen/rejected pairs as TRL needs, and times one epoch. Prints the last line as JSON.

    .peers/trl116/bin/python bench/peers/rm_trl.py [N] [K] [WORDS]
"""
import json, os, random, sys, time, tempfile
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true"); os.environ.setdefault("DO_NOT_TRACK", "true")
import torch
from itertools import combinations
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast
from trl import RewardConfig, RewardTrainer

N = int(sys.argv[1]) if len(sys.argv) > 1 else 32
K = int(sys.argv[2]) if len(sys.argv) > 2 else 9
W = int(sys.argv[3]) if len(sys.argv) > 3 else 24
rng = random.Random(0)
vocab = [f"w{i}" for i in range(2000)]
tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>"] + vocab)}, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
cfg = GPT2Config(vocab_size=len(hf_tok), n_positions=256, n_embd=256, n_layer=4, n_head=4, num_labels=1,
                 pad_token_id=0, eos_token_id=1, bos_token_id=1)
torch.manual_seed(0)
model = GPT2ForSequenceClassification(cfg)
rows = []
for _ in range(N):
    prompt = " ".join(rng.choice(vocab) for _ in range(W // 2))
    responses = [" ".join(rng.choice(vocab) for _ in range(W)) for _ in range(K)]  # index = rank
    for i, j in combinations(range(K), 2):
        rows.append({"chosen": prompt + " " + responses[i], "rejected": prompt + " " + responses[j]})
ds = Dataset.from_list(rows)
out = tempfile.mkdtemp()
# C(K,2) = 36 pairs per step at K = 9: the pairs of one prompt, as the project's batch of 1 prompt
args = RewardConfig(output_dir=out, per_device_train_batch_size=K * (K - 1) // 2, num_train_epochs=1,
                    learning_rate=1e-5, logging_steps=1000, save_strategy="no", report_to=[], disable_dropout=True,
                    max_length=128, dataloader_num_workers=0, use_cpu=True)
trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=hf_tok)
t, c = time.perf_counter(), time.process_time(); trainer.train()
dt, cpu = time.perf_counter() - t, time.process_time() - c
print(f"TRL RewardTrainer: {N} prompts x K={K} -> {len(rows)} pairs, epoch {dt:.1f}s, {len(rows)/dt:.1f} pairs/s")
print(json.dumps({"peer": "trl-reward-trainer", "trl": __import__("trl").__version__, "prompts": N, "K": K,
                  "pairs": len(rows), "epoch_s": round(dt, 3), "epoch_cpu_s": round(cpu, 3),
                  "pairs_per_s": round(len(rows) / dt, 2), "torch_threads": torch.get_num_threads()}))
