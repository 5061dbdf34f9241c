"""Models that translate, recognise, find and compress: CycleGAN digits and paintings, ImageNet recognition with
Grad-CAM, search of an index with edited copies of its photos, and the learned codec
against JPEG at the same file size."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import torch
from PIL import Image, ImageEnhance

from .. import io as gio
from ..apps.classify.explain import explain, render
from ..apps.classify.photos import explain_photo, load_photo_classifier, photo_input, photo_probabilities
from ..apps.codec.bitstream import encode_file, weights_fingerprint
from ..apps.codec.jpeg import jpeg_within
from ..apps.retrieval.commands import contact_sheet
from ..apps.retrieval.store import Index
from ..apps.translate.pipeline import load_translator, translate_tensor
from ..atomic import write_bytes
from ..checkpoints import load_pretrained, load_with_card
from ..data import load_dataset
from ..metrics.image import psnr
from ..pretrained.efficientnet import imagenet_labels
from .panel import DemoContext, commands, figure, paragraph, table

PHOTOS = ("dog.jpg", "eagle.jpg", "horses.jpg", "amber.jpg")


def translation(ctx: DemoContext) -> str:
    model = load_translator("zoo:cyclegan-digits")
    test = load_dataset("mnist-mini", split="test")
    digits = torch.stack([test[i][0] for i in range(10)])  # (10, 1, 28, 28) in [-1, 1]
    ctx.save_grid(digits, "translate-input.png", nrow=10, source="mnist-mini test 0-9")
    translated = translate_tensor(model, (digits + 1) / 2, "a2b")  # (10, 1, 28, 28) in [0, 1]
    back = translate_tensor(model, translated, "b2a")
    grid = ctx.save_grid(torch.cat([digits, translated * 2 - 1, back * 2 - 1]), "translate-digits.png", nrow=10,
                         model="zoo:cyclegan-digits", rows=["MNIST", "a2b: 8x8-digit style", "b2a: back"])
    ctx.record("translation", shape=list(translated.shape))
    painted = _photo_to_painting(ctx)
    return (paragraph("Unpaired translation between two digit styles (MNIST and scikit-learn's blocky 8x8 "
                      "digits), learned without a single matched pair; the third row translates back. The command translates the "
                      "input strip in one pass (the network is fully convolutional).")
            + figure(grid, "MNIST | translated to the 8x8 style | translated back", 560, pixelated=True)
            + paragraph("The same method between photos and the eight paintings of style-images: it learned to "
                        "paint on 64 px crops of photos shrunk to 72 px, so the photo is shrunk to that scale first.")
            + figure(painted, "photo | a2b: painted | b2a: back to a photo", 480)
            + commands("genvision translate translate-input.png --model zoo:cyclegan-digits --direction a2b "
                       "-o translate-a2b.png",
                       "genvision translate translate-photo.png --model zoo:cyclegan-paintings --direction a2b "
                       "-o translate-photo-a2b.png"))


def _photo_to_painting(ctx: DemoContext) -> str:
    model = load_translator("zoo:cyclegan-paintings")
    photo = gio.load_image_tensor(ctx.out / ctx.copy_photo("horses.jpg"), channels=3)  # (3, H, W) in [0, 1]
    scale = 96 / min(photo.shape[1:])  # near the 72 px training scale, a little more detail
    small = torch.nn.functional.interpolate(photo[None], scale_factor=scale, mode="bilinear", antialias=True,
                                            align_corners=False).clamp(0, 1)  # (1, 3, h, w), shorter side 96
    ctx.save(small[0], "translate-photo.png", source="horses.jpg, shorter side 96 px")
    painted = translate_tensor(model, small, "a2b")  # (1, 3, h, w) in [0, 1]
    back = translate_tensor(model, painted, "b2a")
    ctx.record("translation-photo", shape=list(painted.shape))
    return ctx.save_grid(torch.cat([small, painted, back]) * 2 - 1, "translate-painted.png", nrow=3,
                         model="zoo:cyclegan-paintings", columns=["photo", "a2b: painted", "b2a: back"])


def recognition(ctx: DemoContext) -> str:
    net = load_photo_classifier("efficientnet-lite0")
    labels = imagenet_labels()
    rows, figures = [], []
    for name in PHOTOS[:2]:  # ImageNet has classes for these two; horses and people are not among its 1,000
        source = ctx.copy_photo(name)
        image = gio.load_image_tensor(ctx.out / source, channels=3)  # (3, H, W) in [0, 1]
        probabilities = photo_probabilities(net, photo_input(net, image)[None])[0]
        top = probabilities.topk(3)
        ctx.record("recognition", **{name: labels[int(top.indices[0])]})
        rows.append((name, ", ".join(f"{labels[int(i)]} {float(p):.0%}" for p, i in zip(top.values, top.indices))))
        cam = render(explain_photo(net, image))
        figures.append(figure(ctx.save(cam, f"explain-{name.replace('.jpg', '')}.png", model="efficientnet-lite0",
                                       source=source), f"Grad-CAM: {name}", 420))
    digit, label = load_dataset("mnist-mini", split="test")[3]  # (1, 28, 28) in [-1, 1]
    digit_figures = []
    ctx.save(digit, "digit.png", value_range=(-1, 1), label=int(label))
    for name in ("resnet-mnist", "vit-mnist"):
        explained = explain(load_pretrained(f"zoo:{name}"), digit)
        ctx.record("recognition", **{f"zoo:{name}": explained.label(explained.predicted)})
        digit_figures.append(figure(ctx.save(render(explained), f"explain-digit-{name}.png", model=f"zoo:{name}"),
                                    f"zoo:{name}: {explained.method} (true label {int(label)})", 300))
    ctx.record("recognition", digit_label=str(int(label)))
    return (paragraph("EfficientNet-Lite0 with its real ImageNet weights (genvision weights, from a pinned "
                      "package-index package): the top three classes, and where the network looked for the first.")
            + table(rows, ("photo", "top-3 ImageNet classes")) + "".join(figures)
            + paragraph("And digits, with the zoo's ResNet (Grad-CAM) and ViT (attention rollout):")
            + "".join(digit_figures)
            + commands("genvision classify dog.jpg --model efficientnet-lite0 --top-k 3",
                       "genvision explain dog.jpg --model efficientnet-lite0 -o explain-dog.png",
                       "genvision explain digit.png --model zoo:vit-mnist -o explain-digit-vit-mnist.png"))


def _variants(image: Image.Image) -> dict[str, Image.Image]:
    """Edited copies a near-duplicate search should still match to their original."""
    width, height = image.size
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=20)
    return {"crop": image.crop((width // 10, height // 10, width, height)),
            "darker": ImageEnhance.Brightness(image).enhance(0.6),
            "jpeg20": Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"),
            "flipped": image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)}


def retrieval(ctx: DemoContext) -> str:
    """An index of the bundled photos and paintings, searched with edited copies of three of them."""
    library, queries = ctx.out / "library", ctx.out / "queries"
    library.mkdir(exist_ok=True)
    queries.mkdir(exist_ok=True)
    for name in (*PHOTOS, "starry_night.jpg", "the_scream.jpg"):
        shutil.copyfile(ctx.photo(name), library / name)
    for name in PHOTOS[:3]:
        for kind, image in _variants(Image.open(ctx.photo(name)).convert("RGB")).items():
            image.save(queries / f"{name[:-4]}-{kind}.jpg", quality=92)
    files = sorted(queries.glob("*.jpg"))
    rows, sheets = [], []
    for embed in ("simclr:zoo:simclr-photos", "phash"):
        slug = embed.split(":")[-1]
        with Index.building(ctx.out / f"library-{slug}.gvindex", embed=embed, overwrite=True) as index:
            index.add(sorted(library.glob("*.jpg")))
        index = Index.open(ctx.out / f"library-{slug}.gvindex")
        try:
            hits = {path.name: index.search(path, k=3) for path in files}
        finally:
            index.close()
        correct = sum(Path(found[0].path).name == f"{name.split('-')[0]}.jpg" for name, found in hits.items())
        rows.append((embed, f"{correct}/{len(files)}"))
        ctx.record("retrieval", **{embed: correct, "queries": len(files)})
        if embed.startswith("simclr"):
            for query in ("dog-crop.jpg", "horses-flipped.jpg"):
                sheet = f"search-{query[:-4]}.png"
                contact_sheet(Image.open(queries / query), hits[query], ctx.out / sheet)
                sheets.append(figure(sheet, f"query {query}: the three nearest photos", 560))
    return (paragraph(f"An index of {len(PHOTOS) + 2} images searched with {len(files)} edited copies of three "
                      "of them (cropped, darker, JPEG quality 20, mirrored): how often the first hit is the "
                      "original, for the zoo's self-supervised embedding and for a perceptual hash.")
            + table(rows, ("embedding", "first hit is the original")) + "".join(sheets)
            + commands("genvision index build library -o library-simclr-photos.gvindex "
                       "--embed simclr:zoo:simclr-photos",
                       "genvision index search queries/dog-crop.jpg --index library-simclr-photos.gvindex -k 3 "
                       "--sheet search-dog-crop.png"))


def compression(ctx: DemoContext) -> str:
    model, card = load_with_card("zoo:codec-hyperprior", kind="codec")
    source = ctx.copy_photo("eagle.jpg")
    image = gio.load_image_tensor(ctx.out / source, channels=3)  # (3, H, W) in [0, 1]
    height, width = image.shape[-2:]
    with torch.no_grad():
        coded = model.compress(image[None])
        decoded = model.decompress(coded)[0]  # (3, H, W)
    data = encode_file(card["model"], weights_fingerprint(model), coded)
    write_bytes(ctx.out / "codec.gvc", data)
    jpeg, quality = jpeg_within(gio.tensor_to_pil(image, (0, 1)), len(data))
    write_bytes(ctx.out / "codec-jpeg.jpg", jpeg)
    jpeg_pixels = gio.load_image_tensor(ctx.out / "codec-jpeg.jpg", channels=3)
    learned = ctx.save(decoded, "codec-decoded.png", model="zoo:codec-hyperprior", bytes=len(data))
    rows = [("zoo:codec-hyperprior", len(data), 8 * len(data) / (height * width), psnr(decoded[None], image[None])),
            (f"JPEG quality {quality}", len(jpeg), 8 * len(jpeg) / (height * width),
             psnr(jpeg_pixels[None], image[None]))]
    ctx.record("compression", bytes=len(data), bpp=rows[0][2], psnr=rows[0][3], jpeg_bytes=len(jpeg),
               jpeg_psnr=rows[1][3])
    return (paragraph("The learned codec's whole file (header and checksum included) against the best JPEG no "
                      "larger; RGB PSNR against the photo. The shipped codec trained for 1,200 steps only: "
                      "docs/BENCHMARKS.md measures it 6 dB behind JPEG across Set5 and Set14.")
            + figure(learned, "learned codec", 320) + figure("codec-jpeg.jpg", f"JPEG q{quality}", 320)
            + table(rows, ("codec", "bytes", "bpp", "PSNR dB"))
            + commands(f"genvision compress {source} --model zoo:codec-hyperprior -o codec.gvc",
                       "genvision decompress codec.gvc --model zoo:codec-hyperprior -o codec-decoded.png"))
