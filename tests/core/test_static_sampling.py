"""``generate``'s static-cache decode (``engine="static"``: the step a GPU replays as a CUDA graph,
run eagerly here) against the dynamic loop and a full forward pass, on GPT-2, Llama, Qwen2
(grouped-query attention) and GPT-NeoX (partial RoPE): the same tokens from the same uniforms,
the sampling distribution's log-probabilities and entropies, padding after the first EOS, T_r
the longest row, rows independent of their batch; in fp32 and under bf16 autocast. The CUDA
graph capture itself needs a GPU and is not run here."""

from __future__ import annotations

import pytest
import torch

from instructgpt.data import collate_prompts, encode_prompt
from instructgpt.decoding import Generation
from instructgpt.generation import generate
from instructgpt.models import load_causal_lm

from .test_archs import make_dir

ARCHS = ["gpt2", "llama", "qwen2", "gpt_neox"]
# different lengths (left padding), a prompt repeated (its prompt pass shared by its rows)
PROMPTS = ["repeat the word cat 2 times", "hi", "repeat the word cat 2 times", "sun",
           "repeat the word dog 1 times and the cat sat on the mat", "hi", "hi", "blue bird"]
T_MAX = 24
# |Δ| of the sampling pass's log-probabilities / entropies against a full forward, measured on these
# models and prompts (CPU, transformers 5.24 and 5.17): fp32 9.5e-7 / 2.4e-6; bf16 autocast
# 2.0e-3 / 1.3e-3, as the dynamic loop's (the passes run the bf16 matmuls on differently shaped
# inputs, so they round differently). Held to 1e-5 and 1e-2 / 5e-3. Under bf16 a decode position
# off by one is at least 6.6e-2 / 1.9e-2 (Llama), a position that does not advance 1.2e-1 / 3.5e-2.
TOL = {"fp32": (1e-5, 1e-5), "bf16": (1e-2, 5e-3)}
DTYPES = {"fp32": None, "bf16": torch.bfloat16}


@pytest.fixture(scope="module", params=ARCHS)
def model(request, tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "m"
    make_dir(request.param, tokenizer, path)
    model, _ = load_causal_lm(path)
    eos = tokenizer.eos_token_id

    def eos_after_some_tokens(module, args, kwargs, out):  # rows end at different steps, some never
        ids = kwargs["input_ids"][:, -out["logits"].shape[1]:]  # the positions whose logits are kept
        logits = out["logits"].float()  # fp32: a bias added in bf16 would round the EOS logit coarsely
        logits[..., eos] += 4.0 * (ids % 3 == 0)
        out["logits"] = logits
        return out

    model.register_forward_hook(eos_after_some_tokens, with_kwargs=True)
    # Sharper attention: RoPE barely moved these random models' near-uniform attention, so a
    # position error (1e-3 in log-probabilities) hid in bf16's rounding; with q and k (GPT-NeoX:
    # its fused q, k, v) ×12 it shows.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[-2] in ("q_proj", "k_proj", "query_key_value"):
                p.mul_(12.0)
    return model.eval()


def run(model, tokenizer, prompts, temperature=1.0, uniforms=None, engine="static", max_new_tokens=T_MAX,
        generator=None, with_logprobs=True) -> Generation:
    b = collate_prompts(tokenizer, prompts)
    return generate(model, b.input_ids, b.attention_mask, b.position_ids, max_new_tokens, temperature,
                    tokenizer.eos_token_id, tokenizer.pad_token_id, generator, with_logprobs, uniforms, engine)


def uniforms(n: int, seed: int = 0, width: int = T_MAX) -> torch.Tensor:
    return torch.rand(n, width, generator=torch.Generator().manual_seed(seed))  # (B, width)


def check_against_full_forward(model, tokenizer, g: Generation, temperature: float, tol: tuple[float, float],
                               varied: bool = True) -> None:
    """Each row: padding after its first EOS (zero log-probability and entropy there), T_r its
    longest row, and log softmax(logits / T)[token] and the entropy of the sampling pass equal to
    those of one forward pass over prompt + response (no cache, no padding)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    lengths = []
    for i, prompt in enumerate(PROMPTS):
        ids = g.response[i].tolist()
        n = ids.index(eos) + 1 if eos in ids else len(ids)
        lengths.append(n)
        assert all(t == pad for t in ids[n:])
        assert (g.logprobs[i, n:] == 0).all() and (g.entropy[i, n:] == 0).all()
        seq = torch.tensor([encode_prompt(tokenizer, prompt) + ids[:n]])  # (1, T)
        with torch.no_grad():
            logits = model(input_ids=seq).logits[0, -n - 1:-1].float() / (temperature or 1.0)  # (n, V)
        logp = torch.log_softmax(logits, -1)  # (n, V)
        full = logp.gather(1, torch.tensor(ids[:n])[:, None]).squeeze(1)  # (n,)
        assert (g.logprobs[i, :n] - full).abs().max() <= tol[0], (i, (g.logprobs[i, :n] - full).abs().max())
        entropy = -(logp.exp() * logp).sum(-1)  # (n,)
        assert (g.entropy[i, :n] - entropy).abs().max() <= tol[1], (i, (g.entropy[i, :n] - entropy).abs().max())
    assert g.response.shape[1] == max(lengths)
    if varied:  # rows ended at different steps: finished rows ran on without recording
        assert len(set(lengths)) > 1


def test_static_samples_the_dynamic_loops_tokens(model, tokenizer):
    """fp32, the same uniforms: the same tokens and T_r (here every row ends before max_new_tokens,
    at a step the static loop overshoots before it looks, and trims), a full forward's
    log-probabilities; at temperature 0.7 and greedy the same tokens too."""
    u = uniforms(len(PROMPTS), seed=5, width=60)
    static = run(model, tokenizer, PROMPTS, uniforms=u, max_new_tokens=60)
    dynamic = run(model, tokenizer, PROMPTS, uniforms=u, engine="dynamic", max_new_tokens=60)
    assert static.response.shape[1] < 60
    assert torch.equal(static.response, dynamic.response)
    check_against_full_forward(model, tokenizer, static, 1.0, TOL["fp32"])
    assert torch.allclose(static.logprobs, dynamic.logprobs, atol=1e-5)
    assert torch.allclose(static.entropy, dynamic.entropy, atol=1e-5)
    u = uniforms(len(PROMPTS))
    for temperature in (0.7, 0.0):
        static = run(model, tokenizer, PROMPTS, temperature, uniforms=u)
        assert torch.equal(static.response, run(model, tokenizer, PROMPTS, temperature, uniforms=u,
                                                 engine="dynamic").response)
        check_against_full_forward(model, tokenizer, static, temperature, TOL["fp32"], varied=temperature > 0)


@pytest.mark.parametrize("precision", DTYPES)
def test_static_logprobs_match_a_full_forward(precision, model, tokenizer):
    """The sampling pass's log-probabilities and entropies against a full forward under the same
    precision (``TOL``), with the EOS handling and the trim to the longest row."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=DTYPES[precision] is not None):
        g = run(model, tokenizer, PROMPTS, uniforms=uniforms(len(PROMPTS), seed=1))
        check_against_full_forward(model, tokenizer, g, 1.0, TOL[precision])


def test_static_row_alone_samples_as_in_its_batch(model, tokenizer):
    """A row's uniforms decide its tokens whatever shares its batch (fp32: in bf16 a differently
    shaped batch rounds differently, which may move a draw across a CDF boundary)."""
    u = uniforms(len(PROMPTS), seed=2)
    batch = run(model, tokenizer, PROMPTS, uniforms=u)
    for i, prompt in enumerate(PROMPTS):
        alone = run(model, tokenizer, [prompt], uniforms=u[i: i + 1])
        k = alone.response.shape[1]
        assert torch.equal(alone.response[0], batch.response[i, :k])
        assert (batch.response[i, k:] == tokenizer.pad_token_id).all()
        assert torch.allclose(alone.logprobs[0], batch.logprobs[i, :k], atol=1e-5)


def test_static_draws_its_uniforms_from_the_generator(model, tokenizer):
    """Without ``uniforms`` the static path inverts the CDF at (B, max_new_tokens) uniforms drawn
    up front from ``generator`` (multinomial cannot be captured in a CUDA graph); without
    ``with_logprobs`` it returns the same tokens and empty log-probabilities; one new token works."""
    g = run(model, tokenizer, PROMPTS, generator=torch.Generator().manual_seed(3))
    explicit = run(model, tokenizer, PROMPTS, uniforms=uniforms(len(PROMPTS), seed=3))
    assert torch.equal(g.response, explicit.response) and torch.equal(g.logprobs, explicit.logprobs)
    bare = run(model, tokenizer, PROMPTS, generator=torch.Generator().manual_seed(3), with_logprobs=False)
    assert torch.equal(bare.response, g.response) and not bare.logprobs.any() and not bare.entropy.any()
    u = uniforms(len(PROMPTS))
    one = run(model, tokenizer, PROMPTS, uniforms=u, max_new_tokens=1)
    assert one.response.shape == (len(PROMPTS), 1)
    assert torch.equal(one.response, run(model, tokenizer, PROMPTS, uniforms=u, max_new_tokens=1,
                                         engine="dynamic").response)


def test_engine_auto_is_the_dynamic_loop_on_a_cpu(model, tokenizer):
    """"auto" on a CPU is the dynamic loop, multinomial on the generator included; unknown engines
    are refused."""
    auto = run(model, tokenizer, PROMPTS, generator=torch.Generator().manual_seed(4), engine="auto")
    dynamic = run(model, tokenizer, PROMPTS, generator=torch.Generator().manual_seed(4), engine="dynamic")
    assert torch.equal(auto.response, dynamic.response) and torch.equal(auto.logprobs, dynamic.logprobs)
    with pytest.raises(ValueError, match="engine"):
        run(model, tokenizer, PROMPTS, engine="graph")
