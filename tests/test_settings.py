import pytest

import cookbook as cb
from cookbook.runtime.settings import REAL_BUDGET, SMOKE_BUDGET


def test_tiny_is_a_smoke_run(monkeypatch):
    monkeypatch.setenv("COOKBOOK_MODEL", "tiny")
    s = cb.settings()
    assert (s.model, s.smoke, s.thinking, s.device) == ("tiny-instruct", True, False, "cpu")
    assert cb.budget() == SMOKE_BUDGET
    assert "SMOKE RUN" in str(s) and "nonsense" in str(s)


def test_tiny_thinking(monkeypatch):
    monkeypatch.setenv("COOKBOOK_MODEL", "tiny-thinking")
    assert cb.settings().thinking is True


def test_hub_id_is_passed_through(monkeypatch):
    monkeypatch.setenv("COOKBOOK_MODEL", "Qwen/Qwen3-VL-8B-Thinking")
    s = cb.settings()
    assert s.model == "Qwen/Qwen3-VL-8B-Thinking" and s.thinking and not s.smoke
    assert cb.budget() == REAL_BUDGET
    assert "SMOKE RUN" not in str(s)


def test_auto_uses_the_recommendation(monkeypatch):
    monkeypatch.setenv("COOKBOOK_MODEL", "auto")
    assert cb.settings().model == cb.recommend_model().checkpoint.id


def test_hub_and_offline_variables(monkeypatch):
    monkeypatch.setenv("COOKBOOK_MODEL", "tiny")
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    s = cb.settings()
    assert s.endpoint == "https://hf-mirror.example" and s.offline
    monkeypatch.setenv("COOKBOOK_HUB", "modelscope")
    assert cb.settings().hub == "modelscope"
    monkeypatch.setenv("COOKBOOK_HUB", "elsewhere")
    with pytest.raises(ValueError, match="huggingface"):
        cb.settings()


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, cookbook; print(sorted(m for m in ('torch', 'transformers', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_workshop_server_fields(monkeypatch):
    monkeypatch.setenv("COOKBOOK_MODEL", "tiny")
    for name in ("COOKBOOK_BASE_URL", "COOKBOOK_API_KEY", "COOKBOOK_SERVED_MODEL"):
        monkeypatch.delenv(name, raising=False)
    s = cb.settings()
    assert (s.base_url, s.api_key, s.served_model) == (None, "EMPTY", None) and "server" not in str(s)
    monkeypatch.setenv("COOKBOOK_BASE_URL", "http://10.0.0.5:8000/v1")
    monkeypatch.setenv("COOKBOOK_API_KEY", "sk-room")
    monkeypatch.setenv("COOKBOOK_SERVED_MODEL", "qwen3-vl")
    s = cb.settings()
    assert (s.base_url, s.api_key, s.served_model) == ("http://10.0.0.5:8000/v1", "sk-room", "qwen3-vl")
    assert "10.0.0.5" in str(s) and "sk-room" not in str(s)  # the key is never printed


def test_cache_locations(monkeypatch, tmp_path):
    from cookbook.kit.environment import cookbook_cache_dir, hf_cache_dir

    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert hf_cache_dir() == tmp_path / "cache"
    monkeypatch.setenv("COOKBOOK_CACHE", str(tmp_path / "cb"))
    assert cookbook_cache_dir() == tmp_path / "cb"
