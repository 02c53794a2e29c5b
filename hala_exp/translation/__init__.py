"""Translation engine of hala_exp: prompts, protected spans, segmentation, backends, gates, exactly-once shards.

``translate_texts`` is the entry point for other stages (eval's BLEU).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Literal

from hala_exp.translation.config import EngineConfig, LanguageConfig, PromptConfig, ProtectConfig

log = logging.getLogger(__name__)

__all__ = ["translate_texts", "EngineConfig", "LanguageConfig", "PromptConfig"]


def translate_texts(
    model: str,
    texts: list[str],
    *,
    prompt: PromptConfig,
    language: LanguageConfig,
    direction: Literal["en-xx", "xx-en"],
    engine: EngineConfig,
    protect: ProtectConfig | None = None,
    cache_dir: str | Path | None = None,
) -> list[str]:
    """Translate ``texts`` with the model directory ``model``; outputs in input order.

    Greedy, batched by similar length; spans are protected (``protect``: the translate stage's kinds; None:
    the defaults) and long texts segmented as in the translate stage; identical texts are generated once.
    Generated segments are kept in ``cache_dir`` (give one in the caller's artifact directory: a call killed
    half-way resumes from its finished segments; None: a temporary directory). A text whose protected spans
    the model lost is returned with the spans it kept restored and the lost ones dropped (evaluation needs
    an output for every input).
    """
    from hala_exp.translation import spans
    from hala_exp.translation.cache import SegmentCache
    from hala_exp.translation.engine import Translator

    with tempfile.TemporaryDirectory(prefix="hala-translate-") as work:
        cache = SegmentCache(Path(cache_dir) if cache_dir else Path(work) / "segments")
        tr = Translator(model, prompt, language, direction, engine, protect=protect, work_dir=work)
        try:
            results, _ = tr.translate(texts, cache)
        finally:
            tr.close()
            cache.close()
    lost = [r for r in results if r.text is None]
    if lost:
        log.warning("translate_texts: %d of %d outputs lost protected spans", len(lost), len(texts))
    return [r.text if r.text is not None else spans.restore_lenient(r.marked or "", r.spans) for r in results]
