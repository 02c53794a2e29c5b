"""Training throughput on CPU, one process: hala_exp's train stage (Lightning) vs TRL's SFTTrainer at its
defaults and tuned as a careful user would, vs a bare PyTorch loop on the stage's own batches.

    .venv/bin/python benchmarks/train_throughput.py            # 256 chats, 5 rounds: about 6 min idle
    .venv/bin/python benchmarks/train_throughput.py --quick    # 64 chats: for development only

Every side runs once per round, rounds interleaved, so machine-load drift hits all sides alike; each
figure is the median (min-max) over the rounds. Model: random-init LFM2 (shape below) with a byte-level
BPE trained on the data; data: Tatoeba ara-eng pairs (../shared/data) as EN->AR chats, loss on the answer.

Sides (same model weights at the start of every run, fp32, batch 8, one epoch):
- hala_exp: ``hala_exp.training.fit.fit`` (Lightning, length-grouped batches, our callbacks).
- bare loop: the stage's very batches, loss (``target_loss``), optimizer (fused AdamW) and scheduler, no
  Lightning: what the stage adds over it is Lightning and our callbacks.
- bare loop, full-logits loss: the same loop with the textbook loss (every position's logits, float32, each
  micro-batch fed whole).
- TRL defaults: SFTTrainer as shipped (gradient checkpointing on, random order); only fp32 set.
- TRL tuned: gradient checkpointing off, ``train_sampling_strategy="group_by_length"``; no padding-free or
  packing, because LFM2's short convolutions leak across packed examples on CPU (../shared/DEPENDENCIES.md).
Every side steps a fused AdamW (TRL's default ``adamw_torch_fused``); none compiles (``torch.compile`` took
minutes to compile on 2 cores for a few percent per step on this model: it cannot pay in a 16-step run).
Tokens/s count real (non-padding) tokens over each side's training-loop time; one warm-up round (imports,
file caches) is run first and dropped. Writes benchmarks/results/train_throughput.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Spread, finish, header, interleaved, run_facts, write_result  # noqa: E402

TATOEBA = ROOT.parent / "shared" / "data" / "parallel" / "tatoeba_ara_eng" / "tatoeba-test-v2021-08-07"
SHAPE = dict(
    hidden_size=256,
    intermediate_size=768,
    num_hidden_layers=6,
    num_attention_heads=4,
    num_key_value_heads=2,
    layer_types=["conv", "conv", "full_attention"] * 2,
)  # our choice
OURS, BARE, BARE_FULL = (
    "hala_exp train stage (Lightning)",
    "bare loop, same batches and loss",
    "bare loop, full-logits loss",
)
TRL_DEFAULT, TRL_TUNED = "TRL 1.16 SFTTrainer, defaults", "TRL 1.16 SFTTrainer, tuned"
GOAL_VS_TUNED, GOAL_OVERHEAD = 1.3, 0.05  # issue 9 item 2 (our goals, not the paper's)


def chats(n: int) -> list[dict]:
    eng = TATOEBA.with_suffix(".eng").read_text(encoding="utf-8").splitlines()
    ara = TATOEBA.with_suffix(".ara").read_text(encoding="utf-8").splitlines()
    step = max(1, len(eng) // n)  # spread over the file: natural length variety
    return [
        {
            "id": f"t{i}",
            "messages": [
                {"role": "user", "content": f"Translate to Arabic: {eng[i]}"},
                {"role": "assistant", "content": ara[i]},
            ],
        }
        for i in range(0, step * n, step)
    ][:n]


def report(facts: dict, setup: dict, runs: dict[str, dict[str, list[float]]]) -> str:
    """Markdown for one run. ``runs[side]`` holds per-round lists: tokens_per_s, step_s, padding."""
    lines = header("Train stage throughput (CPU)", facts)
    lines += [
        f"Model: random-init LFM2 {setup['parameters'] / 1e6:.1f} M parameters ({setup['shape']}), fp32, torch "
        f"threads {setup['threads']}. Data: {setup['examples']} Tatoeba ara-eng chats (EN->AR), natural lengths, "
        f"batch {setup['batch']}, one epoch ({setup['steps']} steps), loss on the answer only. "
        f"{setup['rounds']} interleaved rounds; each cell is the median (min–max) over them.",
        "",
        "| side | real tokens/s | s/step | padding fraction |",
        "|---|---:|---:|---:|",
    ]
    for side, r in runs.items():
        lines.append(
            f"| {side} | {Spread.of(r['tokens_per_s']).fmt('.0f')} | {Spread.of(r['step_s']).fmt('.3f')} | "
            f"{statistics.median(r['padding']):.1%} |"
        )
    lines += ["", "Paired per round (median, min–max):", ""]

    def ratio(a: str, b: str, key: str = "tokens_per_s") -> Spread:
        return Spread.of([x / y for x, y in zip(runs[a][key], runs[b][key])])

    if OURS in runs and TRL_TUNED in runs:
        r = ratio(OURS, TRL_TUNED)
        lines.append(
            f"- hala_exp vs TRL tuned, real tokens/s: **{r.fmt()}x** (goal >= {GOAL_VS_TUNED}x: "
            f"{'met' if r.median >= GOAL_VS_TUNED else 'not met'})."
        )
    if OURS in runs and TRL_DEFAULT in runs:
        lines.append(f"- hala_exp vs TRL defaults, real tokens/s: {ratio(OURS, TRL_DEFAULT).fmt()}x.")
    if OURS in runs and BARE in runs:
        over = Spread.of([x / y - 1 for x, y in zip(runs[OURS]["step_s"], runs[BARE]["step_s"])])
        lines.append(
            f"- Framework overhead (Lightning + our callbacks) over the bare loop, s/step: **{over.median:+.1%}** "
            f"({over.low:+.1%}–{over.high:+.1%}; goal <= {GOAL_OVERHEAD:.0%}: "
            f"{'met' if over.median <= GOAL_OVERHEAD else 'not met'})."
        )
    if BARE in runs and BARE_FULL in runs:
        lines.append(
            f"- The stage's loss (logits at trained positions, batches fed as pieces) vs the full-logits loss on "
            f"whole batches, bare loop tokens/s: "
            f"{ratio(BARE, BARE_FULL).fmt()}x."
        )
    lines += [
        "",
        "TRL defaults: gradient checkpointing on, random order; tuned: checkpointing off, "
        '`train_sampling_strategy="group_by_length"`; both fp32 (`bf16=False`), no packing or padding-free '
        "(LFM2's convolutions leak across packed rows on CPU). Every side steps a fused AdamW (TRL's default "
        "`adamw_torch_fused`); none uses `torch.compile`. Our and the bare loop's time is the training "
        f"loop (model loading and export excluded); TRL's is `train_runtime`. {setup['warmup']} warm-up "
        "round(s) ran first and are not counted.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="64 chats (development only)")
    ap.add_argument("--examples", type=int)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="rounds run first and dropped")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not TATOEBA.with_suffix(".eng").is_file():
        sys.exit(f"benchmark data not found: {TATOEBA}.eng (../shared/data)")
    facts = run_facts("train_throughput.py")
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "tests"))
    from train_helpers import train_config, write_rows

    from hala_exp.core.model_dirs import build_model, build_tokenizer, embedded_texts, save_model_dir
    from hala_exp.core.schema import build
    from hala_exp.stages import train as train_stage
    from hala_exp.training.chat import resolve_template
    from hala_exp.training.examples import prepare_examples

    n_examples, batch = args.examples or (64 if args.quick else 256), 8
    work = Path(tempfile.mkdtemp(prefix="train_bench_"))
    rows = chats(n_examples)
    tok = build_tokenizer(embedded_texts() + [m["content"] for r in rows for m in r["messages"]])
    model = build_model("lfm2", tok, seed=0, **SHAPE)
    n_params = sum(p.numel() for p in model.parameters())
    model_dir = save_model_dir(model, tok, work / "base")
    data = write_rows(work / "data.jsonl", rows)
    cfg = build(
        train_stage.Config,
        train_config(
            max_steps=None,
            epochs=1,
            micro_batch_size=batch,
            max_length=1024,
            **{
                "optimizer.lr": 1e-4,
                "runtime.log_every_n_steps": 10**6,
                "runtime.checkpoint_every_n_steps": 10**6,
            },
        ),
        "train",
    )
    template = resolve_template(tok, None)
    examples = prepare_examples(
        str(data), tok, template, masking="assistant_turns", max_length=1024, too_long="truncate",
        end_of_turn=None, cache_dir=work / "tokenized", quarantine_path=None,
    )  # fmt: skip
    sides = {
        OURS: lambda: ours(cfg, model_dir, examples, template, work),
        BARE: lambda: bare(cfg, model_dir, examples, tok, full_logits=False),
        BARE_FULL: lambda: bare(cfg, model_dir, examples, tok, full_logits=True),
        TRL_DEFAULT: lambda: trl(model_dir, tok, rows, batch, work, tuned=False),
        TRL_TUNED: lambda: trl(model_dir, tok, rows, batch, work, tuned=True),
    }
    per_round = interleaved(sides, args.rounds, warmup=args.warmup)
    runs = {side: {k: [r[k] for r in results] for k in results[0]} for side, results in per_round.items()}
    steps = -(-len(examples) // batch)
    setup = dict(parameters=n_params, shape=SHAPE, threads=torch.get_num_threads(), examples=len(examples),
                 batch=batch, steps=steps, rounds=args.rounds, warmup=args.warmup)  # fmt: skip
    write_result("train_throughput.md", report(finish(facts), setup, runs))


def ours(cfg, model_dir: Path, examples, template: str, work: Path) -> dict:
    from hala_exp.training.fit import FitRequest, fit

    res = fit(
        FitRequest(
            config=cfg,
            model_dir=str(model_dir),
            examples_dir=str(examples.path),
            template=template,
            checkpoint_dir=str(work / "ckpt"),
            export_dir=str(work / "ours"),
        ),
        lambda *_: None,
    )
    return {"tokens_per_s": res["tokens_per_s"], "step_s": res["step_time_s"], "padding": res["padding_fraction"]}


def bare(cfg, model_dir: Path, examples, tok, full_logits: bool) -> dict:
    """The stage's batches, loss scaling, optimizer and scheduler in a plain loop: what Lightning adds is the rest."""
    import torch

    from hala_exp.training.batches import BatchPlan, DataPosition, make_loader
    from hala_exp.training.fit import _load_model
    from hala_exp.training.module import CausalLMModule, target_loss

    torch.manual_seed(cfg.seed)
    model = _load_model(str(model_dir), cfg).train()
    model.config.use_cache = False
    plan = BatchPlan(
        examples.lengths(), examples.trainable_counts(), cfg.micro_batch_size, packing=False,
        max_length=cfg.max_length, batching=cfg.batching, seed=cfg.seed,
    )  # fmt: skip
    loader = make_loader(
        examples, plan, 0, tok.pad_token_id, DataPosition(), 0, cfg.runtime.pad_to_multiple_of, cfg.runtime.split_saving
    )
    module = CausalLMModule(model, cfg.optimizer, plan.steps_per_epoch(), 1, 1, DataPosition())
    optim = module.configure_optimizers()
    opt, sched = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    loss_fn = _full_logits_loss if full_logits else target_loss
    real = padded = steps = 0
    start = time.perf_counter()
    for b in loader:
        loss_sum, _ = loss_fn(model, b)
        (loss_sum / b["window_tokens"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        fed = b["input_ids"].numel() if full_logits else b["padded_tokens"]  # the textbook loss feeds whole batches
        real, padded, steps = real + b["real_tokens"], padded + fed, steps + 1
    secs = time.perf_counter() - start
    return {"tokens_per_s": real / secs, "step_s": secs / steps, "padding": 1 - real / padded}


def _full_logits_loss(model, batch):
    """The loss before ``target_loss``: every position's logits, shifted and upcast to float32."""
    import torch

    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,
    )
    logits, targets = out.logits[:, :-1].float(), batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss, int((targets != -100).sum())


def trl(model_dir: Path, tok, rows: list[dict], batch: int, work: Path, tuned: bool) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    ds = datasets.Dataset.from_list([{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in rows])
    tuning = dict(gradient_checkpointing=False, train_sampling_strategy="group_by_length") if tuned else {}
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        processing_class=tok,
        train_dataset=ds,
        args=SFTConfig(
            output_dir=str(work / "trl"),
            per_device_train_batch_size=batch,
            num_train_epochs=1,
            learning_rate=1e-4,
            bf16=False,  # fp32 like the other sides (TRL's bf16 default is emulated on this CPU)
            report_to="none",
            save_strategy="no",
            logging_steps=10**6,
            use_cpu=True,
            disable_tqdm=True,
            dataloader_num_workers=0,
            **tuning,
        ),
    )
    real = sum(len(x) for x in trainer.train_dataset["input_ids"])
    padded = sum(b["input_ids"].numel() for b in trainer.get_train_dataloader())
    out = trainer.train()
    secs = out.metrics["train_runtime"]
    return {"tokens_per_s": real / secs, "step_s": secs / out.global_step, "padding": 1 - real / padded}


if __name__ == "__main__":
    main()
