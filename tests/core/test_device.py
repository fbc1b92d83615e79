"""One place decides device and precision (instructgpt.device); every path runs in what it chose.

The machine has no GPU: the CUDA branches are checked by making ``resolve`` believe in one
(the functions it asks are patched, nothing is moved to a device). bf16 on a CPU is accepted on
purpose (torch has CPU bf16 kernels): it lets these tests see that SFT, the RM, PPO, sampling
and evaluation all run their forward passes under the stage's autocast, by the dtype of the
logits/rewards the models produce (bf16 inside the scope, fp32 with the default).
"""

from __future__ import annotations

import pytest
import torch

from instructgpt import device as devmod
from instructgpt.config import ConfigError
from instructgpt.device import Compute, ComputeConfig, resolve
from instructgpt.evaluation import corpus_loss
from instructgpt.generation import sample
from instructgpt.reward_model import RewardModel
from instructgpt.train.ppo import PPOConfig, train_ppo
from instructgpt.train.reward import RewardConfig, train_reward_model
from instructgpt.train.sft import SFTConfig, train_sft

from .conftest import make_pairs
from .test_train import make_comparisons


def test_default_on_a_cpu_is_fp32_without_autocast():
    compute = resolve(ComputeConfig())
    assert compute == Compute(torch.device("cpu"), None)
    with compute.scope():
        assert not torch.is_autocast_enabled("cpu")  # the default changes nothing: bit-identical numerics
    assert compute.backend == "gloo"


def test_explicit_choices_and_refusals():
    assert resolve(ComputeConfig(device="cpu", precision="bf16")).dtype == torch.bfloat16
    assert resolve(ComputeConfig(device="cpu", precision="fp32")).dtype is None
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve(ComputeConfig(device="cuda"))
    for bad in ({"device": "tpu"}, {"precision": "fp16"}, {"launcher": "mpirun"}, {"nproc_per_node": 0},
                {"nproc_per_node": 2}, {"stages": {"ppo": {"gpus": 2}}}):
        with pytest.raises(ConfigError, match="compute"):
            ComputeConfig(**bad)
    per_stage = ComputeConfig(stages={"ppo": {"launcher": "torchrun", "nproc_per_node": 2}})
    assert per_stage.for_stage("ppo").nproc_per_node == 2 and per_stage.for_stage("sft").launcher == "plain"
    with pytest.raises(ConfigError, match="nproc_per_node"):
        ComputeConfig(stages={"ppo": {"nproc_per_node": 2}}).for_stage("ppo")


def test_parallel_fsdp_needs_several_processes_and_reaches_the_library_through_the_scope():
    from instructgpt.device import parallel_mode

    for bad in ({"parallel": "zero3"}, {"parallel": "fsdp"}, {"parallel": "fsdp", "launcher": "torchrun"}):
        with pytest.raises(ConfigError, match="compute.parallel"):
            ComputeConfig(**bad)
    cfg = ComputeConfig(stages={"sft": {"launcher": "torchrun", "nproc_per_node": 2, "parallel": "fsdp"}})
    assert cfg.parallel == "ddp" and cfg.for_stage("sft").parallel == "fsdp"
    compute = resolve(cfg.for_stage("sft"))
    assert parallel_mode() == "ddp"
    with compute.scope():
        assert parallel_mode() == "fsdp" and not torch.is_autocast_enabled("cpu")
    assert parallel_mode() == "ddp"


def test_auto_prefers_cuda_with_bf16_then_mps(monkeypatch):
    monkeypatch.setattr(devmod, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    compute = resolve(ComputeConfig(), local_rank=3)
    assert compute == Compute(torch.device("cuda", 1), torch.bfloat16) and compute.backend == "nccl"
    assert resolve(ComputeConfig(device="cuda:0", precision="fp32")).dtype is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert resolve(ComputeConfig()).dtype is None
    with pytest.raises(ConfigError, match="bf16"):
        resolve(ComputeConfig(precision="bf16"))
    monkeypatch.setattr(devmod, "cuda_available", lambda: False)
    monkeypatch.setattr(devmod, "mps_available", lambda: True)
    assert resolve(ComputeConfig()) == Compute(torch.device("mps"), torch.bfloat16)


def _record_dtypes(module: torch.nn.Module, seen: set) -> None:
    """Record the dtype of every output of ``module``'s LM head, or of an RM's backbone's last projection (its
    scalar head runs in fp32 on purpose: rewards are not rounded to bf16)."""
    if isinstance(module, RewardModel):  # the backbone's last projection (its final norm is fp32 under autocast)
        from transformers.pytorch_utils import Conv1D

        last = [m for m in module.backbone.modules() if isinstance(m, (torch.nn.Linear, Conv1D))][-1]
        last.register_forward_hook(lambda m, args, out: seen.add(out.dtype))
    else:
        module.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.add(out.dtype))


@pytest.mark.parametrize("precision, expected", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_every_path_runs_in_the_chosen_precision(model_dir, precision, expected):
    from instructgpt.models import load_causal_lm

    compute = resolve(ComputeConfig(device="cpu", precision=precision))
    seen: dict[str, set] = {}
    with compute.scope():
        model, tokenizer = load_causal_lm(model_dir)
        compute.place(model)
        _record_dtypes(model, seen.setdefault("sft", set()))
        train_sft(model, tokenizer, make_pairs(8, 1), make_pairs(2, 2),
                  SFTConfig(epochs=1, batch_size=4, max_len=48, dropout=0.0, selection="last", show_progress=False))
        seen["sample"] = set()
        _record_dtypes(model, seen["sample"])
        sample(model, tokenizer, ["repeat the word cat 2 times"], max_new_tokens=3)
        seen["evaluate"] = set()
        _record_dtypes(model, seen["evaluate"])
        corpus_loss(model, tokenizer, ["the cat sat"])
        rm = compute.place(RewardModel.from_causal_lm(model_dir))
        _record_dtypes(rm, seen.setdefault("rm", set()))
        train_reward_model(rm, tokenizer, make_comparisons(4, 3), make_comparisons(2, 4), make_pairs(2, 2),
                           RewardConfig(epochs=1, batch_size=2, max_len=48, show_progress=False))
        policy = compute.place(load_causal_lm(model_dir)[0])
        _record_dtypes(policy, seen.setdefault("ppo", set()))
        train_ppo(policy, None, None, rm, tokenizer, [p for p, _ in make_pairs(4, 6)], [],
                  PPOConfig(steps=1, batch_size=2, mini_batch_size=2, ppo_epochs=1, max_new_tokens=3,
                            show_progress=False))
    assert seen == {k: {expected} for k in ("sft", "sample", "evaluate", "rm", "ppo")}


def test_the_stage_shell_runs_its_body_in_the_compute_scope(tmp_path, monkeypatch):
    """tasks.shell.run.main resolves params.yaml ``compute`` and enters its scope around the body;
    a device the machine lacks stops the stage with exit code 2 before the body runs."""
    from tasks.shell.run import EXIT_CONFIG, main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSTRUCTGPT_NO_MLFLOW", "1")
    (tmp_path / "dvc.yaml").write_text("stages:\n  toy:\n    cmd: python -m toy\n")
    seen = []

    def body(stage):
        seen.append((stage.compute.device.type, torch.is_autocast_enabled("cpu"),
                     torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None))

    (tmp_path / "params.yaml").write_text("compute:\n  device: cpu\n  precision: bf16\n")
    assert main("toy", body) == 0
    (tmp_path / "params.yaml").write_text("toy: {}\n")
    assert main("toy", body) == 0
    assert seen == [("cpu", True, torch.bfloat16), ("cpu", False, None)]
    (tmp_path / "params.yaml").write_text("compute:\n  device: cuda\n")
    assert main("toy", body) == EXIT_CONFIG and len(seen) == 2
