"""Real CLIP BPE tokenizers built offline from the vocabulary that ships inside open_clip's wheel."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

# The OpenAI CLIP BPE: 48,894 merges after the header line; open_clip's SimpleTokenizer uses the same file.
_FULL_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable-unicode table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def clip_bpe_path() -> Path:
    """Path of ``bpe_simple_vocab_16e6.txt.gz`` inside the installed open_clip package."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed; its wheel carries the CLIP BPE vocabulary")
    return Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"


def clip_vocab_and_merges(num_merges: int | None = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The CLIP vocabulary and merges; ``num_merges`` keeps only the first merges (a valid smaller BPE)."""
    lines = gzip.decompress(clip_bpe_path().read_bytes()).decode("utf-8").split("\n")
    count = _FULL_MERGES if num_merges is None else min(num_merges, _FULL_MERGES)
    merges = [(left, right) for left, right in (line.split() for line in lines[1 : count + 1])]
    byte_symbols = list(_bytes_to_unicode().values())
    tokens = byte_symbols + [symbol + "</w>" for symbol in byte_symbols]
    tokens += [left + right for left, right in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges


def save_clip_tokenizer(out_dir: Path, num_merges: int | None = None, model_max_length: int = 77) -> int:
    """Write a transformers ``CLIPTokenizer`` dir; returns its vocabulary size."""
    from transformers import CLIPTokenizer  # noqa: PLC0415

    vocab, merges = clip_vocab_and_merges(num_merges)
    # The fast tokenizer wants (left, right) pairs at run time, whatever its annotation says.
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)  # type: ignore[arg-type]
    tokenizer.save_pretrained(str(out_dir))
    return len(vocab)
