import os

import pytest
import torch

# Tests never reach the network: hub lookups resolve from the local cache a test populates, or fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_depth_model():
    from vpd.modeling.depth import build_vpd_depth, tiny_vpd_depth_config

    return build_vpd_depth(tiny_vpd_depth_config(), seed=0).eval()


@pytest.fixture(scope="session")
def tiny_depth_dir(tmp_path_factory):
    """A tiny depth model saved with ``save_pretrained`` once per session (tests only read it)."""
    from vpd.modeling.depth import VPDDepth, tiny_vpd_depth_config

    torch.manual_seed(0)
    return VPDDepth(tiny_vpd_depth_config()).save_pretrained(tmp_path_factory.mktemp("tiny_depth") / "tiny")


def make_tiny_clip(hidden_size: int = 32):
    """A tiny CLIP text encoder and a working byte-level tokenizer (every byte is a token; no merges)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab.update({c + "</w>": len(alphabet) + i for i, c in enumerate(alphabet)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    return CLIPTextModel(config).eval(), tokenizer


@pytest.fixture
def tiny_clip():
    return make_tiny_clip()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps process-wide singletons; each test starts (and leaves) them fresh, as in a new process."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
