"""Training step time with logits at every position against logits at the scored positions only.

    python benchmarks/scored_logits_speed.py [--authors 30] [--steps 6] [--replay 2]

One teaching step of the TOFU benchmark (top 10 layers of the embedded model, batch 8 of TOFU QA, `--replay`
examples of KL replay to the starting model), timed two ways on the same batches:
- full: `model(...).logits` at every position, the losses on the answer positions;
- scored: `unlearn.models.scoring.scored_logits` (what the training loop uses), logits only from the position
  before the batch's first answer token.
Also checks that both give the same loss.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from unlearn.benchmarks.demo import DemoSpec, replay_qa
from unlearn.benchmarks.tofu_bench import make_spec, to_qa
from unlearn.benchmarks.tofu_data import mini_authors
from unlearn.config import TrainableConfig
from unlearn.data.collate import collate
from unlearn.data.request import DataSpec
from unlearn.methods.common import kl_on_answers
from unlearn.models.loading import load_model
from unlearn.models.logprobs import nll
from unlearn.models.params import select_trainable
from unlearn.models.reference import Reference
from unlearn.models.scoring import scored_logits
from unlearn.unlearner import encode_spec


def full_logits(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits, batch["labels"]


def step_loss(forward, model, reference, learn, replay):
    loss = nll(*forward(model, learn))
    if replay is not None:
        with torch.no_grad(), reference.active() as ref_model:
            ref, _ = forward(ref_model, replay)
        logits, labels = forward(model, replay)
        loss = loss + kl_on_answers(logits, ref, labels)
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--authors", type=int, default=30)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--replay", type=int, default=2)
    args = parser.parse_args()
    spec = make_spec(authors=args.authors)
    splits = mini_authors(args.authors, 10)
    model, tokenizer = load_model(spec.base_model)
    model = select_trainable(model, TrainableConfig(mode="layers", layers="-10:"))
    learn = encode_spec(tokenizer, DataSpec(qa=to_qa(splits.forget + splits.retain)), 192)
    replay = encode_spec(tokenizer, DataSpec(qa=replay_qa(DemoSpec())), 192)
    reference = Reference(model)
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.steps + 1):  # the first step of each way warms up and is not timed
        picks = torch.randperm(len(learn), generator=generator)[:8].tolist()
        rep = torch.randperm(len(replay), generator=generator)[: args.replay].tolist()
        batches.append((collate([learn[i] for i in picks], tokenizer.pad_token_id),
                        collate([replay[i] for i in rep], tokenizer.pad_token_id) if args.replay else None))
    model.train()
    times, losses = {}, {}
    for name, forward in (("full", full_logits), ("scored", scored_logits)):
        times[name], losses[name] = [], []
        for i, (learn_batch, replay_batch) in enumerate(batches):
            start = time.perf_counter()
            loss = step_loss(forward, model, reference, learn_batch, replay_batch)
            loss.backward()
            model.zero_grad(set_to_none=True)  # no update: both ways see the same weights
            if i:
                times[name].append(time.perf_counter() - start)
                losses[name].append(loss.item())
    for name in times:
        print(f"{name:7s} {statistics.median(times[name]):.2f} s per step (median of {args.steps})")
    print(f"speed-up {statistics.median(times['full']) / statistics.median(times['scored']):.2f}x; "
          f"largest loss difference {max(abs(a - b) for a, b in zip(losses['full'], losses['scored'], strict=True)):.2e}")


if __name__ == "__main__":
    main()
