"""Explanations of classifier decisions: attention rollout for ViTs, Grad-CAM for CNNs.

* **Attention rollout** (Abnar & Zuidema 2020): each block's attention, averaged over heads,
  is mixed with the identity for the residual connection and renormalised,
  ``A'_l = (A_l + I) / 2``; the product ``R = A'_L ... A'_1`` says how much each output token
  draws on each input patch. The map is the pooled token's row of R (the class token's row, or
  the mean of all rows for mean pooling) over the patch columns. The last block's raw
  attention per head is returned as well.
* **Grad-CAM** (Selvaraju et al. 2017): with feature maps ``A_k`` (B, K, h, w) of the last conv
  stage and the target logit ``y_c``, ``w_k = mean_ij d y_c / d A_k[i, j]`` and
  ``cam = ReLU(sum_k w_k A_k)``.

Every map is upsampled (bilinear) to the model's input size and scaled to [0, 1] per image.
:func:`render` draws the input and heat-map overlays side by side as one picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from ...errors import ConfigError
from ...io import tensor_to_pil
from ...training.objective import eval_mode
from .pipeline import prepare


@dataclass
class Explanation:
    method: str  # "attention-rollout" or "grad-cam"
    image: torch.Tensor  # (C, S, S) in [-1, 1]: what the model saw
    maps: dict[str, torch.Tensor]  # name -> (S, S) in [0, 1]; the first one is the main map
    predicted: int  # arg-max class
    probabilities: torch.Tensor  # (K,)
    target: int  # the class that was explained
    class_names: list[str] = field(default_factory=list)

    def label(self, k: int) -> str:
        return self.class_names[k] if k < len(self.class_names) else str(k)


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """(B, h, w) -> same, each map scaled to [0, 1] (a constant map becomes zeros)."""
    flat = maps.flatten(1)
    lo, hi = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(maps)


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W) bilinear, then scaled to [0, 1] per map."""
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    return _normalise(up)


# --- ViT: attention rollout -----------------------------------------------------------------


def attention_rollout(weights: list[torch.Tensor], *, residual: bool = True, head_fusion: str = "mean"
                      ) -> torch.Tensor:
    """Rollout matrix (B, T, T) from per-block weights [(B, heads, T, T), ...] (first block first)."""
    rollout = None
    for w in weights:
        a = w.float().mean(dim=1) if head_fusion == "mean" else w.float().amax(dim=1)  # (B, T, T)
        if residual:
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device)
            a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout  # later blocks act on earlier mixtures
    return rollout


def _pooled_row(matrix: torch.Tensor, has_cls: bool) -> torch.Tensor:
    """(B, T, T) -> (B, N) the pooled token's weights over the N patch tokens."""
    if has_cls:
        return matrix[:, 0, 1:]
    return matrix.mean(dim=1)


@torch.no_grad()
def vit_maps(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits (B, K) and maps {"rollout": (B, S, S), "head i": (B, S, S) ...} for images (B, C, S, S)."""
    with eval_mode(model):
        logits, weights = model.forward_with_attention(x)
    has_cls = model.config.pool == "cls"
    grid = model.config.grid
    size = tuple(x.shape[-2:])

    def as_map(rows: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, S, S)
        return _upsample(rearrange(rows, "b (h w) -> b h w", h=grid, w=grid), size)

    maps = {"rollout": as_map(_pooled_row(attention_rollout(weights), has_cls))}
    last = weights[-1].float()  # (B, heads, T, T)
    for h in range(last.shape[1]):
        maps[f"head {h + 1}"] = as_map(_pooled_row(last[:, h], has_cls))
    return logits, maps


# --- CNNs: Grad-CAM ---------------------------------------------------------------------------


def cam_layer(model: nn.Module) -> nn.Module:
    """The conv feature map Grad-CAM explains: ``model.cam_layer()`` if the model names one;
    for the compact CNN the last conv-BN-ReLU before the final pooling."""
    if hasattr(model, "cam_layer"):
        return model.cam_layer()
    if getattr(model, "registry_name", None) == "cnn":
        return model.stages[-1][1]  # Stage = [conv_bn_relu, conv_bn_relu, MaxPool2d]
    raise ConfigError(f"Grad-CAM does not know which layer of {type(model).__name__} to explain")


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | int | None = None,
             layer: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, K) and Grad-CAM maps (B, S, S) in [0, 1] for images (B, C, S, S).

    ``target``: class(es) to explain; None = each image's predicted class.
    """
    layer = layer if layer is not None else cam_layer(model)
    captured: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output):
        output.retain_grad()
        captured["maps"] = output

    handle = layer.register_forward_hook(hook)
    try:
        with eval_mode(model), torch.enable_grad():
            x = x.detach().requires_grad_(True)  # ensures a graph even if the weights are frozen
            logits = model(x).float()  # (B, K)
            if target is None:
                target = logits.argmax(dim=1)
            target = torch.as_tensor(target, device=logits.device).expand(logits.shape[0])
            logits.gather(1, target[:, None]).sum().backward()
    finally:
        handle.remove()
    maps, grads = captured["maps"], captured["maps"].grad  # (B, K, h, w) each
    weights = grads.float().mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = F.relu((weights * maps.detach().float()).sum(dim=1))  # (B, h, w)
    model.zero_grad(set_to_none=True)
    return logits.detach(), _upsample(cam, tuple(x.shape[-2:]))


# --- one entry point --------------------------------------------------------------------------


def explain(model: nn.Module, image: torch.Tensor, *, target: int | None = None) -> Explanation:
    """Explain one image (C, H, W) in [-1, 1] (resized / channel-converted to the model's input).

    ViTs (models with ``forward_with_attention``) get attention rollout and the last block's
    per-head maps; CNNs get Grad-CAM.
    """
    if image.ndim != 3:
        raise ConfigError(f"expected one image (C, H, W), got shape {tuple(image.shape)}")
    num_classes = model.config.num_classes
    if target is not None and not 0 <= target < num_classes:
        raise ConfigError(f"--class must be in 0..{num_classes - 1}, got {target}")
    x = prepare(model, image[None])  # (1, C, S, S)
    if hasattr(model, "forward_with_attention"):
        method = "attention-rollout"
        logits, maps = vit_maps(model, x)
    else:
        method = "grad-cam"
        logits, cam = grad_cam(model, x, target)
        maps = {"grad-cam": cam}
    probs = logits.float().softmax(dim=1)[0].cpu()
    predicted = int(probs.argmax())
    return Explanation(method=method, image=x[0].detach().cpu(), maps={k: v[0].cpu() for k, v in maps.items()},
                       predicted=predicted, probabilities=probs, target=predicted if target is None else target,
                       class_names=list(getattr(model.config, "class_names", ()) or []))


# --- drawing ----------------------------------------------------------------------------------

# A perceptually ordered dark-blue -> red -> yellow ramp (close to matplotlib's "inferno").
_RAMP = torch.tensor([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                      [250, 193, 39], [252, 255, 164]], dtype=torch.float32) / 255.0


def colormap(heat: torch.Tensor) -> torch.Tensor:
    """(H, W) in [0, 1] -> (3, H, W) RGB in [0, 1] along the ramp above."""
    pos = heat.clamp(0, 1) * (len(_RAMP) - 1)
    lo = pos.floor().long().clamp(max=len(_RAMP) - 2)
    frac = (pos - lo.float())[..., None]
    rgb = _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac  # (H, W, 3)
    return rgb.permute(2, 0, 1)


def overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.55) -> torch.Tensor:
    """Image (C, H, W) in [-1, 1] and heat (H, W) in [0, 1] -> RGB (3, H, W) in [0, 1]."""
    grey = ((image.float() + 1) / 2).clamp(0, 1)
    rgb = grey.expand(3, -1, -1) if grey.shape[0] == 1 else grey
    return (1 - alpha) * rgb + alpha * colormap(heat)


def render(explanation: Explanation, *, panel: int | None = None):
    """A PIL RGB image: the input, then one overlay per map, each captioned."""
    size = explanation.image.shape[-1]
    panel = panel or max(size, 4 * size if size <= 64 else size)
    image = explanation.image
    tiles = [("input", ((image.float() + 1) / 2).clamp(0, 1).expand(3, -1, -1) if image.shape[0] == 1
              else ((image.float() + 1) / 2).clamp(0, 1))]
    tiles += [(name, overlay(image, heat)) for name, heat in explanation.maps.items()]
    caption_h, pad = 14, 4
    font = ImageFont.load_default()
    p = explanation.probabilities
    title = (f"{explanation.method}: predicted {explanation.label(explanation.predicted)} "
             f"({float(p[explanation.predicted]):.1%}), explaining {explanation.label(explanation.target)}")
    width = max(len(tiles) * (panel + pad) + pad, int(font.getlength(title)) + 2 * pad)
    canvas = Image.new("RGB", (width, panel + caption_h + 2 * pad + caption_h), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 1), title, fill="black", font=font)
    for i, (name, rgb) in enumerate(tiles):
        tile = tensor_to_pil(rgb, value_range=(0.0, 1.0)).resize((panel, panel), Image.NEAREST)
        x = pad + i * (panel + pad)
        canvas.paste(tile, (x, caption_h + pad))
        draw.text((x, caption_h + pad + panel + 1), name, fill="black", font=font)
    return canvas


__all__ = ["Explanation", "attention_rollout", "cam_layer", "colormap", "explain", "grad_cam", "overlay",
           "render", "vit_maps"]
