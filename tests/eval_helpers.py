"""Helpers for the eval tests: build the eval step configs from conf/ without composing the whole tree."""

from __future__ import annotations

from pathlib import Path

from hala_exp.core.schema import build

CONF = Path(__file__).parents[1] / "conf"


def eval_step_configs(option: str, overrides: dict | None = None) -> dict:
    """Resolved step configs of `eval_translator` and `eval` for `eval=<option>`, as conf/pipeline/hala.yaml
    wires them."""
    from omegaconf import OmegaConf

    translator = OmegaConf.load(CONF / "translator/embedded.yaml")
    translator.pop("defaults", None)
    cfg = OmegaConf.create(
        {
            "eval": OmegaConf.load(CONF / f"eval/{option}.yaml"),
            "translate": OmegaConf.load(CONF / "translate/transformers.yaml"),
            "language": OmegaConf.load(CONF / "language/ar.yaml"),
            "translator": translator,
            "data": {"heldout": OmegaConf.load(CONF / "data/embedded.yaml").heldout},
        }
    )
    for key, value in (overrides or {}).items():
        OmegaConf.update(cfg, key, value, merge=False)
    c = OmegaConf.to_container(cfg, resolve=True)
    return {
        "eval_translator": {
            "translation": c["eval"]["translation"],
            "prompt": c["translator"]["prompt"],
            "language": c["language"],
        },
        "eval": {"benchmarks": c["eval"]["benchmarks"], "language": c["language"]},
    }


def build_eval(raw: dict):
    from hala_exp.stages import eval as eval_stage

    return build(eval_stage.Config, raw, "")


def run_eval(raw: dict, model_dir, out_dir: Path):
    from hala_exp.core.stage import StageContext
    from hala_exp.stages import eval as eval_stage

    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = StageContext("eval", "eval", build_eval(raw), {"model": {"model": str(model_dir)}}, out_dir)
    return eval_stage.run(ctx)
