"""`Unlearner`: apply a forget request to a model with a method, and save the result."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig, TrainableConfig, to_dict
from .data.formatting import Example, encode_qa, encode_text_windows
from .data.general import general_split
from .data.refusals import refusal_for
from .data.request import DataSpec, ForgetRequest
from .errors import ConfigError
from .io import atomic_directory, atomic_write_text
from .methods import make_method, method_settings
from .methods.base import LossMethod
from .metrics.probes import evaluate_probe_groups
from .models.params import decoder_layers, merge_if_lora, select_trainable
from .models.reference import Reference
from .train.loop import TrainingData, TrainResult, train

log = logging.getLogger(__name__)


def encode_spec(tokenizer, spec: DataSpec, max_length: int) -> list[Example]:
    """QA pairs (prompt masked) and text windows of a data spec, as training examples."""
    examples = [encode_qa(tokenizer, qa.question, qa.answer, max_length, qa.focus) for qa in spec.qa]
    for text in spec.texts:
        examples += encode_text_windows(tokenizer, text, max_length)
    return examples


def default_retain_spec() -> DataSpec:
    """The built-in general-knowledge replay set, used when a request brings no retain data."""
    from .data.request import QA

    return DataSpec(qa=[QA(g.question, g.answer) for g in general_split("replay")])


def build_training_data(tokenizer, request: ForgetRequest, method: LossMethod, max_length: int) -> TrainingData:
    forget = encode_spec(tokenizer, request.forget, max_length)
    alt = None
    if method.needs_alternate_answers:
        if request.forget.texts:
            raise ConfigError(
                f"method '{method.registered_name}' needs QA forget data (it prefers a refusal answer); "
                "this request has forget.texts: use QA pairs or another method"
            )
        several = getattr(method, "alternate_answers", None)
        if several is not None:  # several answers per item: each pairs with a copy of its forget example
            pairs = [(example, qa.question, answer)
                     for i, (qa, example) in enumerate(zip(request.forget.qa, forget, strict=True))
                     for answer in several(i, qa)]
            forget = [example for example, _, _ in pairs]
            alt = [encode_qa(tokenizer, question, answer, max_length) for _, question, answer in pairs]
        else:
            preferred = getattr(method, "alternate_answer", None) or (lambda i, qa: refusal_for(i))
            alt = [encode_qa(tokenizer, qa.question, preferred(i, qa), max_length)
                   for i, qa in enumerate(request.forget.qa)]
    retain_spec = request.retain
    if len(retain_spec) == 0 and method.needs_retain:
        log.info("request has no retain data: using the built-in general-knowledge replay set")
        retain_spec = default_retain_spec()
    return TrainingData(forget, encode_spec(tokenizer, retain_spec, max_length), alt,
                        anchor=encode_spec(tokenizer, request.anchor, max_length))


def prepare_method(method: LossMethod, model, tokenizer, request: ForgetRequest, train_cfg,
                   progress: bool = True) -> None:
    """Run the method's optional `before_training(model, tokenizer, request, train_cfg, progress)` hook (e.g.
    LUNAR measures its redirection on the model before it changes)."""
    before = getattr(method, "before_training", None)
    if before is not None:
        before(model, tokenizer, request, train_cfg, progress)


def release_method(method: LossMethod) -> None:
    """Run the method's optional `release()` hook: drop what only its training needed (e.g. a teacher model)."""
    release = getattr(method, "release", None)
    if release is not None:
        release()


def trainable_for(method: LossMethod, model, cfg: TrainableConfig) -> TrainableConfig:
    """The run's trainable selection, unless the method needs its own (e.g. RMU) and LoRA is not asked for."""
    if cfg.mode == "lora":
        return cfg
    override = method.trainable_override(len(decoder_layers(model)))
    return override or cfg


@dataclass
class UnlearnResult:
    model: object
    train: TrainResult
    method: dict


class Unlearner:
    """Applies requests to `model` with one method and one run configuration."""

    def __init__(self, model, tokenizer, config: RunConfig | None = None, method: LossMethod | None = None):
        self.config = config or RunConfig()
        self.method = method or make_method(self.config.method)
        self.model = model
        self.tokenizer = tokenizer

    def apply(self, request: ForgetRequest, progress: bool = True, on_step=None, on_trained=None) -> UnlearnResult:
        """Unlearn `request`; the model is changed in place (LoRA adapters are merged afterwards).
        `on_step(n)` runs after each optimizer step; `on_trained(model)` sees the trained model (a peft
        model in LoRA mode) before adapters are merged."""
        cfg = self.config
        method = self.method
        after_training = getattr(method, "after_training", None)  # a second stage (e.g. undo's noise + distil)
        if after_training is not None and cfg.trainable.mode == "lora":
            raise ConfigError(f"method '{method.registered_name}' changes the trained weights after training; "
                              "use trainable.mode=layers, pattern or all, not lora")
        prepare_method(method, self.model, self.tokenizer, request, cfg.train, progress)
        data = build_training_data(self.tokenizer, request, method, cfg.train.max_length)
        model = select_trainable(self.model, trainable_for(method, self.model, cfg.trainable))
        reference = Reference(model) if method.needs_reference or data.uses_anchor(cfg.train) else None
        probe_check = self._probe_check(request) if cfg.train.early_stop else None
        try:
            result = train(
                model, method, data, cfg.train, self.tokenizer.pad_token_id, reference=reference,
                probe_check=probe_check, progress=progress, description=f"unlearning ({method.registered_name})",
                on_step=on_step,
            )
            del reference
            if after_training is not None and result.steps > 0:
                second = after_training(model, self.tokenizer, request, cfg.train, progress)
                result.second_stage = {"steps": second.steps, "seconds": second.seconds}
                result.seconds += second.seconds
        finally:
            release_method(method)
        if on_trained is not None:
            on_trained(model)
        self.model = merge_if_lora(model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        return UnlearnResult(self.model, result, method_settings(method))

    def _probe_check(self, request: ForgetRequest):
        if not request.probes.forget:
            raise ConfigError("train.early_stop needs forget probes in the request (probes.forget)")
        groups = {"forget": request.probes.forget}
        ecfg = self.config.eval

        def check(model) -> float:
            results, _ = evaluate_probe_groups(model, self.tokenizer, groups, ecfg.generation_batch_size, ecfg.max_new_tokens,
                                               rouge_threshold=ecfg.rouge_threshold)
            return results["forget"].accuracy

        return check


def model_card(request: ForgetRequest, method: dict, config: RunConfig, metrics: dict | None = None) -> str:
    """A README.md recording what was forgotten, how, and what was measured."""
    import yaml

    lines = [
        "---",
        yaml.safe_dump({"library_name": "transformers", "tags": ["unlearn", "machine-unlearning"]}).strip(),
        "---",
        f"# Unlearned model: {request.target}",
        "",
        f"This model had the request `{request.id}` ({request.kind}) applied with the method `{method['name']}`.",
        "",
        "## Request",
        f"- id: `{request.id}`",
        f"- target: {request.target}",
        f"- content hash (SHA-256): `{request.content_hash()}`",
        f"- forget examples: {len(request.forget.qa)} QA pairs, {len(request.forget.texts)} texts",
        "",
        "## Method and settings",
        "```yaml",
        yaml.safe_dump({"method": method, **{k: v for k, v in to_dict(config).items() if k != 'method'}}, sort_keys=False).strip(),
        "```",
    ]
    if metrics:
        lines += ["", "## Measured", "```yaml", yaml.safe_dump(metrics, sort_keys=False).strip(), "```"]
    return "\n".join(lines) + "\n"


def save_model(model, tokenizer, out_dir: str | Path, card: str, overwrite: bool = True) -> Path:
    """Save a Hugging Face model folder (safetensors) with its model card, atomically."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic_write_text(tmp / "README.md", card)
    return out_dir
