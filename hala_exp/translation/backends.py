"""Generation backends. Both take token ids (prompts are rendered and tokenised once, in the caller) and
return token ids, decoded by the caller with the same tokenizer: the same greedy search on two backends
gives comparable text.

* ``transformers``: batched greedy ``generate`` in this process, batches of similar length (CPU or GPU); the
  prefix all prompts share (a few-shot prompt's examples) is run once and its KV cache reused by every row.
* ``vllm``: ``LLM.generate`` in a worker interpreter (``runtime.worker_python``; vLLM's pins clash with
  llmcompressor's), talking through files only; tensor/data parallel from config. The worker is started once
  and fed request after request (one engine start per job, not per window); ``starts`` counts start-ups.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hala_exp.translation.config import EngineConfig

log = logging.getLogger(__name__)


@dataclass
class Request:
    key: str
    prompt_ids: list[int]
    max_new_tokens: int


@dataclass
class Generation:
    key: str
    token_ids: list[int]  # generated ids, cut at the first end-of-sequence id
    prompt_tokens: int


OnDone = Callable[[list[Generation]], None]


def cut_at_eos(ids: list[int], eos_ids: set[int], limit: int) -> list[int]:
    ids = list(ids[:limit])
    for i, t in enumerate(ids):
        if t in eos_ids:
            return ids[:i]
    return ids


class TransformersBackend:
    devices = 1

    def __init__(
        self, model_path: str, cfg: EngineConfig, eos_ids: set[int], pad_id: int, repetition_penalty: float = 1.0
    ):
        import torch

        started = time.perf_counter()

        from hala_exp.core.model_dirs import load_model

        device = cfg.runtime.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = cfg.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        self.device, self.cfg, self.eos_ids, self.pad_id = device, cfg, eos_ids, pad_id
        self.repetition_penalty = repetition_penalty  # the prompt's (PromptConfig), not the engine's
        self.model = load_model(model_path, dtype=dtype, trust_remote_code=cfg.trust_remote_code, device=device)
        self._prefix: _SharedPrefix | None = None  # the last shared prefix's KV cache, reused across calls
        self.starts, self.start_seconds = 1, time.perf_counter() - started

    def generate(self, requests: list[Request], on_done: OnDone) -> None:
        order = sorted(requests, key=lambda r: (len(r.prompt_ids), r.max_new_tokens))
        prefix = self._shared_prefix(order)
        bs = self.cfg.runtime.generate_batch_size
        for start in range(0, len(order), bs):
            batch = order[start : start + bs]
            done: list[Generation | None] = self._generate(batch, prefix) if prefix else [None] * len(batch)
            redo = [i for i, g in enumerate(done) if g is None]
            for i, g in zip(redo, self._generate([batch[i] for i in redo], None) if redo else []):
                done[i] = g
            on_done([g for g in done if g is not None])

    def _generate(self, batch: list[Request], prefix: _SharedPrefix | None) -> list[Generation | None]:
        """One padded ``generate`` call. Without a prefix, rows are left-padded. With one, every row starts with
        the prefix's cached keys and values, then its padding, then the rest of its prompt: generation still
        starts at one column for all rows, and position ids (from the attention mask) run on past the padding.
        A row that could outgrow the sliding window before it ends comes back as None (the padding would shift
        the window): the caller generates it again without the prefix."""
        import torch

        shared = len(prefix.ids) if prefix else 0
        width = max(len(r.prompt_ids) for r in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            rest = len(r.prompt_ids) - shared
            ids[i, :shared] = torch.tensor(r.prompt_ids[:shared], dtype=torch.long)
            ids[i, width - rest :] = torch.tensor(r.prompt_ids[shared:], dtype=torch.long)
            mask[i, :shared] = 1
            mask[i, width - rest :] = 1
        limit = max(r.max_new_tokens for r in batch)
        if prefix and prefix.window is not None:
            limit = min(limit, prefix.window - width)
            if limit < 1:
                return [None] * len(batch)
        processors = []
        if self.repetition_penalty != 1.0:
            processors.append(_RepetitionPenalty(self.repetition_penalty, (mask == 0).to(self.device)))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                past_key_values=prefix.expand(len(batch)) if prefix else None,
                max_new_tokens=limit,
                do_sample=False,
                num_beams=1,
                pad_token_id=self.pad_id,
                eos_token_id=sorted(self.eos_ids),
                temperature=None,
                top_p=None,
                top_k=None,
                logits_processor=processors,
            )
        done: list[Generation | None] = []
        for r, row in zip(batch, out[:, width:].tolist()):
            # Each request keeps only its own limit, so a result never depends on its batch neighbours' limits.
            own = cut_at_eos(row, self.eos_ids, r.max_new_tokens)
            unfinished = len(own) == limit < r.max_new_tokens  # cut by the window, not by an EOS or its own limit
            done.append(None if unfinished else Generation(r.key, own, len(r.prompt_ids)))
        return done

    def _shared_prefix(self, order: list[Request]) -> _SharedPrefix | None:
        """The KV cache of the tokens every request starts with (a few-shot prompt's examples), run once instead
        of once per row: on CPU the prefill of a ~400-token 3-shot prompt costs more than the answer's decoding.
        Only for models whose cache is attention keys and values alone: a convolution or recurrent state (LFM2,
        Mamba) would run over the padding that follows the prefix."""
        if not self.cfg.runtime.prefix_cache or not order:
            return None
        n = len(os.path.commonprefix([r.prompt_ids for r in order]))
        n = min(n, min(len(r.prompt_ids) for r in order) - 1)  # every row feeds generate at least one token
        if n < MIN_SHARED_PREFIX:
            return None
        ids = tuple(order[0].prompt_ids[:n])
        if self._prefix is None or self._prefix.ids != ids:
            self._prefix = _SharedPrefix.build(self.model, ids, self.device)
        return self._prefix if self._prefix.cache is not None else None


# Shorter shared prefixes (a chat template's header) save little prefill: our choice, not measured.
MIN_SHARED_PREFIX = 32


@dataclass
class _SharedPrefix:
    ids: tuple[int, ...]
    cache: object | None  # a DynamicCache of batch 1; None: this model's cache cannot be shared this way
    window: int | None  # the smallest sliding window of its layers (None: full attention only)

    @classmethod
    def build(cls, model, ids: tuple[int, ...], device: str) -> _SharedPrefix:
        import torch
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

        with torch.inference_mode():
            cache = model(input_ids=torch.tensor([ids], device=device), use_cache=True).past_key_values
        layers = getattr(cache, "layers", [])
        if (
            type(cache) is not DynamicCache
            or not layers
            or any(type(l) not in (DynamicLayer, DynamicSlidingWindowLayer) for l in layers)
        ):
            return cls(ids, None, None)
        windows = [l.sliding_window for l in layers if isinstance(l, DynamicSlidingWindowLayer)]
        return cls(ids, cache, min(windows) if windows else None)

    def expand(self, rows: int):
        cache = copy.deepcopy(self.cache)  # generate appends to the cache it is given
        cache.batch_repeat_interleave(rows)  # type: ignore[attr-defined]
        return cache


class _RepetitionPenalty:
    """transformers' repetition penalty over each row's own tokens only. Its own counts padding as seen tokens,
    so a padded row would have its pad id (often the EOS) penalised and its result would depend on its batch
    neighbours' lengths; vLLM pads nothing."""

    def __init__(self, penalty: float, padding):
        self.penalty, self.padding = penalty, padding  # padding: (rows, prompt width) bool, True on pad slots

    def __call__(self, input_ids, scores):
        import torch

        written = input_ids.shape[1] - self.padding.shape[1]
        padding = torch.nn.functional.pad(self.padding, (0, written), value=False)
        seen = torch.where(padding, input_ids[:, -1:], input_ids)  # a padding slot repeats a token of the row
        logits = scores.gather(1, seen)
        return scores.scatter(1, seen, torch.where(logits < 0, logits * self.penalty, logits / self.penalty))


class VllmBackend:
    """Runs ``vllm_worker.py`` in ``runtime.worker_python`` as a server on a session directory: the engine
    starts once, then each ``generate`` drops a request file and streams results back from a JSONL file.
    A worker that died is restarted on the next request (counted in ``starts``)."""

    def __init__(
        self, model_path: str, cfg: EngineConfig, eos_ids: set[int], work_dir: Path, repetition_penalty: float = 1.0
    ):
        python = cfg.runtime.worker_python
        if not python:
            raise ValueError(
                "translate.engine.runtime.worker_python: required for engine vllm (the interpreter of the "
                "environment that has vllm, e.g. .venv-vllm/bin/python)"
            )
        if not Path(python).exists():
            raise FileNotFoundError(f"translate.engine.runtime.worker_python: {python} does not exist")
        self.python, self.model_path, self.cfg, self.eos_ids = python, model_path, cfg, eos_ids
        self.repetition_penalty = repetition_penalty  # the prompt's (PromptConfig), not the engine's
        self.session = Path(work_dir) / f"session-{os.getpid()}-{time.time_ns()}"
        self.devices = cfg.tensor_parallel_size * cfg.data_parallel_size
        self.proc: subprocess.Popen | None = None
        self.starts, self.start_seconds, self.requests = 0, 0.0, 0

    def _start(self) -> None:
        self.session.mkdir(parents=True, exist_ok=True)
        (self.session / "engine.json").write_text(
            json.dumps(
                {
                    "model": self.model_path,
                    "dtype": self.cfg.dtype,
                    "trust_remote_code": self.cfg.trust_remote_code,
                    "tensor_parallel_size": self.cfg.tensor_parallel_size,
                    "data_parallel_size": self.cfg.data_parallel_size,
                    "gpu_memory_utilization": self.cfg.gpu_memory_utilization,
                    "max_model_len": self.cfg.max_model_len,
                    "eos_token_ids": sorted(self.eos_ids),  # with the line-break tokens under stop_at_newline
                    "repetition_penalty": self.repetition_penalty,
                    "chunk_size": self.cfg.runtime.generate_batch_size,
                }
            )
        )
        worker = Path(__file__).with_name("vllm_worker.py")
        self.proc = subprocess.Popen(
            [self.python, str(worker), str(self.session)],
            preexec_fn=_die_with_parent,
            stdout=sys.stderr,
            stderr=sys.stderr,
        )
        self.starts += 1

    def generate(self, requests: list[Request], on_done: OnDone) -> None:
        if not requests:
            return
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        proc = self.proc
        assert proc is not None
        self.requests += 1
        n = self.requests
        out_path, done_path = self.session / f"result-{n:06d}.jsonl", self.session / f"done-{n:06d}"
        order = sorted(requests, key=lambda r: len(r.prompt_ids))
        by_key = {r.key: r for r in order}
        tmp = self.session / f".request-{n:06d}.json"
        tmp.write_text(
            json.dumps(
                {
                    "output": str(out_path),
                    "done": str(done_path),
                    "requests": [
                        {"key": r.key, "prompt_token_ids": r.prompt_ids, "max_tokens": r.max_new_tokens} for r in order
                    ],
                }
            )
        )
        os.replace(tmp, self.session / f"request-{n:06d}.json")  # the worker only sees whole requests
        seen: set[str] = set()
        offset = 0
        timeout = self.cfg.runtime.worker_timeout_s
        deadline = None if timeout is None else time.time() + timeout
        while True:
            finished = done_path.exists()
            alive = proc.poll() is None
            offset = self._drain(out_path, offset, by_key, seen, on_done)
            if finished or not alive:
                break
            if deadline and time.time() > deadline:
                self.close()
                raise TimeoutError(f"vllm worker exceeded engine.runtime.worker_timeout_s={timeout}")
            time.sleep(0.2)
        if not finished:
            raise RuntimeError(
                f"vllm worker ({self.python}) exited with code {proc.returncode}; session {self.session}"
            )
        missing = set(by_key) - seen
        if missing:
            raise RuntimeError(f"vllm worker returned no result for {len(missing)} request(s); session {self.session}")
        out_path.unlink(missing_ok=True)
        done_path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            (self.session / "stop").touch()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.session, ignore_errors=True)

    def _drain(self, path: Path, offset: int, by_key, seen: set, on_done: OnDone) -> int:
        if not path.exists():
            return offset
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line the worker is still writing waits for the next read
        gens = []
        for line in data[:end].splitlines():
            rec = json.loads(line)
            if rec["key"] in seen:
                continue
            seen.add(rec["key"])
            req = by_key[rec["key"]]
            gens.append(
                Generation(req.key, cut_at_eos(rec["token_ids"], self.eos_ids, req.max_new_tokens), len(req.prompt_ids))
            )
        if gens:
            on_done(gens)
        return offset + end


def _die_with_parent() -> None:
    """The worker gets SIGKILL when we die (even by kill -9), so no orphan keeps a GPU."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def make_backend(
    model_path: str, cfg: EngineConfig, eos_ids: set[int], pad_id: int, work_dir: Path, repetition_penalty: float = 1.0
):
    if cfg.name == "transformers":
        return TransformersBackend(model_path, cfg, eos_ids, pad_id, repetition_penalty)
    return VllmBackend(model_path, cfg, eos_ids, work_dir, repetition_penalty)
