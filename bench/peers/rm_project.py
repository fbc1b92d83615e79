"""Project twin of ``rm_trl.py``: ``train_reward_model`` (K-way loss, one prompt's K responses =
one batch element, the prompt run once for them) on the SAME tiny GPT-2 shapes, word-level
tokenizer and random ranked data; batch_size = 1 prompt = the C(K,2) pairs TRL takes per step,
so both make the same number of updates over the same pairs. Runs with the project's
environment. Prints the last line as JSON.

    python bench/peers/rm_project.py [N] [K] [WORDS]
"""
import json, random, sys, time
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from instructgpt.reward_model import RewardModel  # noqa: E402
from instructgpt.train.reward import Comparison, RewardConfig, train_reward_model  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 32
K = int(sys.argv[2]) if len(sys.argv) > 2 else 9
W = int(sys.argv[3]) if len(sys.argv) > 3 else 24
rng = random.Random(0)
vocab = [f"w{i}" for i in range(2000)]
tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>"] + vocab)}, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
hf_tok.padding_side = "left"
cfg = GPT2Config(vocab_size=len(hf_tok), n_positions=256, n_embd=256, n_layer=4, n_head=4,
                 pad_token_id=0, eos_token_id=1, bos_token_id=1)
torch.manual_seed(0)
rm = RewardModel(GPT2LMHeadModel(cfg).base_model, seed=0)
train = []
for _ in range(N):
    prompt = " ".join(rng.choice(vocab) for _ in range(W // 2))
    responses = [" ".join(rng.choice(vocab) for _ in range(W)) for _ in range(K)]
    train.append(Comparison(prompt, responses, list(range(K))))
rcfg = RewardConfig(epochs=1, lr=1e-5, batch_size=1, max_len=128, warmup=0, normalize_bias=False,
                    show_progress=False, eval_every=0)
t, c = time.perf_counter(), time.process_time(); train_reward_model(rm, hf_tok, train, [], [], rcfg)
dt, cpu = time.perf_counter() - t, time.process_time() - c
pairs = N * K * (K - 1) // 2
print(f"project RM: {N} prompts x K={K} -> {pairs} pairs, epoch {dt:.1f}s, {pairs/dt:.1f} pairs/s")
print(json.dumps({"peer": "project-rm", "prompts": N, "K": K, "pairs": pairs, "epoch_s": round(dt, 3),
                  "epoch_cpu_s": round(cpu, 3), "pairs_per_s": round(pairs / dt, 2),
                  "torch_threads": torch.get_num_threads()}))
