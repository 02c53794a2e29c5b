"""Translation engine of hala_exp: prompts, protected spans, segmentation, backends, gates, exactly-once shards.

``translate_texts`` is the entry point for other stages (eval's BLEU, quantize's validation).
"""

from __future__ import annotations

import logging
import tempfile
from typing import Literal

from hala_exp.translation.config import BackendConfig, LanguageConfig, PromptConfig

log = logging.getLogger(__name__)

__all__ = ["translate_texts", "BackendConfig", "LanguageConfig", "PromptConfig"]


def translate_texts(
    model: str,
    texts: list[str],
    *,
    prompt: PromptConfig,
    language: LanguageConfig,
    direction: Literal["en-xx", "xx-en"],
    backend: BackendConfig,
) -> list[str]:
    """Translate ``texts`` with the model directory ``model``; outputs in input order.

    Greedy, batched by similar length; spans are protected and long texts segmented as in the translate
    stage; identical texts are generated once. A text whose protected spans the model lost is returned with
    the spans it kept restored and the lost ones dropped (evaluation needs an output for every input).
    """
    from hala_exp.translation import spans
    from hala_exp.translation.engine import MemoryCache, Translator

    with tempfile.TemporaryDirectory(prefix="hala-translate-") as work:
        tr = Translator(model, prompt, language, direction, backend, work_dir=work)
        prepared = [tr.prepare(t) for t in texts]
        cache = MemoryCache()
        tr.generate_missing(
            (p.text for pr in prepared for p in pr.pieces if p.translate), cache, progress=backend.runtime.progress
        )
        outputs, lost = [], 0
        for pr in prepared:
            marked, restored = tr.assemble(pr, cache)
            if restored is None:
                lost += 1
                restored = spans.restore_lenient(marked, pr.protected.spans)
            outputs.append(restored)
    if lost:
        log.warning("translate_texts: %d of %d outputs lost protected spans", lost, len(texts))
    return outputs
