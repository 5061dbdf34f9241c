"""``folder:PATH`` streams: opening a folder reads headers only, a file damaged past its header is replaced
by the next readable one when its turn comes, random-resized crops, and batches that are the same with 0 or 2
DataLoader workers and after a resume (each item carries its own seed)."""

from __future__ import annotations

import io
import itertools
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from genvision.cli import main
from genvision.data import load_dataset
from genvision.data.folder import FolderImageDataset
from genvision.errors import DataError
from genvision.io import probe_image
from genvision.training.batches import batch_stream
from genvision.workflows.train import train


def _photo(seed: int, size=(40, 30)) -> Image.Image:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size[0], dtype=np.float32)[None, :, None]  # (1, W, 1): a gradient crops can see
    pixels = rng.integers(0, 60, (size[1], size[0], 3)).astype(np.float32) + ramp * [1.0, 0.5, 0.2] * 0.7
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            _photo(i + (10 if cls == "b" else 0)).save(root / cls / f"{i}.png")
    return root


def _truncated_png(path, seed: int) -> None:
    buffer = io.BytesIO()
    _photo(seed).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # the header survives, the pixels do not


def test_opening_a_folder_reads_headers_and_a_damaged_file_is_replaced_by_the_next_readable_one(photos):
    _truncated_png(photos / "a" / "2.png", seed=2)
    assert probe_image(photos / "a" / "2.png") == (40, 30)  # the header alone looks fine
    dataset = FolderImageDataset(photos, image_size=16)  # no warning: nothing was decoded
    assert len(dataset) == 12 and dataset.skipped == []
    with pytest.warns(UserWarning, match=r"2\.png.*using the next readable image instead"):
        image, label = dataset[2]
    replacement, replacement_label = dataset[3]
    assert torch.equal(image, replacement) and int(label) == int(replacement_label) == 0
    last, _ = dataset[11]
    assert last.shape == (3, 16, 16)


def test_files_only_a_header_check_can_refuse_are_skipped_when_the_folder_opens(photos):
    (photos / "b" / "notes.png").write_bytes(b"not an image at all")
    with pytest.warns(UserWarning, match="notes.png"):
        dataset = FolderImageDataset(photos)
    assert len(dataset) == 12 and [p.split("/")[-1] for p, _ in dataset.skipped] == ["notes.png"]


def test_random_resized_crops_are_squares_of_image_size_that_change_from_epoch_to_epoch(photos):
    dataset = load_dataset(f"folder:{photos}", image_size=16, train_augment=True, resized_crop=0.3)
    centre = load_dataset(f"folder:{photos}", image_size=16)
    first = torch.stack([dataset[0][0] for _ in range(2)])  # (2, 3, 16, 16): one photo, two draws
    assert first.shape == (2, 3, 16, 16) and first.min() >= -1 and first.max() <= 1
    assert not torch.equal(first[0], first[1])  # another draw, another crop
    assert not torch.equal(first[0], centre[0][0])
    untouched = load_dataset(f"folder:{photos}", image_size=16, resized_crop=0.3)  # not the training split
    assert torch.equal(untouched[0][0], centre[0][0])


@pytest.mark.parametrize("value, message", [
    ("0", r"data.resized_crop must be in \(0, 1\]"), ("1.5", r"data.resized_crop must be in \(0, 1\]"),
    ("0.5", "data.resized_crop applies to folder: datasets of photos, not to 'mnist-mini'")])
def test_resized_crop_that_cannot_apply_is_refused_in_one_line(value, message, capsys):
    assert main(["train", "gan", "--data", "mnist-mini", f"data.resized_crop={value}"]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err
    with pytest.raises(DataError, match="applies to folder: datasets"):
        load_dataset("mnist-mini", resized_crop=0.5)


def _batches(dataset, workers: int, start: int, count: int) -> list[torch.Tensor]:
    stream = batch_stream(dataset, 4, seed=7, start_step=start, workers=workers)
    return [images for images, _ in itertools.islice(stream, count)]


def test_augmented_batches_are_the_same_with_any_worker_count_and_after_a_resume(photos):
    dataset = load_dataset(f"folder:{photos}", image_size=16, train_augment=True, resized_crop=0.4, hflip=True)
    torch.manual_seed(0)
    plain = _batches(dataset, 0, 0, 5)  # 5 steps of 4 out of 12 items: crosses an epoch
    torch.manual_seed(123)  # the main RNG does not decide an item's crop
    workers = _batches(dataset, 2, 0, 5)
    resumed = _batches(dataset, 2, 3, 2)
    for a, b in zip(plain, workers, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(resumed[0], plain[3]) and torch.equal(resumed[1], plain[4])
    assert not torch.equal(plain[0], plain[3])  # epoch 2 draws other crops of the same images


def test_a_gan_on_a_streamed_folder_resumes_to_the_uninterrupted_weights(photos, tmp_path):
    common = [f"data.name=folder:{photos}", "data.image_size=32", "data.resized_crop=0.5", "data.hflip=true",
              "model.width=8", "train.batch_size=4", "train.log_every=1", "train.sample_every=0",
              "train.tensorboard=false", "train.precision=fp32", f"train.out_dir={tmp_path}"]
    whole = train("gan", overrides=[*common, "train.name=whole", "train.steps=4", "data.workers=0"], progress=False)
    train("gan", overrides=[*common, "train.name=cut", "train.steps=2", "data.workers=2"], progress=False)
    cut = train("gan", resume=tmp_path / "cut", overrides=["train.steps=4"], progress=False)
    a, b = (load_file(run.run_dir / "checkpoints" / "step_00000004" / "model.safetensors") for run in (whole, cut))
    for name, value in a.items():
        assert torch.equal(b[name], value), name
