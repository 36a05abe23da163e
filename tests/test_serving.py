"""cookbook.serving: the vLLM input builder (without vLLM), vllm serve plans for made-up machines,
and the lifecycle of a real `transformers serve` on 127.0.0.1 with the tiny checkpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from cookbook import serving as sv
from cookbook.hardware import GPU, Hardware

CHELSEA = "assets/chelsea.jpg"  # 451x300
COFFEE = "assets/coffee.jpg"  # 600x400
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def asset(name: str) -> str:
    return os.path.join(ROOT, name)


# ----------------------------------------------------------------------------- vLLM inputs


@pytest.fixture(scope="module")
def processor():
    from transformers import AutoProcessor

    import cookbook as cb

    return AutoProcessor.from_pretrained(cb.tiny.build())


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory):
    import cookbook as cb

    return cb.video.write_demo_video(tmp_path_factory.mktemp("v") / "demo.mp4", seconds=3.0, fps=10,
                                     size=(320, 240))


def test_openai_parts_become_qwen_parts():
    msgs = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "a.png"}, "max_pixels": 1024},
        {"type": "video_url", "video_url": {"url": "b.mp4"}},
        {"type": "image", "url": "c.png"},
        {"type": "text", "text": "hi"}]}]
    out = sv.normalize_messages(msgs)
    assert out[0]["content"] == [
        {"type": "image", "image": "a.png", "max_pixels": 1024},
        {"type": "video", "video": "b.mp4"},
        {"type": "image", "image": "c.png"},
        {"type": "text", "text": "hi"},
    ]
    assert msgs[0]["content"][0]["type"] == "image_url"  # the input is not modified


def test_qwen_vl_utils_0014_defects_are_real():
    """The two defects vllm_inputs works around; if a release fixes them this test says so."""
    from PIL import Image
    from qwen_vl_utils import process_vision_info

    with pytest.raises(AttributeError, match="startswith"):
        process_vision_info([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": asset(CHELSEA)}}]}], image_patch_size=16)
    frames = [Image.new("RGB", (200, 100)) for _ in range(4)]
    _, videos, _ = process_vision_info([{"role": "user", "content": [{"type": "video", "video": frames}]}],
                                       image_patch_size=16, return_video_kwargs=True,
                                       return_video_metadata=True)
    video, _ = videos[0]
    h, w = video.shape[-2:]
    assert (h, w) == (320, 448)  # 2:1 frames come back 1.4:1 (resized to multiples of 64 first)


def test_vllm_inputs_images_videos_and_metadata(processor, demo_video):
    from PIL import Image

    frames = [Image.new("RGB", (200, 100), (40 * i, 0, 0)) for i in range(5)]
    msgs = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": asset(CHELSEA)}},  # OpenAI style: crashed 0.0.14
        {"type": "image", "image": asset(COFFEE)},
        {"type": "video", "video": str(demo_video), "fps": 2.0},
        {"type": "video", "video": frames, "sample_fps": 1.0},
        {"type": "text", "text": "What is here?"}]}]
    out = sv.vllm_inputs(msgs, processor)

    assert out["prompt"].count("<|image_pad|>") == 2 and out["prompt"].count("<|video_pad|>") == 2
    assert out["prompt"].endswith("What is here?<|im_end|>\n<|im_start|>assistant\n")
    images = out["multi_modal_data"]["image"]
    assert [im.size for im in images] == [(448, 288), (608, 384)]
    assert all(w % 32 == 0 and h % 32 == 0 for w, h in (im.size for im in images))

    (v1, m1), (v2, m2) = out["multi_modal_data"]["video"]
    # 3 s at 10 fps, sampled at 2 fps: 6 frames at the indices qwen-vl-utils' readers pick.
    assert tuple(v1.shape) == (6, 3, 320, 448)
    assert m1["fps"] == 10.0 and m1["total_num_frames"] == 30
    assert list(m1["frames_indices"]) == [0, 6, 12, 17, 23, 29]
    # 5 frames of 200x100: padded to 6, aspect ratio 2:1 kept, timestamps at 1 frame/s.
    assert tuple(v2.shape) == (6, 3, 256, 512)
    assert m2["fps"] == 1.0 and list(m2["frames_indices"]) == [0, 1, 2, 3, 4, 5]
    assert out["mm_processor_kwargs"] == {"do_sample_frames": False}

    # What vLLM does with them: the HF processor, frames already sampled. Timestamps follow metadata.
    batch = processor(text=[out["prompt"]], images=images, videos=[v1, v2], video_metadata=[m1, m2],
                      do_resize=False, return_tensors="pt", **out["mm_processor_kwargs"])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    assert re.findall(r"<([\d.]+) seconds>", text) == ["0.3", "1.4", "2.6", "0.5", "2.5", "4.5"]
    assert batch["image_grid_thw"].tolist() == [[1, 18, 28], [1, 24, 38]]


def test_vllm_inputs_image_only_has_no_video_kwargs(processor):
    out = sv.vllm_inputs([{"role": "user", "content": [
        {"type": "image", "image": asset(CHELSEA)}, {"type": "text", "text": "Describe."}]}], processor)
    assert list(out) == ["prompt", "multi_modal_data"]
    assert list(out["multi_modal_data"]) == ["image"]


# ----------------------------------------------------------------------------- plans

H100, A100, RTX4090, RTX3090 = (GPU("H100", 80.0, (9, 0)), GPU("A100", 80.0, (8, 0)),
                                GPU("RTX 4090", 24.0, (8, 9)), GPU("RTX 3090", 24.0, (8, 6)))


def cuda(*gpus: GPU) -> Hardware:
    return Hardware(device="cuda", gpus=tuple(gpus), vllm=True)


def flags(plan: sv.VllmPlan) -> dict[str, str | None]:
    return {f.name: f.value for f in plan.flags}


def test_no_gpu_is_a_clear_error_and_falls_back_to_transformers_serve():
    hw = Hardware(device="cpu")
    with pytest.raises(sv.NoGPUError, match="transformers serve"):
        sv.vllm_plan(hw, "Qwen/Qwen3-VL-4B-Instruct")
    assert sv.choose_backend(hw)[0] == "transformers"
    assert sv.choose_backend(Hardware(device="cuda", gpus=(H100,), vllm=False)) == (
        "transformers", "vLLM is not installed (pip install -e '.[gpu]')")
    assert sv.choose_backend(cuda(H100))[0] == "vllm"
    assert sv.choose_backend(cuda(H100), "Qwen/Qwen3-VL-8B-Instruct")[0] == "vllm"
    assert sv.choose_backend(cuda(H100), "/cache/qwen3-vl-tiny-instruct-abc")[0] == "transformers"


def test_one_24gb_gpu_8b():
    plan = sv.vllm_plan(cuda(RTX4090), "Qwen/Qwen3-VL-8B-Instruct")
    f = flags(plan)
    assert plan.tensor_parallel_size == 1 and plan.data_parallel_size == 1
    assert f["--tensor-parallel-size"] == "1"
    assert f["--max-model-len"] == "8192"  # ~17k tokens of KV cache, 2 sequences
    assert json.loads(f["--limit-mm-per-prompt"]) == {"image": 4, "video": 1}
    assert "--mm-encoder-tp-mode" not in f and "--enable-expert-parallel" not in f
    assert "--reasoning-parser" not in f
    assert any("-FP8" in n for n in plan.notes)  # the 4090 has FP8: a longer context is possible
    assert plan.llm_kwargs() == {"model": "Qwen/Qwen3-VL-8B-Instruct", "tensor_parallel_size": 1,
                                 "gpu_memory_utilization": 0.9, "max_model_len": 8192,
                                 "limit_mm_per_prompt": {"image": 4, "video": 1}, "seed": 0}


def test_one_24gb_gpu_4b_gets_a_longer_context():
    plan = sv.vllm_plan(cuda(RTX4090), "Qwen/Qwen3-VL-4B-Instruct")
    assert plan.max_model_len == 32768


def test_two_80gb_gpus_32b_thinking():
    plan = sv.vllm_plan(cuda(H100, H100), "Qwen/Qwen3-VL-32B-Thinking")
    f = flags(plan)
    assert plan.tensor_parallel_size == 2 and plan.data_parallel_size == 1
    assert f["--mm-encoder-tp-mode"] == "data"
    assert f["--reasoning-parser"] == "deepseek_r1"
    assert "--enable-expert-parallel" not in f
    assert plan.max_model_len == 131072
    assert plan.llm_kwargs()["mm_encoder_tp_mode"] == "data"


def test_eight_80gb_gpus_235b_moe():
    plan = sv.vllm_plan(cuda(*[H100] * 8), "Qwen/Qwen3-VL-235B-A22B-Instruct")
    f = flags(plan)
    assert plan.tensor_parallel_size == 8 and plan.data_parallel_size == 1
    assert "--enable-expert-parallel" in f and f["--mm-encoder-tp-mode"] == "data"
    assert plan.max_model_len == 65536
    argv = plan.command(port=8123)
    assert argv[:3] == ["vllm", "serve", "Qwen/Qwen3-VL-235B-A22B-Instruct"]
    assert argv[-4:] == ["--host", "127.0.0.1", "--port", "8123"]
    assert plan.llm_kwargs()["enable_expert_parallel"] is True
    fp8 = sv.vllm_plan(cuda(*[H100] * 8), "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8")
    assert fp8.model.endswith("-FP8") and not fp8.warnings  # the README's H100 command
    assert fp8.tensor_parallel_size == 8 and "--enable-expert-parallel" in flags(fp8)


def test_small_model_on_eight_gpus_uses_data_parallel_replicas():
    plan = sv.vllm_plan(cuda(*[H100] * 8), "Qwen/Qwen3-VL-8B-Instruct")
    assert (plan.tensor_parallel_size, plan.data_parallel_size) == (1, 8)
    assert flags(plan)["--data-parallel-size"] == "8"


def test_fp8_checkpoint_on_ampere_serves_bf16_with_a_warning():
    plan = sv.vllm_plan(cuda(A100), "Qwen/Qwen3-VL-8B-Instruct-FP8")
    assert plan.requested == "Qwen/Qwen3-VL-8B-Instruct-FP8"
    assert plan.model == "Qwen/Qwen3-VL-8B-Instruct"
    assert len(plan.warnings) == 1 and "compute capability 8.0 (< 8.9" in plan.warnings[0]
    assert plan.command()[2] == "Qwen/Qwen3-VL-8B-Instruct"


def test_too_big_names_the_way_out():
    with pytest.raises(sv.DoesNotFitError, match="smaller checkpoint"):
        sv.vllm_plan(cuda(RTX3090), "Qwen/Qwen3-VL-32B-Instruct")
    with pytest.raises(ValueError, match="not a Qwen3-VL checkpoint"):
        sv.vllm_plan(cuda(H100), "meta-llama/Llama-3-8B")


def test_shell_form_quotes_json_and_every_flag_is_explained():
    plan = sv.vllm_plan(cuda(H100, H100), "Qwen/Qwen3-VL-32B-Thinking", served_name="qwen3-vl")
    text = plan.shell()
    assert "--limit-mm-per-prompt '{\"image\": 4, \"video\": 1}'" in text
    assert text.splitlines()[0] == "vllm serve Qwen/Qwen3-VL-32B-Thinking \\"
    assert all(f.why for f in plan.flags)
    assert flags(plan)["--served-model-name"] == "qwen3-vl"
    assert all(f.name in plan.explain() for f in plan.flags)


def test_context_beyond_256k_uses_yarn_through_hf_overrides():
    plan = sv.vllm_plan(cuda(*[H100] * 8), "Qwen/Qwen3-VL-8B-Instruct", max_model_len=524288, min_sequences=1)
    rope = json.loads(flags(plan)["--hf-overrides"])["text_config"]["rope_parameters"]
    assert rope["rope_type"] == "yarn" and rope["factor"] == 2.0
    assert rope["original_max_position_embeddings"] == 262144 and rope["mrope_section"] == [24, 20, 20]
    assert plan.llm_kwargs()["hf_overrides"]["text_config"]["rope_parameters"] == rope
    assert not plan.warnings


def test_transformers_command_preloads_the_model():
    argv = sv.transformers_command("/models/tiny", port=8011)
    assert argv[1:] == ["serve", "--host", "127.0.0.1", "--port", "8011", "/models/tiny"]


# ----------------------------------------------------------------------------- lifecycle


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_only_loopback():
    with pytest.raises(ValueError, match="loopback only"):
        sv.start("/nonexistent", host="0.0.0.0")


def test_a_server_that_cannot_start_reports_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # fail fast instead of asking the hub
    with pytest.raises(sv.ServerError) as info:
        sv.start(tmp_path / "no-such-model", log_dir=tmp_path, timeout=120, threads=1)
    message = str(info.value)
    assert "exited with code" in message and "last lines of" in message
    assert "no-such-model" in message  # the server's own complaint is shown
    assert sv.running_servers() == []


def test_context_manager_stops_the_server_when_the_body_raises(tmp_path):
    import cookbook as cb

    with pytest.raises(RuntimeError, match="boom"):
        with sv.start(cb.tiny.build(), log_dir=tmp_path, threads=1) as server:
            pid, port = server.process.pid, server.port
            assert server.running and server.base_url == f"http://127.0.0.1:{port}/v1"
            raise RuntimeError("boom")
    assert not server.running
    assert not _alive(pid)
    with pytest.raises(OSError):  # nothing listens any more
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert server.log_path.read_text().startswith("$ ")
    assert sv.running_servers() == []


def test_atexit_stops_a_server_left_running(tmp_path):
    """A notebook kernel that exits without stopping its server does not leave it behind."""
    import cookbook as cb

    code = (
        "import cookbook.serving as sv, sys\n"
        f"s = sv.start({str(cb.tiny.build())!r}, log_dir={str(tmp_path)!r}, threads=1)\n"
        "print(s.process.pid, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    pid = int(out.stdout.split()[-1])
    _wait_dead(pid)


def test_a_killed_parent_takes_its_server_along(tmp_path):
    """A notebook kernel killed with SIGKILL runs no atexit handler: the server still goes."""
    import cookbook as cb

    code = (
        "import cookbook.serving as sv, sys, time\n"
        f"s = sv.start({str(cb.tiny.build())!r}, log_dir={str(tmp_path)!r}, threads=1)\n"
        "print(s.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    assert _alive(pid)
    parent.kill()
    parent.wait()
    _wait_dead(pid)


def _wait_dead(pid: int) -> None:
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
        pytest.fail("the server outlived the Python process that started it")


def test_make_serve_dry_run(capsys, monkeypatch):
    monkeypatch.setenv("COOKBOOK_MODEL", "tiny")
    assert sv.main(["--dry-run", "--port", "8765", "--backend", "transformers"]) == 0
    out = capsys.readouterr().out
    assert "backend: transformers (chosen with --backend)" in out
    assert re.search(r"serve --host 127\.0\.0\.1 --port 8765 \S+qwen3-vl-tiny-instruct", out)
    assert "export COOKBOOK_BASE_URL=http://127.0.0.1:8765/v1" in out
