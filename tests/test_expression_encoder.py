"""Expression encoding: CLIP last_hidden_state padded / truncated to the recipe's length, cached per sentence."""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_clip
from vpd.modeling.text_encoder import ExpressionEncoder


def test_length_padding_cache_and_equality_with_clip():
    encoder, tokenizer = make_tiny_clip()
    expressions = ExpressionEncoder(encoder, tokenizer, length=40, cache_size=2)
    out = expressions(["the red chair on the left", "a lamp", "the red chair on the left"])
    assert out.shape == (3, 40, 32) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], out[2])
    tokens = tokenizer(["a lamp"], padding="max_length", max_length=40, truncation=True, return_tensors="pt")
    with torch.no_grad():
        direct = encoder(input_ids=tokens.input_ids).last_hidden_state
    torch.testing.assert_close(out[1], direct[0])
    long = expressions(["x" * 200])  # truncated, not an error
    assert long.shape == (1, 40, 32)
    assert len(expressions._cache) == 2  # bounded
    with pytest.raises(ValueError, match="one string"):
        expressions("a lamp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="length"):
        ExpressionEncoder(encoder, tokenizer, length=78)
