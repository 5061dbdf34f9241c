"""The standard FID Inception-v3 feature extractor, as pytorch-fid defines it, usable offline.

FID numbers are only comparable across papers when they come from one network: the
TensorFlow Inception graph of 2015-12-05 that the original FID code (TTUR) uses. pytorch-fid
ported it to PyTorch as ``pt_inception-2015-12-05-6726825d.pth``; this module rebuilds the
same network so that file loads with ``strict=True``, and feeds it exactly what pytorch-fid
feeds it. What differs from torchvision's Inception-v3 (same module names, so the same
state-dict keys; only the forward passes change):

- 1008 output classes (index 0 "background", 1..1000 the ImageNet classes, 1001..1007
  unused), no auxiliary classifier, ``transform_input=False``;
- the 3x3 average pools inside Mixed_5b/5c/5d (InceptionA), Mixed_6b..6e (InceptionC) and
  Mixed_7b (InceptionE) exclude the zero padding from the average (``count_include_pad=False``),
  as TensorFlow does;
- the pool branch of Mixed_7c (the last InceptionE) uses a 3x3 *max* pool, not an average.

Preprocessing (pytorch-fid's ``InceptionV3(resize_input=True, normalize_input=True)``):
images in [0, 1] -> bilinear resize to 299x299 (``align_corners=False``, no antialiasing)
-> ``2x - 1``. Our images come in [-1, 1], so they are mapped to [0, 1] first; grayscale is
repeated to 3 channels, as loading it as RGB would. Values are not clamped: pass images in
range. Features are the 2048-d pool3 output (after the global average pool).

Class probabilities (for the Inception Score) follow the original IS code (Salimans et al.,
``improved-gan/inception_score``), which torch-fidelity's ``logits_unbiased`` reproduces:
``softmax(pool3 @ W)`` over all 1008 outputs with the fc *weight* only, no bias. Restricting
to classes 1..1000 and renormalising is a different convention and gives different numbers.

Weights, for :func:`get_inception_extractor`: ``--fid-weights PATH`` (``.pth`` state dict, or a
``.safetensors`` file holding the same tensors), else torch.hub's cache (``$TORCH_HOME/hub/checkpoints/``),
else a download into that cache (sha256-checked, atomic). Nothing is unpickled beyond
``torch.load(weights_only=True)``. ``genvision evaluate --features inception`` without --fid-weights
uses genvision.pretrained's ``inception-fid`` instead (genvision.workflows.extractors), which never
downloads and also takes the pinned package's TorchScript port of the same graph.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import BinaryIO
from urllib import request

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..errors import CheckpointError, ConfigError
from .features import FeatureExtractor, Features, match_channels

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
# torch.hub's check_hash convention: the hex digits after the last "-" of the file name are
# the first digits of the file's sha256.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
FID_INPUT_SIZE = 299
FID_NUM_CLASSES = 1008
PREPROCESS_TAG = "01-bilinear299-ac0-2x1"  # [0,1] -> bilinear 299 (align_corners=False) -> 2x-1
TIMEOUT_S = 30.0  # per network read


# --- the network -----------------------------------------------------------------------------


def _tf_avg_pool3x3(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's 'SAME' 3x3 average pool: padded zeros are not counted in the average."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


@functools.cache
def _fid_blocks() -> SimpleNamespace:
    """pytorch-fid's Inception blocks, subclasses of torchvision's. Built on first use: importing
    torchvision.models pulls in torch._dynamo and costs ~2.5 s, which every ``genvision train`` process
    (and each torchrun rank) would otherwise pay at start-up without ever computing an FID."""
    from torchvision.models import inception as tv_inception

    class FIDInceptionA(tv_inception.InceptionA):
        """InceptionA (Mixed_5b/5c/5d) with TensorFlow's average pool."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b1 = self.branch1x1(x)
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            bp = self.branch_pool(_tf_avg_pool3x3(x))
            return torch.cat([b1, b5, b3, bp], dim=1)  # (B, 64 + 64 + 96 + pool_features, H, W)


    class FIDInceptionC(tv_inception.InceptionC):
        """InceptionC (Mixed_6b..6e) with TensorFlow's average pool."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b1 = self.branch1x1(x)
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            b7d = self.branch7x7dbl_1(x)
            for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
                b7d = conv(b7d)
            bp = self.branch_pool(_tf_avg_pool3x3(x))
            return torch.cat([b1, b7, b7d, bp], dim=1)  # (B, 4 * 192, H, W)


    class _FIDInceptionE(tv_inception.InceptionE):
        """InceptionE with the pool branch's pooling left to subclasses."""

        def pool(self, x: torch.Tensor) -> torch.Tensor:
            raise NotImplementedError

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b1 = self.branch1x1(x)
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)  # (B, 768, H, W)
            b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], dim=1)  # (B, 768, H, W)
            bp = self.branch_pool(self.pool(x))
            return torch.cat([b1, b3, b3d, bp], dim=1)  # (B, 320 + 768 + 768 + 192 = 2048, H, W)


    class FIDInceptionE_1(_FIDInceptionE):  # pytorch-fid's class names, kept
        """Mixed_7b: InceptionE with TensorFlow's average pool."""

        def pool(self, x: torch.Tensor) -> torch.Tensor:
            return _tf_avg_pool3x3(x)


    class FIDInceptionE_2(_FIDInceptionE):
        """Mixed_7c: the TF graph max-pools in this block's pool branch (an oddity of that graph)."""

        def pool(self, x: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)

    return SimpleNamespace(tv=tv_inception, FIDInceptionA=FIDInceptionA, FIDInceptionC=FIDInceptionC,
                           FIDInceptionE_1=FIDInceptionE_1, FIDInceptionE_2=FIDInceptionE_2)


_BLOCK_NAMES = ("FIDInceptionA", "FIDInceptionC", "FIDInceptionE_1", "FIDInceptionE_2")


def __getattr__(name: str):  # PEP 562: the block classes stay importable by name, built on first access
    if name in _BLOCK_NAMES:
        return getattr(_fid_blocks(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fid_inception_v3() -> nn.Module:
    """The FID Inception-v3 architecture with untrained weights (pytorch-fid's ``fid_inception_v3``
    without the download): a torchvision Inception3. Its ``state_dict`` keys are torchvision's Inception3
    keys minus AuxLogits."""
    blocks = _fid_blocks()
    tv = blocks.tv
    net = tv.Inception3(
        num_classes=FID_NUM_CLASSES, aux_logits=False, transform_input=False, init_weights=False,
        inception_blocks=[tv.BasicConv2d, blocks.FIDInceptionA, tv.InceptionB, blocks.FIDInceptionC,
                          tv.InceptionD, blocks.FIDInceptionE_1, tv.InceptionAux])
    net.Mixed_7c = blocks.FIDInceptionE_2(2048)
    return net


def pool3_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, 299, 299) in [-1, 1] -> (B, 2048) pool3 features (Inception3's forward up to the fc)."""
    for layer in (net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1,  # (B, 64, 73, 73)
                  net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.maxpool2,  # (B, 192, 35, 35)
                  net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,  # (B, 768, 17, 17)
                  net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a,  # (B, 1280, 8, 8)
                  net.Mixed_7b, net.Mixed_7c, net.avgpool):  # (B, 2048, 1, 1)
        x = layer(x)
    return torch.flatten(x, 1)  # (B, 2048)


def fid_preprocess(images: torch.Tensor) -> torch.Tensor:
    """(B, 1 or 3, H, W) float in [-1, 1] -> (B, 3, 299, 299), exactly as pytorch-fid prepares input."""
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"expected float images in [-1, 1], got dtype {images.dtype}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"expected 1- or 3-channel images, got {images.shape[1]} channels")
    x = (images.float() + 1) / 2  # [-1, 1] -> [0, 1], pytorch-fid's input range
    x = F.interpolate(x, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
    x = 2 * x - 1  # pytorch-fid's normalize_input
    return match_channels(x, 3)  # grayscale repeated to RGB (bilinear resize commutes with it)


# --- loading weights -------------------------------------------------------------------------


def sha256sum(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "reason", None) or exc).split())[:300]


def _refusal_detail(exc: BaseException) -> str:
    """The useful part of torch's weights-only refusal (its message suggests weights_only=False)."""
    match = re.search(r"unsupported (?:global|operand)[^\n]*", str(exc), flags=re.IGNORECASE)
    return f" ({' '.join(match.group(0).split())[:200].rstrip('.')})" if match else ""


def _read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own types for corrupt headers
            raise CheckpointError(f"{path}: not a readable safetensors file "
                                  f"({type(exc).__name__}: {_one_line(exc)})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"{path}: refused to load: not a plain tensor state dict; torch.load("
                                  f"weights_only=True) rejected it{_refusal_detail(exc)} and genvision never "
                                  "unpickles arbitrary objects") from None
        except (RuntimeError, OSError, EOFError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: cannot read weights ({type(exc).__name__}: {_one_line(exc)})") from None
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (pytorch-fid's {FID_WEIGHTS_NAME}), "
                              f"got {type(state).__name__}")
    return state


def load_fid_inception(path: str | Path) -> nn.Module:
    """The FID Inception-v3 with the weights of ``path`` (a ``.pth`` state dict or ``.safetensors``),
    in eval mode with gradients off. Every key must match (a strict load) or CheckpointError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    state = _read_state_dict(path)
    net = fid_inception_v3()
    try:
        result = net.load_state_dict(state, strict=False)  # strict's check, done below with a short message
    except RuntimeError as exc:  # shape mismatches raise even when not strict
        sizes = "; ".join(line.strip() for line in str(exc).splitlines() if "size mismatch" in line)
        raise CheckpointError(f"{path}: not pytorch-fid's Inception weights "
                              f"({sizes[:300] or _one_line(exc)})") from None
    if result.missing_keys or result.unexpected_keys:
        def count(keys, what):
            return f"{len(keys)} {what} key{'' if len(keys) == 1 else 's'}" + (f" (e.g. {keys[0]})" if keys else "")
        raise CheckpointError(f"{path}: not pytorch-fid's Inception weights: "
                              f"{count(result.missing_keys, 'missing')}, {count(result.unexpected_keys, 'unexpected')}")
    return net.eval().requires_grad_(False)


# --- finding (or fetching) the weights file --------------------------------------------------


def fid_weights_cache_path() -> Path:
    """Where torch.hub (and so pytorch-fid) keeps the file: ``<hub dir>/checkpoints/<name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME


def _not_found(cache: Path, why: str) -> ConfigError:
    return ConfigError(f"Inception FID weights not found (looked for --fid-weights, {cache}; {why}): "
                       f"pass --fid-weights PATH to pytorch-fid's {FID_WEIGHTS_NAME}, "
                       "or use the domain extractor with --features domain")


def _fetch(url: str, out: BinaryIO, timeout: float = TIMEOUT_S) -> None:
    """Stream ``url`` into ``out``. Network errors propagate (URLError, timeouts: OSError)."""
    with request.urlopen(url, timeout=timeout) as response:
        for block in iter(lambda: response.read(1 << 20), b""):
            out.write(block)


def download_fid_weights(dest: Path, url: str = FID_WEIGHTS_URL) -> Path:
    """Fetch the weights to ``dest`` atomically: temp file, sha256-prefix check, rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out)
        actual = sha256sum(tmp)
        if not actual.startswith(FID_WEIGHTS_SHA256_PREFIX):
            raise CheckpointError(f"{url}: downloaded file has sha256 {actual[:16]}..., expected it to start "
                                  f"with {FID_WEIGHTS_SHA256_PREFIX}; not saved (corrupt or not the canonical file)")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def find_fid_weights(explicit: str | Path | None = None, *, download: bool = True) -> Path:
    """The weights file: ``explicit`` (must exist) > torch.hub's cache > a download into that cache.

    Offline, or with ``download=False``, a missing file is one ConfigError line saying what to do.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_dir():
            raise ConfigError(f"--fid-weights {path}: is a directory, expected the file {FID_WEIGHTS_NAME}")
        if not path.is_file():
            raise ConfigError(f"--fid-weights {path}: no such file")
        return path
    cache = fid_weights_cache_path()
    if cache.is_file():
        return cache
    if not download:
        raise _not_found(cache, "download is off")
    try:
        return download_fid_weights(cache)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts: OSError
        raise _not_found(cache, f"offline? {type(exc).__name__}: {_one_line(exc)}") from None


# --- the extractor ---------------------------------------------------------------------------


class InceptionExtractor(FeatureExtractor):
    """pool3 features (B, 2048) and, when the network has its fc layer, the 1008-way IS probabilities
    of the FID Inception-v3.

    Either ``weights``, a pytorch-fid weights file loaded here, or ``network``, an FID Inception built
    elsewhere (genvision.pretrained's ``inception-fid``: this layer may not import that one) with
    ``weights_sha256`` naming its tensors (the reference-statistics cache key) and ``note`` saying where
    they came from. A network whose fc is not a Linear (the TorchScript port has none) gives no
    probabilities, so no Inception Score rather than one from random weights."""

    name = "inception-v3-fid"
    dim = 2048
    num_classes = FID_NUM_CLASSES
    inception_comparable = True

    def __init__(self, weights: str | Path | None = None, *, network: nn.Module | None = None,
                 weights_sha256: str | None = None, note: str | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 50):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if (weights is None) == (network is None) or (network is not None and not weights_sha256):
            raise ValueError("pass either a weights file or a network with its weights_sha256")
        self.device = torch.device(device)
        self.batch_size = batch_size  # images per forward pass: bounds memory at 299x299
        self.note = note
        if network is not None:
            self.weights_path, self.model, self.weights_sha256 = None, network.to(self.device), weights_sha256
        else:
            self.weights_path = Path(weights).expanduser()
            self.model = load_fid_inception(self.weights_path).to(self.device)
            self.weights_sha256 = sha256sum(self.weights_path)
        # A .safetensors conversion of the canonical file is fine but cannot be recognised by hash.
        self.canonical_weights = self.weights_sha256.startswith(FID_WEIGHTS_SHA256_PREFIX)
        self.fc_weight = self.model.fc.weight if isinstance(self.model.fc, torch.nn.Linear) else None  # (1008, 2048)
        self.num_classes = FID_NUM_CLASSES if self.fc_weight is not None else 0
        self._key = f"{self.name}-{self.weights_sha256[:16]}-{PREPROCESS_TAG}"

    def key(self) -> str:
        return self._key

    def describe(self) -> str:
        text = super().describe()
        if self.note is not None:
            text += f"; {self.note}"
        elif not self.canonical_weights:
            text += (f"; weights {self.weights_path.name} (sha256 {self.weights_sha256[:8]}) are not the "
                     f"canonical {FID_WEIGHTS_NAME}: comparable only if they hold the same tensors")
        return text

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> Features:
        feats, probs = [], []
        for start in range(0, images.shape[0], self.batch_size):
            x = fid_preprocess(images[start:start + self.batch_size].to(self.device))  # (b, 3, 299, 299)
            f = pool3_features(self.model, x)  # (b, 2048)
            feats.append(f.float().cpu())
            if self.fc_weight is not None:
                probs.append((f @ self.fc_weight.T).float().softmax(dim=1).cpu())  # (b, 1008), no bias: original IS
        if not feats:
            no_probs = torch.empty(0, self.num_classes) if self.fc_weight is not None else None
            return Features(torch.empty(0, self.dim), no_probs)
        return Features(torch.cat(feats), torch.cat(probs) if probs else None)


def get_inception_extractor(fid_weights: str | Path | None = None, *, download: bool = True,
                            device: str | torch.device = "cpu") -> InceptionExtractor:
    """The FID Inception extractor, its weights found by :func:`find_fid_weights`."""
    return InceptionExtractor(find_fid_weights(fid_weights, download=download), device=device)
