"""Class embeddings from class names with a CLIP text encoder (transformers), as VPD computes them.

Each class name (underscores read as spaces) fills the 80 CLIP ImageNet prompt templates; the text encoder's pooled
output (final-LayerNorm EOS token, no projection) is averaged over templates. Official checkpoints ship their own
embeddings, which re-encoding does not reproduce bit for bit, so converters keep the shipped ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

# The 80 prompt templates of CLIP's ImageNet zero-shot evaluation.
CLIP_IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)  # fmt: skip


@torch.inference_mode()
def encode_class_names(
    class_names: Sequence[str],
    text_encoder: Any,
    tokenizer: Any,
    templates: Sequence[str] = CLIP_IMAGENET_TEMPLATES,
    max_length: int | None = None,
) -> torch.Tensor:
    """CLIP class embeddings ``[len(class_names), hidden_size]`` (float32, on CPU).

    Args:
        class_names: e.g. NYU scene names; ``_`` is read as a space ("living_room" -> "living room").
        text_encoder: a transformers ``CLIPTextModel``.
        tokenizer: its ``CLIPTokenizer``.
        templates: prompt templates with one ``{}``.
        max_length: token length (default: the tokenizer's, 77 for CLIP); prompts are padded and truncated to it.
    """
    if not class_names:
        raise ValueError("class_names is empty")
    length = max_length or int(getattr(tokenizer, "model_max_length", 77))
    length = min(length, int(text_encoder.config.max_position_embeddings))
    device = next(text_encoder.parameters()).device
    rows = []
    for name in class_names:
        prompts = [template.format(name.replace("_", " ")) for template in templates]
        tokens = tokenizer(prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        pooled = text_encoder(input_ids=tokens.input_ids.to(device)).pooler_output
        rows.append(pooled.float().mean(dim=0).cpu())
    return torch.stack(rows)


def random_class_embeddings(num_classes: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Seeded N(0, 1) rows: distinct class tokens when no CLIP text encoder is at hand (tiny models, the demo).

    Real CLIP ViT-L/14 class embeddings have a norm of about 28 per row, which N(0, 1) rows of width 768 match.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_classes, dim, generator=generator)


class ExpressionEncoder:
    """Referring expressions -> CLIP ``last_hidden_state`` ``[B, L, hidden]``, as VPD's referring model reads them.

    Each sentence is tokenised with CLIP's tokenizer, padded and truncated to ``length`` tokens (40 for RefCOCO and
    RefCOCO+, 77 for RefCOCOg; padding tokens included, no attention mask, as the official code), and encoded by the
    frozen text encoder. Encodings are cached per unique sentence (a dataset repeats its sentences every epoch).

    Args:
        text_encoder: a transformers ``CLIPTextModel`` (kept frozen, in eval mode).
        tokenizer: its ``CLIPTokenizer``.
        length: tokens per sentence.
        cache_size: sentences kept (least recently used dropped first); 0 disables the cache.
    """

    def __init__(self, text_encoder: Any, tokenizer: Any, length: int = 40, cache_size: int = 100_000) -> None:
        limit = int(text_encoder.config.max_position_embeddings)
        if not 1 <= length <= limit:
            raise ValueError(f"length: expected 1 to {limit} tokens (the text encoder's positions), got {length}")
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.length = length
        self.cache_size = cache_size
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def hidden_size(self) -> int:
        return int(self.text_encoder.config.hidden_size)

    def clear_cache(self) -> None:
        """Forgets the cached encodings."""
        self._cache.clear()

    @torch.no_grad()  # not inference_mode: the encodings feed a trained model's autograd graph
    def __call__(self, sentences: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
        """``[len(sentences), length, hidden]`` float32 on ``device`` (default: the encoder's)."""
        if isinstance(sentences, str):
            raise ValueError("sentences: expected a list of strings, got one string")
        if not sentences or not all(isinstance(s, str) and s.strip() for s in sentences):
            raise ValueError("sentences: expected non-empty strings")
        missing = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        if missing:
            encoder_device = next(self.text_encoder.parameters()).device
            tokens = self.tokenizer(
                missing, padding="max_length", max_length=self.length, truncation=True, return_tensors="pt"
            )
            hidden = self.text_encoder(input_ids=tokens.input_ids.to(encoder_device)).last_hidden_state.float().cpu()
            if self.cache_size:
                for sentence, row in zip(missing, hidden):
                    self._cache[sentence] = row
                while len(self._cache) > self.cache_size:
                    self._cache.pop(next(iter(self._cache)))
            fresh = dict(zip(missing, hidden))
        else:
            fresh = {}
        rows = [fresh[s] if s in fresh else self._cache[s] for s in sentences]
        for s in sentences:  # most recently used last
            if s in self._cache:
                self._cache[s] = self._cache.pop(s)
        out = torch.stack(rows)
        return out.to(device) if device is not None else out


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one word: merge the adjacent pair of lowest rank until none has a rank."""
    while len(symbols) > 1:
        pairs = [(ranks.get(pair, len(ranks)), i) for i, pair in enumerate(itertools.pairwise(symbols))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        symbols = [*symbols[:i], symbols[i] + symbols[i + 1], *symbols[i + 2 :]]
    return symbols


def tiny_clip(words: Sequence[str] = (), hidden_size: int = 32, seed: int = 0) -> tuple[Any, Any]:
    """A tiny random CLIP text encoder and a working CLIP tokenizer, built locally (tests, the CPU demo).

    The tokenizer is CLIP's byte-level BPE over the 256 byte symbols, plus merges that make each of ``words``
    (lower case, no spaces) one token, so a sentence of known words takes one token a word; other text still
    tokenises, a byte a token. The encoder (2 layers, 4 heads, 77 positions) has seeded random weights.

    Returns:
        ``(CLIPTextModel, CLIPTokenizer)``.
    """
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab.update({c + "</w>": len(alphabet) + i for i, c in enumerate(alphabet)})
    merges: list[tuple[str, str]] = []
    for word in dict.fromkeys(w.lower() for w in words):
        if not word or any(c not in vocab for c in word) or word != "".join(word.split()):
            raise ValueError(f"tiny_clip: {word!r} is not one lower-case word of byte symbols")
        # BPE first applies the merges made for earlier words (lowest rank first), so join the pieces they leave
        # (left to right) with new merges of higher rank: the word then ends as one token.
        pieces = _apply_merges([*word[:-1], word[-1] + "</w>"], {m: r for r, m in enumerate(merges)})
        current = pieces[0]
        for piece in pieces[1:]:
            merges.append((current, piece))
            current += piece
            vocab.setdefault(current, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)  # type: ignore[arg-type]  # tokenizers takes pairs
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPTextModel(config).eval()
    return model, tokenizer
