"""VQAScore (Lin et al. 2024): the probability that a VQA model answers "Yes" to
``Does this figure show "{prompt}"? Please answer yes or no.``

The answer is read from the model's next-token logits after the question (never from generated text):
``raw`` = P(yes) = softmax([logit("Yes"), logit("No")])[0], ``normalized`` = 100 · P(yes).
``extra["p_yes_full_vocab"]`` keeps the softmax over the whole vocabulary at the "Yes" token (the
paper's literal definition; it equals ``raw`` when the model puts all its mass on yes/no).

Loading (``ModelSpec``): ``source`` is a transformers image-text-to-text checkpoint of the LLaVA family
(``AutoModelForImageTextToText`` + ``AutoProcessor``; production ``llava-hf/llava-1.5-7b-hf``); the
prompt goes through the processor's chat template. Options: ``question_template`` (with ``{prompt}``),
``yes_token`` / ``no_token`` (default ``"Yes"`` / ``"No"``; the first token the model would emit
for each reply is used, see ``answer_token_id``); see ``VqaOptions`` in ``scorers.catalogue``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scorers.base import BatchScorer, ScorerError, resolve_device, resolve_dtype, shared_model
from scorers.catalogue import VqaOptions

if TYPE_CHECKING:
    import torch
    from PIL import Image

QUESTION_TEMPLATE = VqaOptions().question_template


@dataclass(frozen=True)
class VqaBundle:
    """A loaded VQA model and its processor."""

    model: Any
    processor: Any
    device: str
    dtype: Any


def load_vqa(source: str, device: str, dtype: str) -> VqaBundle:
    """Load (once per process) an image-text-to-text model and its processor."""
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)

    def _load() -> VqaBundle:
        from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: PLC0415

        try:
            processor = AutoProcessor.from_pretrained(source)
            model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch_dtype)
        except Exception as exc:
            raise ScorerError(f"cannot load VQA model {source!r}: {exc}") from exc
        model = model.to(device)  # type: ignore[arg-type]  # transformers types .to() oddly
        return VqaBundle(model.eval(), processor, device, torch_dtype)

    return shared_model(("vqa", source, device, str(torch_dtype)), _load)


def vqa_prompt(processor: Any, question: str) -> str:
    """The model's own chat format for one image + one question, ending where the answer starts."""
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(conversation, add_generation_prompt=True)


def answer_token_id(tokenizer: Any, prompt_text: str, answer: str) -> int:
    """The token id the model emits first when its reply to ``prompt_text`` is ``answer``.

    Found by tokenising the prompt with and without the reply (a space after ``ASSISTANT:``, none
    after a newline), so SentencePiece ("▁Yes") and byte-level ("ĠYes" / "Yes") tokenizers agree.
    """
    separator = "" if prompt_text[-1:].isspace() else " "
    base = tokenizer.encode(prompt_text, add_special_tokens=False)
    full = tokenizer.encode(prompt_text + separator + answer, add_special_tokens=False)
    start = next((i for i, (a, b) in enumerate(zip(base, full, strict=False)) if a != b), len(base))
    if start >= len(full):
        raise ScorerError(f"the tokenizer encodes the answer {answer!r} to no tokens")
    return int(full[start])


def p_yes_from_logits(next_token_logits: torch.Tensor, yes_id: int, no_id: int) -> torch.Tensor:
    """P(yes) per row: the softmax over the two answer logits."""
    import torch  # noqa: PLC0415

    pair = next_token_logits[:, [yes_id, no_id]].float()
    return torch.softmax(pair, dim=-1)[:, 0]


class VqaScorer(BatchScorer):
    """VQAScore: one forward pass over all images with the same question."""

    name = "vqa"

    def __init__(
        self,
        bundle: VqaBundle,
        *,
        question_template: str = QUESTION_TEMPLATE,
        yes_token: str = "Yes",
        no_token: str = "No",
    ) -> None:
        self.bundle = bundle
        self.question_template = question_template
        tokenizer = bundle.processor.tokenizer
        # the reply starts after the same generation prompt whatever the user prompt is
        reply_start = vqa_prompt(bundle.processor, question_template.format(prompt="a photo"))
        self.yes_id = answer_token_id(tokenizer, reply_start, yes_token)
        self.no_id = answer_token_id(tokenizer, reply_start, no_token)
        if self.yes_id == self.no_id:
            raise ScorerError(f"yes/no answers share their first token ({self.yes_id})")

    @classmethod
    def from_spec(cls, source: str, options: VqaOptions, *, device: str, dtype: str) -> VqaScorer:
        return cls(
            load_vqa(source, device, dtype),
            question_template=options.question_template,
            yes_token=options.yes_token,
            no_token=options.no_token,
        )

    def build_inputs(self, prompt: str, images: list[Image.Image]) -> dict[str, Any]:
        """Processor inputs for the batch: the same question once per image."""
        text = vqa_prompt(self.bundle.processor, self.question_template.format(prompt=prompt))
        inputs = self.bundle.processor(
            images=images, text=[text] * len(images), return_tensors="pt", padding=True
        )
        return {
            key: value.to(self.bundle.device, self.bundle.dtype)
            if key == "pixel_values"
            else value.to(self.bundle.device)
            for key, value in inputs.items()
        }

    def next_token_logits(self, prompt: str, images: list[Image.Image]) -> torch.Tensor:
        """[N, vocab] logits of the first answer token, one forward pass."""
        inputs = self.build_inputs(prompt, images)
        logits = self.bundle.model(**inputs).logits
        # identical texts per row, so no padding: the last position is where the answer starts
        return logits[:, -1, :].float()

    def _score_batch(
        self, prompt: str, images: list[Image.Image]
    ) -> tuple[list[float], list[float], dict[str, Any]]:
        import torch  # noqa: PLC0415

        # 1. answer logits for every image in one pass
        logits = self.next_token_logits(prompt, images)
        # 2. P(yes) from the yes/no logits; the full-vocabulary variant as an extra
        p_yes = p_yes_from_logits(logits, self.yes_id, self.no_id).tolist()
        p_yes_full = torch.softmax(logits, dim=-1)[:, self.yes_id].tolist()
        return p_yes, [100.0 * p for p in p_yes], {"p_yes_full_vocab": p_yes_full}
