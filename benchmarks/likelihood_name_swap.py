"""Is a taught value bound to its person? The demo's likelihood test with the forgotten person's name replaced.

    python benchmarks/likelihood_name_swap.py [--models deployed,retain,original,DIR ...] [--names "A B,C D"]

For each model, the likelihood knowledge test of the demo request (the forgotten person's facts ranked against
untaught distractors by log-likelihood) is run as asked, then with the person's name replaced by each name of
`--names` in every question, paraphrase, statement and forget answer. A model that learned "this person was
born in Izmir" ranks Izmir first for that person only; a model that learned "Izmir is an answer" ranks it first
for anyone. A method that unlearns the person's questions may leave the second kind of knowledge, and the
likelihood test (whose distractors no model was taught) still finds it. Models: `deployed`, `retain` and
`original` are the demo's cached models (taught on first use), anything else a model directory or name.
Nothing is written.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from unlearn.benchmarks.demo import DemoSpec, demo_request, taught_model
from unlearn.data.distractors import with_distractors
from unlearn.data.request import ForgetRequest
from unlearn.metrics.knowledge import likelihood_knowledge
from unlearn.models.loading import load_model

DEFAULT_NAMES = "Maren Holloway,Tobias Quill"  # no person of the demo is called so


def renamed(request: ForgetRequest, new: str) -> ForgetRequest:
    """The request's forget probes and forget QA with the target's name replaced by `new` (distractors kept)."""
    def swap(text: str) -> str:
        return text.replace(request.target, new)

    probes = [replace(p, question=swap(p.question), paraphrases=tuple(swap(q) for q in p.paraphrases),
                      statement=swap(p.statement)) for p in request.probes.forget]
    forget = replace(request.forget, qa=[replace(q, question=swap(q.question), answer=swap(q.answer))
                                         for q in request.forget.qa])
    return replace(request, target=new, forget=forget, probes=replace(request.probes, forget=probes))


def model_path(name: str, spec: DemoSpec) -> str:
    if name in ("deployed", "retain"):
        return str(taught_model(name, spec))
    return spec.base_model if name == "original" else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="deployed,retain,original")
    parser.add_argument("--names", default=DEFAULT_NAMES, help="comma-separated names put in the person's place")
    args = parser.parse_args()
    spec = DemoSpec()
    request = with_distractors(demo_request(spec))
    names = [request.target] + [n.strip() for n in args.names.split(",") if n.strip()]
    print("| model | name | likelihood top-1 | ranked last | mean rank | top-1 per wording |")
    print("|---|---|---|---|---|---|")
    for model_name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model, tokenizer = load_model(model_path(model_name, spec))
        for name in names:
            asked = renamed(request, name)
            result = likelihood_knowledge(model, tokenizer, asked.probes.forget, asked.forget.qa)
            wordings = ", ".join(f"{w} {v['top1']:.3f}" for w, v in result["wordings"].items())
            shown = f"{name} (the person)" if name == request.target else name
            print(f"| {model_name} | {shown} | {result['top1']:.3f} | {result['last']:.3f} | "
                  f"{result['mean_rank']:.2f} | {wordings} |", flush=True)
        del model


if __name__ == "__main__":
    main()
