"""The toy world: a text-to-image model and an aesthetic predictor *trained* here, on the synthetic shapes.

``trained-clip`` (``weights.forge_scorers``) already knows the captioned shapes world ("a red circle on a
white background": 6 colours x 3 shapes x 2 backgrounds, jittered size and position). The toy world
adds what the ``toy`` profile needs for quality claims that can be measured:

- ``toy-sd``: a Stable Diffusion 1.x pipeline dir (``StableDiffusionPipeline.save_pretrained``:
  UNet2DConditionModel, AutoencoderKL, CLIPTextModel + CLIPTokenizer, DDIM scheduler) that draws the
  world's captions at 32x32. Its text encoder and tokenizer are trained-clip's (transformers copy),
  frozen; a small AutoencoderKL (latent 4 x 16 x 16) is trained first, then a small UNet learns
  v-prediction (zero-terminal-SNR schedule) on cached latents, with caption dropout for classifier-free
  guidance and min-SNR loss weighting; the saved UNet is an exponential moving average of its weights.
  The caption reaches the UNet through the time embedding (``addition_embed_type="text"``:
  attention-pooled text hidden states, FiLM in every ResNet block), a standard ``UNet2DConditionModel``
  option that ``StableDiffusionPipeline`` runs as it is. ``TOY_HELD_OUT`` combos are never shown to
  the UNet, so a test can check that the model composes colour and shape rather than recalling captions.
- ``toy-aesthetic``: the LAION aesthetic-predictor MLP (``weights.architectures.AestheticMLP``) over
  trained-clip's image embeddings, regressed on a documented synthetic rating (``toy_rating``):
  well-centred, high-contrast shapes are "beautiful".

Both are seeded and single-process (2 threads). ``toy-sd`` trains in ~2 min 15 s on 2 idle cores (VAE
~18 s, UNet ~115 s; 260 CPU-s); the manifest records each stage's wall seconds and the training's CPU
seconds (all threads): on a shared, loaded box wall grows with the load. ``toy-aesthetic`` trains in
~30 s (mostly embedding its 2,160 renders).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from weights.forge_scorers import (
    BACKGROUNDS,
    SHAPE_COLOURS,
    TRANSFORMERS_SUBDIR,
    all_shape_captions,
    draw_shape,
    render_shape,
    shape_caption,
)

if TYPE_CHECKING:
    from PIL import Image

# Combos the UNet never sees: every colour once, every shape twice, every background three times.
TOY_HELD_OUT: tuple[tuple[str, str, str], ...] = (
    ("red", "square", "black"),
    ("green", "triangle", "white"),
    ("blue", "circle", "black"),
    ("yellow", "square", "white"),
    ("purple", "triangle", "black"),
    ("orange", "circle", "white"),
)

TOY_SD: dict[str, Any] = {
    "image_size": 32,
    "vae": {
        "block_out_channels": [16, 32],
        "layers_per_block": 1,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 2,
        "up_block_types": ["UpDecoderBlock2D"] * 2,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 32,
        "mid_block_add_attention": False,
    },
    "unet": {
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        # the caption conditions every ResNet block through the time embedding (FiLM: scale and shift):
        # the text hidden states are attention-pooled (addition_embed_type "text", as DeepFloyd IF and
        # unCLIP do) and added to the timestep embedding. A toy caption is global (one colour, one shape,
        # one background), and this is ~3x cheaper per step than transformer blocks at 8x8 and in the mid
        # block, so the 3-minute budget buys ~3x more steps.
        "down_block_types": ["DownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "UpBlock2D"],
        "mid_block_type": "UNetMidBlock2D",
        "addition_embed_type": "text",
        "addition_embed_type_num_heads": 4,
        "resnet_time_scale_shift": "scale_shift",
        "norm_num_groups": 32,
    },
    # SD's schedule rescaled to zero terminal SNR, v-prediction, trailing timesteps (Lin et al. 2024,
    # "Common Diffusion Noise Schedules and Sample Steps are Flawed"): with SD's own schedule the last
    # training step still shows the image's mean colour, which sampling from pure noise never has, and
    # a toy model then gets colours and backgrounds wrong. DDIM at inference (the profile runs 20 steps).
    "scheduler": {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "num_train_timesteps": 1000,
        "rescale_betas_zero_snr": True,
        "prediction_type": "v_prediction",
        "timestep_spacing": "trailing",
        "steps_offset": 1,  # unused by trailing spacing; diffusers warns without it
    },
    "training": {
        "threads": 2,
        "pool_per_caption": 24,
        "render_size": 64,
        # the world's shapes span 0.4-0.7 of the image anywhere inside a 5% margin (render_shape)
        "extent_range": [0.4, 0.7],
        "centre_jitter": 0.5,
        "vae_steps": 300,
        "vae_batch": 16,
        "vae_learning_rate": 3e-3,
        "vae_latent_penalty": 1e-4,
        "unet_steps": 2000,
        "unet_batch": 16,
        "unet_learning_rate": 2e-3,
        "unet_warmup_steps": 50,
        "caption_dropout": 0.1,
        "min_snr_gamma": 5.0,
        "ema_decay": 0.995,
    },
}

TOY_AESTHETIC: dict[str, Any] = {
    "pool_per_caption": 60,
    "steps": 600,
    "learning_rate": 1e-3,
    "batch": 128,
}


def toy_training_combos() -> list[tuple[str, str, str]]:
    """The combos the toy UNet is trained on (every combo but ``TOY_HELD_OUT``)."""
    return [combo for combo in all_shape_captions() if combo not in TOY_HELD_OUT]


def render_toy_shape(
    colour: str,
    shape: str,
    background: str,
    rng: random.Random,
    size: int,
    extent_range: tuple[float, float],
    centre_jitter: float,
) -> Image.Image:
    """A world image with the shape's size in ``extent_range`` (fraction of the image) and its centre
    within ``centre_jitter`` (fraction of the image) of the image centre; colour jitter as the world's."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    image = Image.new("RGB", (size, size), BACKGROUNDS[background])
    draw = ImageDraw.Draw(image)
    extent = rng.uniform(*extent_range) * size
    # the centre stays inside the world's 5% margin
    slack = max(min(centre_jitter * size, 0.45 * size - extent / 2), 0.0)
    left = size / 2 + rng.uniform(-slack, slack) - extent / 2
    top = size / 2 + rng.uniform(-slack, slack) - extent / 2
    draw_shape(draw, shape, colour, (left, top, extent), rng)
    return image


def _render_pool(
    combos: list[tuple[str, str, str]], size: int, training: dict[str, Any], seed: int
) -> tuple[Any, list[int]]:
    """Rendered images as a [-1, 1] tensor [N, 3, size, size] and their combo index."""
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    rng = random.Random(seed)
    arrays, labels = [], []
    render_size, extent_range = training["render_size"], tuple(training["extent_range"])
    for label, combo in enumerate(combos):
        for _ in range(training["pool_per_caption"]):
            image = render_toy_shape(
                *combo, rng, render_size, cast(tuple[float, float], extent_range), training["centre_jitter"]
            ).resize((size, size), Image.Resampling.BOX)
            arrays.append(np.asarray(image, dtype=np.float32))
            labels.append(label)
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1.0
    return pixels.contiguous(), labels


def _cosine_schedule(optimizer: Any, steps: int, warmup: int) -> Any:
    import torch  # noqa: PLC0415

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))
        ),
    )


def _train_vae(vae: Any, pixels: Any, training: dict[str, Any], seed: int) -> list[float]:
    """Reconstruction (MSE) of a deterministic autoencoder; returns the losses."""
    import torch  # noqa: PLC0415

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=training["vae_learning_rate"], weight_decay=0.0)
    steps = training["vae_steps"]
    schedule = _cosine_schedule(optimizer, steps, 20)
    vae.train()
    losses = []
    for _ in range(steps):
        batch = pixels[torch.randint(0, len(pixels), (training["vae_batch"],), generator=generator)]
        # a deterministic autoencoder (the posterior mean): sampling noise only slows a toy VAE down;
        # the small penalty on the mean keeps the latents near the origin, as SD's KL term does
        latents = vae.encode(batch).latent_dist.mean
        reconstruction = vae.decode(latents).sample
        loss = torch.nn.functional.mse_loss(reconstruction, batch)
        loss = loss + training["vae_latent_penalty"] * latents.pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    vae.eval()
    return losses


def _make_encoder_deterministic(vae: Any) -> None:
    """Posterior std ~3e-7: img2img's ``latent_dist.sample()`` then returns the mean it was trained on."""
    import torch  # noqa: PLC0415

    channels = vae.config.latent_channels
    with torch.no_grad():
        vae.quant_conv.weight[channels:] = 0.0
        vae.quant_conv.bias[channels:] = -30.0  # log-variance; diffusers clamps it to [-30, 20]


def _train_unet(
    unet: Any,
    latents: Any,
    labels: list[int],
    caption_states: Any,
    empty_state: Any,
    scheduler: Any,
    training: dict[str, Any],
    seed: int,
) -> list[float]:
    """v-prediction on cached latents; captions dropped to the empty prompt for CFG."""
    import torch  # noqa: PLC0415

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=training["unet_learning_rate"], weight_decay=0.01)
    steps = training["unet_steps"]
    schedule = _cosine_schedule(optimizer, steps, training["unet_warmup_steps"])
    label_tensor = torch.tensor(labels)
    alphas_cumprod = scheduler.alphas_cumprod
    # an exponential moving average of the weights is what gets saved: a short run's last weights are noisy
    ema = [p.detach().clone() for p in unet.parameters()]
    unet.train()
    losses = []
    for step in range(steps):
        index = torch.randint(0, len(latents), (training["unet_batch"],), generator=generator)
        clean = latents[index]
        states = caption_states[label_tensor[index]]
        dropped = torch.rand(len(index), generator=generator) < training["caption_dropout"]
        states = torch.where(dropped[:, None, None], empty_state.expand_as(states), states)
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, len(alphas_cumprod), (len(index),), generator=generator)
        alpha = alphas_cumprod[timesteps].sqrt()[:, None, None, None]
        sigma = (1 - alphas_cumprod[timesteps]).sqrt()[:, None, None, None]
        noisy = alpha * clean + sigma * noise
        prediction = unet(noisy, timesteps, encoder_hidden_states=states).sample
        # v-prediction: well defined at zero terminal SNR, where epsilon says nothing about the image
        # min-SNR-gamma weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
        # Strategy"), v-prediction form: min(SNR, gamma) / (SNR + 1). The near-pure-noise steps (SNR ~ 0)
        # and the nearly clean ones (SNR > gamma) count less, the middle, where a caption's colour and shape
        # are decided, more: measured on the held-out combos (24 images, CFG 4), colour 0.67 -> 0.83 and
        # shape 0.83 -> 1.0 at the same 2000 steps.
        snr = (alpha / sigma.clamp(min=1e-4)) ** 2
        weight = snr.clamp(max=training["min_snr_gamma"]) / (snr + 1)
        loss = (weight * (prediction - (alpha * noise - sigma * clean)) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        decay = min(training["ema_decay"], (1 + step) / (10 + step))
        with torch.no_grad():
            for average, parameter in zip(ema, unet.parameters(), strict=True):
                average.lerp_(parameter, 1 - decay)
    with torch.no_grad():
        for average, parameter in zip(ema, unet.parameters(), strict=True):
            parameter.copy_(average)
    unet.eval()
    return losses


def _load_text_encoder(clip_dir: Path) -> tuple[Any, Any]:
    """trained-clip's text tower as a ``CLIPTextModel`` and its ``CLIPTokenizer`` (transformers copy)."""
    from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer  # noqa: PLC0415

    source = clip_dir / TRANSFORMERS_SUBDIR
    clip: Any = CLIPModel.from_pretrained(str(source))
    text_encoder = CLIPTextModel(clip.config.text_config)
    text_encoder.load_state_dict(clip.text_model.state_dict())
    tokenizer = CLIPTokenizer.from_pretrained(str(source))
    return text_encoder.eval(), tokenizer


def _encode_prompts(text_encoder: Any, tokenizer: Any, prompts: list[str]) -> Any:
    """Per-token hidden states exactly as StableDiffusionPipeline.encode_prompt computes them."""
    import torch  # noqa: PLC0415

    tokens = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        return text_encoder(tokens.input_ids)[0]


def train_toy_sd(out_dir: Path, seed: int, clip_dir: Path, config: dict[str, Any] = TOY_SD) -> dict[str, Any]:
    """Train the toy pipeline into ``out_dir``; returns manifest fields (parameters, seconds, losses)."""
    import torch  # noqa: PLC0415
    from diffusers import (  # noqa: PLC0415
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    training = config["training"]
    threads_before = torch.get_num_threads()
    torch.set_num_threads(training["threads"])
    mkldnn_before = torch.backends.mkldnn.enabled
    # oneDNN kernels: several times faster for training convs (the generator turns them off for inference)
    torch.backends.mkldnn.enabled = True  # type: ignore[assignment]
    try:
        started, started_cpu = time.perf_counter(), time.process_time()
        # 1. data: rendered images of the training combos, their captions' hidden states
        combos = toy_training_combos()
        pixels, labels = _render_pool(combos, config["image_size"], training, seed)
        text_encoder, tokenizer = _load_text_encoder(clip_dir)
        caption_states = _encode_prompts(text_encoder, tokenizer, [shape_caption(*c) for c in combos])
        empty_state = _encode_prompts(text_encoder, tokenizer, [""])
        # 2. the VAE, then every image's latent (posterior mean), scaled to unit variance
        torch.manual_seed(seed + 1)
        vae: Any = AutoencoderKL(**config["vae"])  # diffusers stubs lose encode() through the mixins
        vae_losses = _train_vae(vae, pixels, training, seed + 1)
        with torch.no_grad():
            means = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in pixels.split(256)])
        _make_encoder_deterministic(vae)
        scaling_factor = float(1.0 / means.std())
        vae.register_to_config(scaling_factor=scaling_factor)
        vae_seconds = time.perf_counter() - started
        # 3. the UNet on the cached latents
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**config["unet"], cross_attention_dim=text_encoder.config.hidden_size)
        noise_scheduler = DDPMScheduler(
            **{k: v for k, v in config["scheduler"].items() if k not in ("set_alpha_to_one", "steps_offset")}
        )
        unet_losses = _train_unet(
            unet,
            means * scaling_factor,
            labels,
            caption_states,
            empty_state,
            noise_scheduler,
            training,
            seed + 2,
        )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    finally:
        torch.set_num_threads(threads_before)
        torch.backends.mkldnn.enabled = mkldnn_before  # type: ignore[assignment]
    # 4. the pipeline, in the SD 1.x layout
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=DDIMScheduler(**config["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    cast(Any, pipeline).save_pretrained(str(out_dir), safe_serialization=True)
    modules: list[Any] = [unet, vae, text_encoder]
    return {
        "format": "diffusers",
        "pipeline": "StableDiffusionPipeline",
        "parameters": sum(p.numel() for module in modules for p in module.parameters()),
        "weights": "trained on synthetic captioned shapes (text encoder: trained-clip, frozen)",
        "image_size": config["image_size"],
        "training_combos": len(combos),
        "held_out_combos": [shape_caption(*combo) for combo in TOY_HELD_OUT],
        "vae_final_loss": round(sum(vae_losses[-20:]) / 20, 5),
        "unet_final_loss": round(sum(unet_losses[-50:]) / 50, 5),
        "vae_seconds": round(vae_seconds, 1),
        "training_seconds": round(seconds, 1),
        # user + system time of all threads: on idle cores, wall ~ this / threads (wall grows with load)
        "training_cpu_seconds": round(cpu_seconds, 1),
        "threads": training["threads"],
    }


def forge_toy_sd(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """The toy world's text-to-image pipeline (SD 1.x layout), trained here on the synthetic shapes."""
    from weights.forge import ensure_forged  # noqa: PLC0415

    return train_toy_sd(out_dir, seed, ensure_forged("trained-clip", model_dir))


# ---- toy-aesthetic ---------------------------------------------------------------------------------


def _luminance(rgb: tuple[int, int, int]) -> float:
    red, green, blue = rgb
    return 0.299 * red + 0.587 * green + 0.114 * blue


def toy_rating(colour: str, background: str, centre: tuple[float, float], size: int) -> float:
    """The toy world's aesthetic rating, 1-10: half centring, half contrast.

    centring = 1 - (distance of the shape's centre from the image centre) / (half the diagonal);
    contrast = |luminance(shape colour) - luminance(background)| / 255.
    rating = 1 + 9 * (centring + contrast) / 2.
    """
    half = size / 2
    distance = math.hypot(centre[0] - half, centre[1] - half)
    centring = 1.0 - distance / math.hypot(half, half)
    contrast = abs(_luminance(SHAPE_COLOURS[colour]) - _luminance(BACKGROUNDS[background])) / 255.0
    return 1.0 + 9.0 * (centring + contrast) / 2.0


def _render_rated(
    colour: str, shape: str, background: str, rng: random.Random, size: int
) -> tuple[Image.Image, float]:
    """One image of the world and its rating (the shape's centre is read back from the pixels' box)."""
    import numpy as np  # noqa: PLC0415

    image = render_shape(colour, shape, background, rng, size=size)
    pixels = np.asarray(image, dtype=np.float32)
    mask = np.abs(pixels - np.array(BACKGROUNDS[background], dtype=np.float32)).sum(-1) > 60
    rows, cols = np.nonzero(mask)
    centre = (
        ((cols.min() + cols.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2) if len(rows) else (0.0, 0.0)
    )
    return image, toy_rating(colour, background, centre, size)


def forge_toy_aesthetic(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """The aesthetic MLP over trained-clip's image embeddings, fit to ``toy_rating`` (MSE)."""
    import open_clip  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from weights.architectures import AestheticMLP  # noqa: PLC0415
    from weights.forge import ensure_forged  # noqa: PLC0415

    clip_dir = ensure_forged("trained-clip", model_dir)
    config = json.loads((clip_dir / "open_clip_config.json").read_text())
    embed_dim = int(config["model_cfg"]["embed_dim"])
    # 1. the CLIP image tower, exactly as the aesthetic scorer loads it
    clip, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + str(clip_dir))
    clip.eval()
    # 2. rated renders, embedded (normalised, as the scorer feeds the MLP); the last tenth is held out
    rng = random.Random(seed)
    images, ratings = [], []
    for combo in all_shape_captions():
        for _ in range(TOY_AESTHETIC["pool_per_caption"]):
            image, rating = _render_rated(combo[0], combo[1], combo[2], rng, 64)
            images.append(preprocess(image))
            ratings.append(rating)
    order = list(range(len(images)))
    rng.shuffle(order)
    with torch.no_grad():
        embeds = torch.cat(
            [
                clip.encode_image(torch.stack([images[i] for i in chunk]), normalize=True)
                for chunk in _chunks(order, 256)
            ]
        )
    targets = torch.tensor([ratings[i] for i in order])
    split = len(order) * 9 // 10
    # 3. fit the MLP (dropout on, as the published predictor was trained)
    torch.manual_seed(seed)
    mlp = AestheticMLP(embed_dim)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=TOY_AESTHETIC["learning_rate"])
    mlp.train()
    for _ in range(TOY_AESTHETIC["steps"]):
        index = torch.randint(0, split, (TOY_AESTHETIC["batch"],), generator=generator)
        loss = torch.nn.functional.mse_loss(mlp(embeds[index]).squeeze(-1), targets[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    mlp.eval()
    with torch.no_grad():
        predicted = mlp(embeds[split:]).squeeze(-1)
    held_out = targets[split:]
    r2 = 1.0 - float(((predicted - held_out) ** 2).sum() / ((held_out - held_out.mean()) ** 2).sum())
    torch.save(mlp.state_dict(), out_dir / "aesthetic_mlp.pth")
    return {
        "kind": "aesthetic-mlp",
        "input_size": embed_dim,
        "clip": "trained-clip",
        "weights": "trained on toy_rating (centring + contrast) of synthetic shapes",
        "held_out_r2": round(r2, 3),
        "images": len(order),
    }


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
