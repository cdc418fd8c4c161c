"""Shared fixtures of the unit tests (the network check for every part is in ../conftest.py)."""
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_lm():
    """``(tokenizer, make)``: SmolLM2's tokenizer and a factory of a 2-layer, 16-wide Llama with
    fixed initial weights (seconds to train on a CPU)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from helpers.models import pretrained

    tok = AutoTokenizer.from_pretrained(pretrained.converted_lm_dir())
    tok.padding_side = "left"

    def make():
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                          max_position_embeddings=256, tie_word_embeddings=True,
                          pad_token_id=tok.pad_token_id)
        return LlamaForCausalLM(cfg).eval()
    return tok, make


@pytest.fixture(scope="session")
def served_app():
    """What `make app` runs — Voilà serving app/shop.ipynb on 127.0.0.1 — on a free port, up
    for the whole session (each page load gets its own kernel). Yields the page's URL."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    root = Path(__file__).resolve().parents[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).with_name("voila")), "--no-browser",
                             "--Voila.ip=127.0.0.1", f"--port={port}", "app/shop.ipynb"],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url + "api", timeout=2)
            break
        except urllib.error.HTTPError:
            break                                  # the server answers: it is up
        except OSError:
            time.sleep(0.5)
    if proc.poll() is not None:
        pytest.fail(f"voila exited with code {proc.returncode} before serving the app")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
