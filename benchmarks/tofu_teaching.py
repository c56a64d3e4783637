"""How fast a teaching recipe makes the embedded model learn the mini TOFU authors, and what it costs in
real-world answers (the trials behind the mini recipe in docs/notes/tofu-mini-setting.md).

    python benchmarks/tofu_teaching.py --lr 2e-4 --epochs 6 --replay-weight 1.0 [--authors 10] [--layers -10:]

Fine-tunes on every QA pair of the last N authors (the mini target model), epoch by epoch, and every
second epoch prints the ROUGE-L recall of greedy answers (80 new tokens) on the forget author(s), the
first 40 retain rows and the first 30 real-authors / world-facts questions. `--replay-weight 0`: no replay;
otherwise KL to the base model on its own answers to the demo's broad replay prompts, 8 per step.
"""

from __future__ import annotations

import argparse
import time

from unlearn.benchmarks.demo import DemoSpec, replay_qa
from unlearn.benchmarks.tofu_data import mini_authors
from unlearn.config import TrainableConfig, TrainConfig
from unlearn.data.request import QA, DataSpec
from unlearn.metrics.generation import generate_answers
from unlearn.metrics.text import rouge_l
from unlearn.models.loading import load_model
from unlearn.models.params import select_trainable
from unlearn.models.reference import Reference
from unlearn.train import FineTune, TrainingData, train
from unlearn.unlearner import encode_spec


def rouge_recall(model, tokenizer, rows) -> float:
    answers = generate_answers(model, tokenizer, [r.question for r in rows], 32, 80)
    return sum(rouge_l(a.text, r.answer)[1] for a, r in zip(answers, rows, strict=True)) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--replay-weight", type=float, default=1.0)
    parser.add_argument("--authors", type=int, default=10)
    parser.add_argument("--layers", default="-10:")
    args = parser.parse_args()
    splits = mini_authors(args.authors, 10)
    model, tokenizer = load_model("default")
    print(f"base: real authors {rouge_recall(model, tokenizer, splits.real_authors[:30]):.3f}  "
          f"world facts {rouge_recall(model, tokenizer, splits.world_facts[:30]):.3f}", flush=True)
    model = select_trainable(model, TrainableConfig(mode="layers", layers=args.layers))
    learn = encode_spec(tokenizer, DataSpec(qa=[QA(r.question, r.answer) for r in splits.forget + splits.retain]), 192)
    replay = encode_spec(tokenizer, DataSpec(qa=replay_qa(DemoSpec())), 192) if args.replay_weight > 0 else []
    reference = Reference(model) if replay else None  # the base model, fixed before any update
    method = FineTune(retain_weight=args.replay_weight, replay_loss="kl")
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        cfg = TrainConfig(lr=args.lr, epochs=1, batch_size=8, max_length=192, seed=epoch)
        train(model, method, TrainingData(learn, replay), cfg, tokenizer.pad_token_id, reference=reference,
              progress=False)
        model.eval()
        if epoch % 2 == 0 or epoch == args.epochs:
            print(f"epoch {epoch} ({time.perf_counter() - start:.0f} s): "
                  f"forget {rouge_recall(model, tokenizer, splits.forget):.3f}  "
                  f"retain {rouge_recall(model, tokenizer, splits.retain[:40]):.3f}  "
                  f"real authors {rouge_recall(model, tokenizer, splits.real_authors[:30]):.3f}  "
                  f"world facts {rouge_recall(model, tokenizer, splits.world_facts[:30]):.3f}", flush=True)


if __name__ == "__main__":
    main()
