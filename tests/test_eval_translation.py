"""Translation evaluation: sacrebleu scores, files the CLI reproduces, test-set loading and refusals."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import eval_step_configs, run_eval

from hala_exp.core.schema import ConfigError
from hala_exp.evaluation.paired import PairedSide
from hala_exp.evaluation.scoring import save_and_score
from hala_exp.evaluation.testsets import TestSetConfig as SetConfig
from hala_exp.evaluation.testsets import load_testset


def _degrade(lines: list[str]) -> list[str]:
    """Plausible hypotheses: every other reference loses its last word, every third gains a line break."""
    out = []
    for i, line in enumerate(lines):
        words = line.split()
        if i % 2 and len(words) > 1:
            words = words[:-1]
        text = " ".join(words)
        out.append(text.replace(" ", "\n", 1) if i % 3 == 0 else text)
    return out


def _cli_scores(metrics_file: Path) -> list[float]:
    command = json.loads(metrics_file.read_text())["reproduce"]
    args = shlex.split(command)
    assert args[0] == "sacrebleu"
    proc = subprocess.run([sys.executable, "-m", "sacrebleu", *args[1:]], capture_output=True, text=True, check=True)
    return [float(x) for x in proc.stdout.split()]


def test_scores_equal_sacrebleu_cli_on_saved_files(tmp_path, shared_data):
    flores = shared_data / "parallel/flores200_devtest"
    ts = load_testset(
        "flores",
        SetConfig(
            format="text_pair",
            source_file=str(flores / "eng_Latn.devtest"),
            reference_file=str(flores / "arb_Arab.devtest"),
            limit=60,
        ),
    )
    hyps = _degrade(ts.references)
    scores = save_and_score(tmp_path / "flores", ts.sources, hyps, ts.references)
    assert 0 < scores.bleu < 100 and 0 < scores.chrf < 100
    assert "tok:13a" in scores.bleu_signature and "nw:2" in scores.chrf_signature  # chrF++
    bleu_cli, chrf_cli = _cli_scores(tmp_path / "flores/metrics.json")
    assert bleu_cli == pytest.approx(round(scores.bleu, 4), abs=1e-4)
    assert chrf_cli == pytest.approx(round(scores.chrf, 4), abs=1e-4)
    saved = (tmp_path / "flores/hypotheses.txt").read_text(encoding="utf-8").splitlines()
    assert len(saved) == 60 and "\n" not in "".join(saved)


def test_embedded_heldout_scores_equal_cli(tmp_path):
    raw = eval_step_configs("embedded")["eval_translator"]["translation"]["testsets"]["heldout"]
    ts = load_testset("heldout", SetConfig(**raw))
    assert len(ts.sources) == 16 and ts.direction == "en-xx"
    scores = save_and_score(tmp_path / "h", ts.sources, _degrade(ts.references), ts.references)
    assert _cli_scores(tmp_path / "h/metrics.json") == pytest.approx(
        [round(scores.bleu, 4), round(scores.chrf, 4)], abs=1e-4
    )


def test_sides_of_different_length_refused_naming_files(tmp_path):
    src, ref = tmp_path / "a.en", tmp_path / "a.ar"
    src.write_text("one\ntwo\nthree\n")
    ref.write_text("واحد\nاثنان\n")
    with pytest.raises(ValueError) as err:
        load_testset("bad", SetConfig(format="text_pair", source_file=str(src), reference_file=str(ref)))
    assert str(src) in str(err.value) and str(ref) in str(err.value)


def test_unchecked_config_missing_a_required_field_is_refused_by_name(tmp_path):
    # Built directly (not through build(), so check() never ran): the loader names the field the format needs.
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"en": "Hello.", "ar": "مرحبا."}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="reference_field: required when format=jsonl"):
        load_testset("p", SetConfig(format="jsonl", path=str(path), source_field="en"))
    with pytest.raises(ConfigError, match="reference: required when format=paired"):
        SetConfig(format="paired", source=PairedSide(text_fields=["en"], files={"x": str(path)})).local_files()


def test_stage_refuses_misaligned_testset_before_loading_model(tmp_path):
    src, ref = tmp_path / "a.en", tmp_path / "a.ar"
    src.write_text("one\ntwo\n")
    ref.write_text("واحد\n")
    raw = eval_step_configs("embedded")["eval_translator"]
    raw["translation"]["testsets"] = {
        "bad": {"format": "text_pair", "source_file": str(src), "reference_file": str(ref)}
    }
    with pytest.raises(ValueError, match="line-aligned"):
        run_eval(raw, tmp_path / "no-such-model", tmp_path / "out")  # the model path is never opened


def test_jsonl_rows_without_a_side_are_quarantined(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        '{"en": "Hello.", "ar": "مرحبا."}\n{"en": "", "ar": "x"}\n{"en": "Bye."}\nnot json\n', encoding="utf-8"
    )
    ts = load_testset("p", SetConfig(format="jsonl", path=str(path), source_field="en", reference_field="ar"))
    assert ts.sources == ["Hello."] and sum(ts.rejects.values()) == 3


def test_eval_stage_translation_metrics_and_files(tmp_path, monkeypatch, tiny_lfm2_dir):
    """The stage asks translate_texts for hypotheses and reports <testset>/bleu and /chrf from saved files."""
    import hala_exp.translation as translation

    calls = []

    def fake_translate(model, texts, *, prompt, language, direction, engine, protect=None, cache_dir=None):
        calls.append((model, direction, len(texts)))
        refs = {r["en"]: r["ar"] for r in map(json.loads, Path(heldout_path).read_text().splitlines())}
        return _degrade([refs[t] for t in texts])

    raw = eval_step_configs("embedded")["eval_translator"]
    heldout_path = SetConfig(**raw["translation"]["testsets"]["heldout"]).local_files()[0]
    monkeypatch.setattr(translation, "translate_texts", fake_translate)
    result = run_eval(raw, tiny_lfm2_dir, tmp_path)
    assert calls == [(str(tiny_lfm2_dir), "en-xx", 16)]
    # a 16-pair set also gets bootstrap 95 % half-widths
    assert set(result.metrics) == {"heldout/bleu", "heldout/chrf", "heldout/bleu_ci95", "heldout/chrf_ci95"}
    assert 0 < result.metrics["heldout/bleu"] < 100
    assert _cli_scores(tmp_path / "translation/heldout/metrics.json")[0] == pytest.approx(
        round(result.metrics["heldout/bleu"], 4), abs=1e-4
    )
    saved = json.loads((tmp_path / result.outputs["results"]).read_text())
    assert saved["translation"]["heldout"]["segments"] == 16


def test_flores_varieties_translate_the_english_side_once(tmp_path, monkeypatch, tiny_lfm2_dir, shared_data):
    """Nine FLORES test sets share one English side: one translation call, one score per variety; an MSA
    hypothesis (here the MSA reference itself) scores highest against MSA."""
    import hala_exp.translation as translation

    raw = eval_step_configs("shared_data", {"eval.data_root": str(shared_data)})["eval_translator"]
    sets = raw["translation"]["testsets"]
    raw["translation"]["testsets"] = {n: dict(ts, limit=20) for n, ts in sets.items() if n.startswith("flores_")}
    msa = (shared_data / "parallel/flores200_devtest/arb_Arab.devtest").read_text(encoding="utf-8").splitlines()
    calls = []

    def fake_translate(model, texts, *, prompt, language, direction, engine, protect=None, cache_dir=None):
        calls.append(len(texts))
        return msa[: len(texts)]

    monkeypatch.setattr(translation, "translate_texts", fake_translate)
    result = run_eval(raw, tiny_lfm2_dir, tmp_path)
    assert calls == [20]
    chrf = {n: v for n, v in result.metrics.items() if n.endswith("/chrf")}
    assert len(chrf) == 9 and chrf["flores_devtest/chrf"] == pytest.approx(100.0)
    assert all(v < 100.0 for n, v in chrf.items() if n != "flores_devtest/chrf")
