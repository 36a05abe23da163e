"""Time one video reader in a fresh process, so that its peak memory (VmHWM) is its own (07's benchmark):
``python -m cookbook.kit.read_bench PATH BACKEND FPS OUT [READER]``. Backend ``cookbook`` calls ``READER``
(``module:function``, 07's ``read_video`` by default); ``torchcodec`` and ``decord`` call qwen-vl-utils'
``fetch_video``. Prints one JSON line; ``OUT`` (or ``-``) gets the frames as .npy (uint8 T, H, W, 3)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODULES = {"cookbook": "av", "torchcodec": "torchcodec.decoders", "decord": "decord"}


def _status_mb(key: str) -> float:
    return next(int(line.split()[1]) / 1024 for line in open("/proc/self/status") if line.startswith(key))


def main(path: str, backend: str, fps: str, out: str, reader: str = "cookbook.video:read_video") -> None:
    """Read ``path`` once with ``backend`` and print its time, memory, frame shape and frame indices."""
    import numpy as np

    if backend != "cookbook":
        os.environ["FORCE_QWENVL_VIDEO_READER"] = backend
    importlib.import_module(MODULES[backend])
    if backend == "cookbook":
        module, name = reader.split(":")
        read = getattr(importlib.import_module(module), name)
    else:
        import torch
        from qwen_vl_utils import vision_process as vp
    base, t0 = _status_mb("VmRSS"), time.perf_counter()
    if backend == "cookbook":
        frames, meta = read(path, float(fps))
    else:
        video, meta = vp.fetch_video({"video": path, "fps": float(fps)}, image_patch_size=16, return_video_metadata=True)
    seconds, peak = time.perf_counter() - t0, _status_mb("VmHWM")
    if backend != "cookbook":
        frames = video.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if out != "-":
        np.save(out, frames)
    print(json.dumps({"reader": backend, "seconds": seconds, "peak_mb": peak, "imports_mb": base,
                      "frames": list(frames.shape), "indices": [int(i) for i in meta["frames_indices"]]}))


def bench_reader(path: str | Path, backend: str = "cookbook", fps: float = 2.0, save: str | Path | None = None,
                 timeout: float = 600, reader: str = "cookbook.video:read_video") -> dict[str, Any]:
    """Run ``main`` in a fresh process: wall time of read + resize, peak RSS (MB) and RSS after imports."""
    if backend not in MODULES:
        raise ValueError(f"backend {backend!r}: one of {', '.join(MODULES)}")
    done = subprocess.run([sys.executable, "-m", __name__, str(path), backend, str(fps), str(save or "-"), reader],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"{backend} reader failed: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main(*sys.argv[1:])
