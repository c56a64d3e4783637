"""Check the accelerator paths in one command, and time them against the CPU.

    python benchmarks/gpu_check.py [--json gpu_check.json] [--steps 20] [--model default]

Meant for a machine with a CUDA GPU; on a CPU-only machine the GPU checks are reported as skipped. Each check
passes, fails with its error (the others still run), or is skipped with the reason:

  environment  versions of torch, transformers and accelerate; the GPUs; whether bitsandbytes imports.
  placement    `load_model` puts the model on the GPU by itself (device auto) and on the CPU with UNLEARN_DEVICE=cpu.
  parity       length-normalised log-likelihood of the demo request's forget answers, fp32 on the CPU against
               fp32 on the GPU: the largest gap over the answers.
  train_fp32   the demo request unlearned with the demo's NPO settings (its reference model swapped in on the GPU)
               for --steps steps from the same weights on the GPU and, in a second process, on the CPU: every loss
               finite, the first-step losses compared, seconds per step on each.
  train_bf16   the same steps on the GPU with bfloat16 weights: every loss finite, seconds per step.
  quantize     the quantize attack's copies on the GPU: round-to-nearest int8 / int4 and, where bitsandbytes
               imports, its int8 and NF4 copies answer the demo's general questions (accuracy beside the unquantized
               model's: a broken copy answers nothing).
  ddp          with 2 or more GPUs: `unlearn run` on one GPU and through `accelerate launch --multi_gpu
               --num_processes 2` (NCCL) for --steps steps of the demo's NPO from the same weights: the largest
               gaps in step loss and in any weight, seconds of each (tests/test_data_parallel.py checks the same on
               2 CPU processes).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback

import torch

from unlearn.benchmarks.demo import DemoSpec, demo_request, demo_unlearn_config
from unlearn.config import RunConfig, with_overrides
from unlearn.metrics.likelihood import qa_mean_logprobs
from unlearn.models.loading import DEVICE_ENV, load_model
from unlearn.unlearner import Unlearner

NEEDS_GPU = "needs a CUDA GPU; this machine has none"


def run_check(results: dict, name: str, check) -> None:
    """Run one check; record its result, its error, or why it was skipped, with its seconds."""
    start = time.perf_counter()
    try:
        outcome = check()
        entry = {"status": "skipped", "reason": outcome} if isinstance(outcome, str) else {"status": "ok", **outcome}
    except Exception as exc:  # one failing check must not hide the others
        entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2500:]}
    entry["seconds"] = round(time.perf_counter() - start, 2)
    results[name] = entry
    print(f"{name:<12} {entry['status']:<8} " + json.dumps({k: v for k, v in entry.items()
                                                          if k not in ("status", "trace")}, default=str), flush=True)
    if entry["status"] == "failed":
        print(entry["trace"], flush=True)


def environment() -> dict:
    import accelerate
    import transformers

    info = {"torch": torch.__version__, "transformers": transformers.__version__, "accelerate": accelerate.__version__,
            "cuda": torch.version.cuda, "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    try:
        import bitsandbytes

        info["bitsandbytes"] = bitsandbytes.__version__
    except Exception as exc:  # ImportError, or a library that fails to load its CUDA binary
        info["bitsandbytes"] = f"unavailable: {type(exc).__name__}: {exc}"
    return info


def on_device(setting: str, fn):
    """Call fn() with $UNLEARN_DEVICE set to `setting` (the training loop and load_model read it)."""
    before = os.environ.get(DEVICE_ENV)
    os.environ[DEVICE_ENV] = setting
    try:
        return fn()
    finally:
        if before is None:
            os.environ.pop(DEVICE_ENV, None)
        else:
            os.environ[DEVICE_ENV] = before


def placement(model_name: str) -> dict | str:
    if not torch.cuda.is_available():
        return NEEDS_GPU
    gpu_model, _ = on_device("auto", lambda: load_model(model_name))
    cpu_model, _ = on_device("cpu", lambda: load_model(model_name))
    where = {"auto": str(next(gpu_model.parameters()).device), "cpu": str(next(cpu_model.parameters()).device)}
    if not where["auto"].startswith("cuda") or where["cpu"] != "cpu":
        raise AssertionError(f"models placed at {where}")
    return where


def parity(model_name: str, request) -> dict | str:
    if not torch.cuda.is_available():
        return NEEDS_GPU
    model, tokenizer = on_device("cpu", lambda: load_model(model_name))
    pairs = [(q.question, q.answer) for q in request.forget.qa]
    on_cpu = qa_mean_logprobs(model, tokenizer, pairs)
    on_gpu = qa_mean_logprobs(model.to("cuda"), tokenizer, pairs)
    gap = max(abs(a - b) for a, b in zip(on_cpu, on_gpu, strict=True))
    if gap > 1e-3:
        raise AssertionError(f"CPU and GPU log-likelihoods differ by {gap:.2e} (> 1e-3)")
    return {"answers": len(pairs), "max_gap": gap}


def unlearn_steps(model, tokenizer, request, steps: int, setting: str) -> tuple[list[float], float]:
    """(losses, seconds per step) of the demo's NPO run for `steps` steps, early stopping off."""
    config = with_overrides(RunConfig, demo_unlearn_config("npo"), [f"train.max_steps={steps}",
                                                                     "train.early_stop=false"])
    torch.manual_seed(config.train.seed)
    result = on_device(setting, lambda: Unlearner(model, tokenizer, config).apply(request, progress=False))
    losses = [h["loss"] for h in result.train.history]
    if len(losses) != steps or not all(torch.isfinite(torch.tensor(losses))):
        raise AssertionError(f"{len(losses)} steps of {steps}, losses {losses}")
    return losses, result.train.seconds / steps


def cpu_steps_in_new_process(model_name: str, steps: int) -> dict:
    """The CPU run of `unlearn_steps`, in its own process: accelerate keeps one device per process."""
    import subprocess
    import sys

    env = {**os.environ, DEVICE_ENV: "cpu"}
    done = subprocess.run([sys.executable, __file__, "--model", model_name, "--steps", str(steps), "--cpu-steps"],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_fp32(model_name: str, request, steps: int) -> dict | str:
    if not torch.cuda.is_available():
        return NEEDS_GPU
    model, tokenizer = on_device("cuda", lambda: load_model(model_name))
    gpu_losses, gpu_step = unlearn_steps(model, tokenizer, request, steps, "cuda")
    cpu = cpu_steps_in_new_process(model_name, steps)
    first_gap = abs(cpu["losses"][0] - gpu_losses[0])
    if first_gap > 1e-3 * max(1.0, abs(cpu["losses"][0])):
        raise AssertionError(f"first-step loss CPU {cpu['losses'][0]:.6f} against GPU {gpu_losses[0]:.6f}")
    return {"steps": steps, "cpu_s_per_step": round(cpu["s_per_step"], 3), "gpu_s_per_step": round(gpu_step, 3),
            "first_loss": [cpu["losses"][0], gpu_losses[0]], "last_loss": [cpu["losses"][-1], gpu_losses[-1]]}


def train_bf16(model_name: str, request, steps: int) -> dict | str:
    if not torch.cuda.is_available():
        return NEEDS_GPU
    model, tokenizer = on_device("cuda", lambda: load_model(model_name, dtype="bfloat16"))
    losses, per_step = unlearn_steps(model, tokenizer, request, steps, "cuda")
    if next(model.parameters()).dtype != torch.bfloat16:
        raise AssertionError(f"weights became {next(model.parameters()).dtype}")
    return {"steps": steps, "gpu_s_per_step": round(per_step, 3), "first_loss": losses[0], "last_loss": losses[-1]}


def quantize(model_name: str, request) -> dict | str:
    if not torch.cuda.is_available():
        return NEEDS_GPU
    from unlearn.attacks.quantize import (
        BNB_SCHEMES,
        Quantize,
        bitsandbytes_available,
        bitsandbytes_copy,
        parse_scheme,
        quantized_copy,
    )
    from unlearn.metrics.probes import evaluate_probe_groups

    model, tokenizer = on_device("cuda", lambda: load_model(model_name))
    schemes, notes = Quantize().schemes_here()
    answered = {}
    for scheme in ["none", *schemes]:
        if scheme == "none":
            copy_ = model
        elif scheme in BNB_SCHEMES:
            copy_ = bitsandbytes_copy(model, scheme)
        else:
            copy_ = quantized_copy(model, *parse_scheme(scheme))
        results, _ = evaluate_probe_groups(copy_, tokenizer, {"general": request.probes.general}, 16, 24)
        answered[scheme] = {"general_accuracy": results["general"].accuracy,
                            "device": str(next(copy_.parameters()).device)}
    return {"schemes": answered, "notes": notes, "bitsandbytes": bitsandbytes_available() or "available"}


def ddp(model_name: str, request, steps: int) -> dict | str:
    if torch.cuda.device_count() < 2:
        return f"needs 2 CUDA GPUs; this machine has {torch.cuda.device_count()}"
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from safetensors.torch import load_file

    work = Path(tempfile.mkdtemp(prefix="ddp-check-"))
    (work / "request.json").write_text(json.dumps(request.to_dict()))
    settings = [str(work / "request.json"), "--method", "npo", "--model", model_name, "--quiet", "--no-eval",
                "--set", f"train.max_steps={steps}", "--set", "train.batch_size=8", "--set", "train.lr=1e-4"]
    launcher = str(Path(sys.executable).parent / "accelerate")
    runs = {"one": [sys.executable, "-m", "unlearn", "run"],
            "two": [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "unlearn", "run"]}
    seconds = {}
    for name, command in runs.items():
        start = time.perf_counter()
        done = subprocess.run(command + settings + ["--out", str(work / name)], capture_output=True, text=True)
        seconds[name] = round(time.perf_counter() - start, 1)
        if done.returncode != 0:
            raise RuntimeError(f"{name}: {done.stderr[-2000:]}")
    history = [json.loads((work / n / "report.json").read_text())["training"] for n in runs]
    loss_gap = max(abs(a["loss"] - b["loss"]) for a, b in zip(history[0]["history"], history[1]["history"], strict=True))
    weights = [load_file(work / n / "model" / "model.safetensors") for n in runs]
    weight_gap = max((weights[0][k].float() - weights[1][k].float()).abs().max().item() for k in weights[0])
    if history[1]["processes"] != 2:
        raise AssertionError(f"the launched run trained on {history[1]['processes']} process(es)")
    return {"steps": steps, "max_loss_gap": loss_gap, "max_weight_gap": weight_gap, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", default=None)
    parser.add_argument("--cpu-steps", action="store_true", help=argparse.SUPPRESS)  # train_fp32's CPU half
    args = parser.parse_args()

    request = demo_request(DemoSpec())
    if args.cpu_steps:
        model, tokenizer = load_model(args.model)
        losses, per_step = unlearn_steps(model, tokenizer, request, args.steps, "cpu")
        print(json.dumps({"losses": losses, "s_per_step": per_step}))
        return
    results: dict = {}
    run_check(results, "environment", environment)
    run_check(results, "placement", lambda: placement(args.model))
    run_check(results, "parity", lambda: parity(args.model, request))
    run_check(results, "train_fp32", lambda: train_fp32(args.model, request, args.steps))
    run_check(results, "train_bf16", lambda: train_bf16(args.model, request, args.steps))
    run_check(results, "quantize", lambda: quantize(args.model, request))
    run_check(results, "ddp", lambda: ddp(args.model, request, args.steps))
    failed = [name for name, entry in results.items() if entry["status"] == "failed"]
    print(f"\n{len(results) - len(failed)} of {len(results)} checks passed or skipped; failed: {failed or 'none'}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1, default=str)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
