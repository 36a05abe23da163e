"""cookbook.serving: the vLLM input builder (without vLLM), vllm serve plans for made-up machines checked
against vLLM's rules, and the lifecycle of a real `transformers serve` on 127.0.0.1 with the tiny checkpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import cookbook as cb
from cookbook import serving as sv
from cookbook.lineup import LINEUP, fit, machine, recommend_model
from cookbook.runtime import server as srv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHELSEA = os.path.join(ROOT, "assets", "chelsea.jpg")  # 451x300

MACHINES = {
    "1 x RTX 4060 8 GB": machine("RTX 4060", 8, (8, 9)),
    "1 x RTX 3090 24 GB": machine("RTX 3090", 24, (8, 6)),
    "1 x L4 24 GB": machine("L4", 24, (8, 9)),
    "1 x A100 80 GB": machine("A100", 80, (8, 0)),
    "1 x H100 80 GB": machine("H100", 80, (9, 0)),
    "2 x H100 80 GB": machine("H100", 80, (9, 0), 2),
    "4 x L40S 48 GB": machine("L40S", 48, (8, 9), 4),
    "8 x A100 80 GB": machine("A100", 80, (8, 0), 8),
    "8 x H100 80 GB": machine("H100", 80, (9, 0), 8),
}


# ----------------------------------------------------------------------------- vLLM inputs


@pytest.fixture(scope="module")
def processor():
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(cb.kit.tiny.build())


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory):
    return cb.kit.clips.write_clip(tmp_path_factory.mktemp("v") / "demo.mp4", seconds=3.0, fps=10,
                                     size=(320, 240))


def test_vllm_inputs_images_videos_and_metadata(processor, demo_video):
    from PIL import Image

    frames = [Image.new("RGB", (200, 100), (50 * i, 80, 160)) for i in range(4)]
    messages = [cb.messages.user(CHELSEA, cb.messages.video(str(demo_video), fps=2.0),
                                 cb.messages.video(frames, fps=1.0), "What happens?")]
    out = sv.vllm_inputs(messages, processor)
    assert out["prompt"].count("<|vision_start|>") == 3 and out["prompt"].endswith("<|im_start|>assistant\n")
    assert [im.size for im in out["multi_modal_data"]["image"]] == [(451, 300)]
    (file_frames, file_meta), (list_frames, list_meta) = out["multi_modal_data"]["video"]
    assert file_meta["fps"] == 10 and file_meta["frames_indices"] == [0, 6, 12, 17, 23, 29]  # 6 frames = 2 fps of 3 s
    assert list_frames.shape == (4, 100, 200, 3)  # the frame list keeps its 2:1 aspect ratio
    assert list_meta == {"fps": 1.0, "frames_indices": [0, 1, 2, 3], "total_num_frames": 4}
    assert out["mm_processor_kwargs"] == {"do_sample_frames": False}
    # the real processor turns the metadata into the timestamps Qwen3-VL reads
    videos = out["multi_modal_data"]["video"]
    batch = processor(text=[out["prompt"]], images=out["multi_modal_data"]["image"], videos=[v for v, _ in videos],
                      video_metadata=[m for _, m in videos], return_tensors="pt", **out["mm_processor_kwargs"])
    stamps = re.findall(r"<([\d.]+) seconds>", processor.tokenizer.decode(batch["input_ids"][0]))
    expected = [f"{(m['frames_indices'][i] + m['frames_indices'][i + 1]) / 2 / m['fps']:.1f}"
                for _, m in videos for i in range(0, len(m["frames_indices"]), 2)]
    assert stamps == expected and expected[-2:] == ["0.5", "2.5"]  # frames 0-1 and 2-3 at 1 fps


def test_vllm_inputs_image_only_has_no_video_kwargs(processor):
    out = sv.vllm_inputs([cb.messages.user(CHELSEA, "Describe.")], processor)
    assert set(out["multi_modal_data"]) == {"image"} and out["mm_processor_kwargs"] == {}


def test_llm_kwargs_count_the_prompts_or_refuse_with_the_counts(processor, demo_video):
    """The seed's offline cell sent 1 image + 2 videos with a limit of 1 video: vLLM refuses such a prompt."""
    prompt = sv.vllm_inputs([cb.messages.user(CHELSEA, cb.messages.video(str(demo_video)),
                                              cb.messages.video(str(demo_video)), "Compare.")], processor)
    default = sv.vllm_plan(MACHINES["1 x L4 24 GB"], "Qwen/Qwen3-VL-8B-Instruct-FP8")  # sized for 4 images, 1 video
    with pytest.raises(ValueError, match=r"prompt 0 carries 1 image\(s\) and 2 video\(s\).*images=1, videos=2"):
        default.llm_kwargs([prompt])
    plan = sv.vllm_plan(MACHINES["1 x L4 24 GB"], "Qwen/Qwen3-VL-8B-Instruct-FP8", images=1, videos=2)
    assert plan.llm_kwargs([prompt])["limit_mm_per_prompt"] == {"image": 1, "video": 2}
    text = sv.vllm_inputs([cb.messages.user("Hello")], processor)
    assert plan.llm_kwargs([text])["limit_mm_per_prompt"] == {"image": 0, "video": 0}
    assert plan.llm_kwargs()["limit_mm_per_prompt"] == {"image": 1, "video": 2}


# ----------------------------------------------------------------------------- plans


def _flags(plan):
    return {f.name: f.value for f in plan.flags}


def test_no_gpu_is_a_clear_error_and_falls_back_to_transformers_serve():
    with pytest.raises(sv.NoGPUError, match="transformers serve"):
        sv.vllm_plan(cb.Hardware("cpu"), "Qwen/Qwen3-VL-8B-Instruct")
    assert sv.choose_backend(cb.Hardware("cpu"))[0] == "transformers"
    assert sv.choose_backend(MACHINES["1 x L4 24 GB"])[0] == "transformers"  # vllm not installed there
    with pytest.raises(ValueError, match="not a Qwen3-VL checkpoint"):
        sv.vllm_plan(MACHINES["1 x L4 24 GB"], "gpt2")


@pytest.mark.parametrize("name", list(MACHINES))
@pytest.mark.parametrize("thinking", [False, True])
def test_the_recommended_checkpoint_is_always_servable_by_its_plan(name, thinking):
    hw = MACHINES[name]
    ck = recommend_model(hw, thinking=thinking).checkpoint
    plan = sv.vllm_plan(hw, ck.id)
    f = _flags(plan)
    assert plan.model == ck.id and plan.fit == fit(ck, hw)  # one rule for both
    tp, n = int(f["--tensor-parallel-size"]), len(hw.gpus)
    assert n % tp == 0 and 2 * int(f["--max-model-len"]) <= plan.fit.kv_tokens
    assert "--async-scheduling" in f and f["--tool-call-parser"] == "hermes"
    assert json.loads(f["--media-io-kwargs"]) == {"video": {"num_frames": -1}}
    pixels = json.loads(f["--mm-processor-kwargs"])["size"]["longest_edge"]
    limit = json.loads(f["--limit-mm-per-prompt"])
    assert (limit["image"] * pixels / 1024 + limit["video"] * pixels / 2048 + sv.TEXT_RESERVE
            <= int(f["--max-model-len"]))  # the pixel budget fits the context
    assert (f.get("--reasoning-parser") == "deepseek_r1") == thinking
    assert ("--mm-encoder-tp-mode" in f) == (tp > 1)


def test_every_flag_is_one_vllm_033_knows():
    known = {"--tensor-parallel-size", "--data-parallel-size", "--gpu-memory-utilization", "--max-model-len",
             "--limit-mm-per-prompt", "--mm-processor-kwargs", "--media-io-kwargs", "--mm-encoder-tp-mode",
             "--enable-expert-parallel", "--async-scheduling", "--kv-cache-dtype", "--moe-backend",
             "--reasoning-parser", "--enable-auto-tool-choice", "--tool-call-parser", "--served-model-name",
             "--hf-overrides"}
    seen = set()
    for hw in MACHINES.values():
        for ck in LINEUP:
            try:
                seen |= set(_flags(sv.vllm_plan(hw, ck.id, kv_cache_dtype="fp8", served_name="q")))
            except sv.DoesNotFitError:
                pass
    assert seen <= known and "--rope-scaling" not in seen
    assert {"--enable-expert-parallel", "--moe-backend", "--kv-cache-dtype", "--data-parallel-size"} <= seen


def test_moe_on_eight_gpus_spreads_experts():
    f = _flags(sv.vllm_plan(MACHINES["8 x H100 80 GB"], "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8"))
    assert f["--tensor-parallel-size"] == "8" and "--enable-expert-parallel" in f and "--data-parallel-size" not in f
    assert f["--mm-encoder-tp-mode"] == "data" and "--moe-backend" not in f


def test_fp8_on_ampere_runs_weight_only_and_moe_needs_marlin():
    dense = sv.vllm_plan(MACHINES["1 x A100 80 GB"], "Qwen/Qwen3-VL-8B-Instruct-FP8")
    assert dense.model == "Qwen/Qwen3-VL-8B-Instruct-FP8"  # served as FP8, not swapped for bf16
    assert "Marlin" in dense.notes[0] and "--moe-backend" not in _flags(dense)
    moe = sv.vllm_plan(MACHINES["8 x A100 80 GB"], "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8")
    assert _flags(moe)["--moe-backend"] == "marlin"
    h100 = sv.vllm_plan(MACHINES["8 x H100 80 GB"], "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8")
    assert "W8A8" in h100.notes[0]


def test_small_model_on_eight_gpus_uses_data_parallel_replicas():
    f = _flags(sv.vllm_plan(MACHINES["8 x H100 80 GB"], "Qwen/Qwen3-VL-8B-Instruct"))
    assert f["--tensor-parallel-size"] == "1" and f["--data-parallel-size"] == "8"


def test_fp8_kv_cache_lengthens_the_context():
    hw = MACHINES["1 x L4 24 GB"]
    plain = sv.vllm_plan(hw, "Qwen/Qwen3-VL-8B-Instruct-FP8")
    fp8 = sv.vllm_plan(hw, "Qwen/Qwen3-VL-8B-Instruct-FP8", kv_cache_dtype="fp8")
    assert fp8.fit.kv_tokens >= 1.99 * plain.fit.kv_tokens and fp8.max_model_len == 2 * plain.max_model_len
    assert _flags(fp8)["--kv-cache-dtype"] == "fp8" and fp8.llm_kwargs()["kv_cache_dtype"] == "fp8"


def test_text_only_mode_reserves_nothing_for_media():
    f = _flags(sv.vllm_plan(MACHINES["1 x L4 24 GB"], "Qwen/Qwen3-VL-8B-Instruct-FP8", text_only=True))
    assert "--language-model-only" in f and "--limit-mm-per-prompt" not in f
    assert "--mm-processor-kwargs" not in f and "--media-io-kwargs" not in f


def test_too_big_names_the_way_out():
    with pytest.raises(sv.DoesNotFitError, match="Qwen/Qwen3-VL-8B-Instruct-FP8"):
        sv.vllm_plan(MACHINES["1 x L4 24 GB"], "Qwen/Qwen3-VL-32B-Instruct")


def test_context_beyond_256k_uses_yarn_through_hf_overrides():
    plan = sv.vllm_plan(MACHINES["8 x H100 80 GB"], "Qwen/Qwen3-VL-8B-Instruct", max_model_len=524288)
    rope = json.loads(_flags(plan)["--hf-overrides"])["text_config"]["rope_parameters"]
    assert rope["rope_type"] == "yarn" and rope["factor"] == 2
    assert plan.llm_kwargs()["hf_overrides"]["text_config"]["rope_parameters"]["factor"] == 2


def test_shell_form_is_the_argv_quoted():
    import shlex

    plan = sv.vllm_plan(MACHINES["2 x H100 80 GB"], "Qwen/Qwen3-VL-32B-Thinking")
    assert shlex.split(plan.shell().replace("\\\n", " ")) == plan.command()
    assert all(f.why for f in plan.flags)


def test_transformers_command_preloads_the_model():
    argv = srv.transformers_command("/models/tiny", port=8011)
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
        srv.start("/nonexistent", host="0.0.0.0")


def test_a_server_that_cannot_start_reports_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # fail fast instead of asking the hub
    with pytest.raises(srv.ServerError) as info:
        srv.start(tmp_path / "no-such-model", log_dir=tmp_path, timeout=120, threads=1)
    message = str(info.value)
    assert "exited with code" in message and "last lines of" in message
    assert "no-such-model" in message  # the server's own complaint is shown
    assert srv.running_servers() == []


def test_context_manager_stops_the_server_when_the_body_raises(tmp_path):
    import cookbook as cb

    with pytest.raises(RuntimeError, match="boom"):
        with srv.start(cb.kit.tiny.build(), log_dir=tmp_path, threads=1) as server:
            pid, port = server.process.pid, server.port
            assert server.running and server.base_url == f"http://127.0.0.1:{port}/v1"
            raise RuntimeError("boom")
    assert not server.running
    assert not _alive(pid)
    with pytest.raises(OSError):  # nothing listens any more
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert server.log_path.read_text().startswith("$ ")
    assert srv.running_servers() == []


def test_atexit_stops_a_server_left_running(tmp_path):
    """A notebook kernel that exits without stopping its server does not leave it behind."""
    import cookbook as cb

    code = (
        "import cookbook.runtime.server as srv, sys\n"
        f"s = srv.start({str(cb.kit.tiny.build())!r}, log_dir={str(tmp_path)!r}, threads=1)\n"
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
        "import cookbook.runtime.server as srv, sys, time\n"
        f"s = srv.start({str(cb.kit.tiny.build())!r}, log_dir={str(tmp_path)!r}, threads=1)\n"
        "print('PID', s.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    line = ""
    while not line.startswith("PID "):  # start() may print its progress while it waits
        line = parent.stdout.readline()
        assert line, "the parent exited before its server was up"
    pid = int(line.split()[1])
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
    assert srv.main(["--dry-run", "--port", "8765", "--backend", "transformers"]) == 0
    out = capsys.readouterr().out
    assert "backend: transformers (chosen with --backend)" in out
    assert re.search(r"serve --host 127\.0\.0\.1 --port 8765 \S+qwen3-vl-tiny-instruct", out)
    assert "export COOKBOOK_BASE_URL=http://127.0.0.1:8765/v1" in out


# ----------------------------------------------------------------------------- the literals in 04


def _fenced(language: str, starts: str) -> list[str]:
    cells = json.loads(open(os.path.join(ROOT, "notebooks", "04_vllm_serving.ipynb"), encoding="utf-8").read())["cells"]
    md = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return [b for b in re.findall(rf"```{language}\n(.*?)\n```", md, flags=re.S) if b.startswith(starts)]


def test_the_vllm_serve_literal_in_04_is_what_the_plan_prints_for_one_l4():
    (literal,) = _fenced("bash", "vllm serve")
    assert literal == sv.vllm_plan(machine("L4", 24, (8, 9)), "Qwen/Qwen3-VL-8B-Instruct-FP8").shell()


def test_the_llm_literal_in_04_is_what_the_plan_prints_for_one_l4():
    (literal,) = _fenced("python", "LLM(")
    plan = sv.vllm_plan(machine("L4", 24, (8, 9)), "Qwen/Qwen3-VL-8B-Instruct-FP8", images=1, videos=2)
    assert literal == plan.llm_call()
    assert "limit_mm_per_prompt={'image': 1, 'video': 2}" in literal  # the prompt's one image and two videos


# ----------------------------------------------------------------------------- vLLM's CPU build (#22)


def test_the_cpu_build_is_chosen_when_its_environment_exists():
    assert sv.choose_backend(cb.Hardware("cpu", vllm_env="/x/.venv-vllm")) == (
        "vllm", "vLLM's CPU build in /x/.venv-vllm (make vllm); no CUDA GPU")
    assert sv.choose_backend(cb.Hardware("mps", vllm_env="/x/.venv-vllm"))[0] == "transformers"
    assert "make vllm" in sv.choose_backend(cb.Hardware("cpu"))[1]


def test_the_cpu_plan_leaves_gpu_flags_out_and_says_why():
    plan = sv.cpu_plan("/m/qwen3-vl-tiny-thinking-x", reasoning=True, served_name="q")
    flags = _flags(plan)
    assert not {"--tensor-parallel-size", "--gpu-memory-utilization", "--async-scheduling"} & set(flags)
    assert flags["--reasoning-parser"] == "deepseek_r1" and flags["--tool-call-parser"] == "hermes"
    assert "--enforce-eager" in flags and flags["--dtype"] == "float32"
    assert dict(plan.env) == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    assert all(any(g in n for n in plan.notes) for g in ("--tensor-parallel-size", "--gpu-memory-utilization"))
    assert plan.shell().startswith("VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 vllm serve /m/qwen3-vl-tiny-thinking-x \\\n  --max-model-len 4096")
    kw = plan.llm_kwargs()
    assert "gpu_memory_utilization" not in kw and kw["enforce_eager"] is True and kw["dtype"] == "float32"
    assert sv.plan_for(cb.Hardware("cpu"), "/m/qwen3-vl-tiny-thinking-x").value("--reasoning-parser") == "deepseek_r1"
    assert sv.plan_for(cb.Hardware("cpu"), "/m/qwen3-vl-tiny-instruct-x").value("--reasoning-parser") is None


def test_the_vllm_command_runs_from_its_environment(tmp_path):
    exe = tmp_path / "bin" / "vllm"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    argv, env, served = srv._launch_spec("vllm", "/m/tiny", "127.0.0.1", 8001, sv.cpu_plan("/m/tiny"),
                                        vllm_env=str(tmp_path))
    assert argv[:3] == [str(exe), "serve", "/m/tiny"] and argv[-4:] == ["--host", "127.0.0.1", "--port", "8001"]
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and served == "/m/tiny"
