"""genvision.data: IDX/CIFAR readers, downloads (never over the network), folder data, mnist-mini."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from genvision.config import DataConfig
from genvision.data import (
    DatasetInfo,
    FolderImageDataset,
    TensorImageDataset,
    cifar,
    dataset_from_config,
    default_data_root,
    download,
    list_datasets,
    load_dataset,
)
from genvision.data.idx import read_idx, write_idx
from genvision.errors import DataError

SHARED_DATA = Path(__file__).resolve().parent.parent / ".." / "shared" / "data"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Every test: urlopen fails (and is recorded), and the default data root is a temp dir."""
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("GENVISION_DATA", str(tmp_path / "default-root"))
    return calls


@pytest.fixture
def shared_mnist() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("shared data not available")
    return SHARED_DATA


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def write_mnist_fixture(directory: Path, n: int = 12, *, gz: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix in ("train", "t10k"):
        write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return images, labels


# --- IDX -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    if dtype == np.uint8:
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    out = read_idx(path)
    assert out.dtype == array.dtype and out.shape == (2, 3, 5) and out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_idx_hand_written_header(tmp_path):
    # magic 0x00000801: ubyte, 1 dim; then the big-endian size 3
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    np.testing.assert_array_equal(read_idx(path), [7, 8, 9])
    # int32 big-endian values
    path.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + (258).to_bytes(4, "big") + (-1).to_bytes(4, "big", signed=True))
    np.testing.assert_array_equal(read_idx(path), [258, -1])


def test_idx_write_is_deterministic(tmp_path):
    a = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", a)
    write_idx(tmp_path / "b.gz", a)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.mark.parametrize("content, needle", [
    (b"", "bad magic"),
    (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "bad magic"),
    (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 5]), "unknown IDX dtype code 0x42"),
    (bytes([0, 0, 8, 0]), "0 dimensions"),
    (bytes([0, 0, 8, 3, 0, 0]), "truncated IDX header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "truncated"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]), "trailing bytes"),
    # mtime=0 keeps the bytes, hence the test ids, the same in every pytest-xdist worker
    (gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4]), mtime=0)[:-6], "corrupt gzip"),
], ids=["empty", "wrong-magic", "unknown-dtype", "zero-dims", "truncated-header", "truncated-data",
        "trailing-bytes", "corrupt-gzip"])
def test_idx_malformed(tmp_path, content, needle):
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=needle) as exc:
        read_idx(path)
    assert str(path) in one_line(exc)


def test_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nope.gz")


def test_real_mnist_files(shared_mnist):
    images = read_idx(shared_mnist / "mnist" / "train-images-idx3-ubyte.gz")
    labels = read_idx(shared_mnist / "mnist" / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == MNIST_TRAIN_COUNTS and sum(MNIST_TRAIN_COUNTS) == 60000
    test = load_dataset("mnist", split="test", root=str(shared_mnist), download=False)
    assert len(test) == 10000 and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == MNIST_TEST_COUNTS
    train = load_dataset("mnist", root=str(shared_mnist), download=False, image_size=32, limit=1000)
    assert len(train) == 1000 and train.images.shape == (1000, 1, 32, 32)
    np.testing.assert_array_equal(train.labels.numpy(), labels[:1000])


# --- canonical files: checksums, downloads, offline errors -----------------------------------

def test_verify_md5(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello")
    download.verify_md5(path, hashlib.md5(b"hello").hexdigest())
    with pytest.raises(DataError, match="checksum mismatch") as exc:
        download.verify_md5(path, "0" * 32)
    assert str(path) in one_line(exc)


def test_local_canonical_file_with_wrong_md5(tmp_path):
    write_mnist_fixture(tmp_path / "mnist")  # canonical .gz names, but not the canonical bytes
    with pytest.raises(DataError, match="checksum mismatch") as exc:
        load_dataset("mnist", root=str(tmp_path), download=False)
    assert "train-images-idx3-ubyte.gz" in one_line(exc)


def test_uncompressed_files_in_torchvision_layout(tmp_path):
    images, labels = write_mnist_fixture(tmp_path / "MNIST" / "raw", gz=False)
    ds = load_dataset("mnist", root=str(tmp_path), download=False)
    assert len(ds) == 12 and ds.num_classes == 10 and ds.class_names[3] == "3"
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), images)
    np.testing.assert_array_equal(ds.labels.numpy(), labels)
    fashion = tmp_path / "FashionMNIST" / "raw"
    write_mnist_fixture(fashion, gz=False, seed=1)
    assert load_dataset("fashion-mnist", root=str(tmp_path), download=False).class_names[9] == "Ankle boot"


def test_offline_error_names_files_and_directory(tmp_path, no_network):
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", root=str(tmp_path))
    msg = one_line(exc)
    assert msg.startswith("mnist: missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz in ")
    assert str(tmp_path / "mnist") in msg and "offline?" in msg and "--data-root" in msg
    assert download.SOURCES["mnist"].base_url in msg
    assert no_network == [download.SOURCES["mnist"].base_url + "train-images-idx3-ubyte.gz"]
    assert not list((tmp_path / "mnist").iterdir())  # no partial files left behind


def test_default_root_used_for_offline_message(tmp_path):
    with pytest.raises(DataError, match="fashion-mnist: missing t10k-images") as exc:
        load_dataset("fashion-mnist", split="test")
    assert str(tmp_path / "default-root" / "fashion-mnist") in one_line(exc)


def test_download_false_makes_no_attempt(tmp_path, no_network):
    with pytest.raises(DataError, match="download is off") as exc:
        load_dataset("cifar10", root=str(tmp_path), download=False)
    assert "cifar-10-python.tar.gz" in one_line(exc)
    assert no_network == []


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_verifies_then_renames(tmp_path, monkeypatch):
    payload = b"pretend archive"
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: FakeResponse(payload))
    dest = tmp_path / "dl" / "file.gz"
    with pytest.raises(DataError, match="expected 0000"):
        download.download_file("https://example.invalid/file.gz", dest, md5="0" * 32)
    assert not dest.parent.exists() or not list(dest.parent.iterdir())  # temp file removed
    download.download_file("https://example.invalid/file.gz", dest, md5=hashlib.md5(payload).hexdigest())
    assert dest.read_bytes() == payload and list(dest.parent.iterdir()) == [dest]


def test_default_data_root(monkeypatch, tmp_path):
    assert default_data_root("/x/y") == Path("/x/y")
    assert default_data_root() == tmp_path / "default-root"
    monkeypatch.delenv("GENVISION_DATA")
    assert default_data_root() == Path.home() / ".cache" / "genvision" / "data"


# --- CIFAR-10 --------------------------------------------------------------------------------

def write_cifar_batches(directory: Path, n: int = 3) -> dict[str, tuple[np.ndarray, list[int]]]:
    """The real format: protocol-2 pickled dicts with bytes keys and a uint8 (N, 3072) array."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate(cifar.SPLIT_FILES["train"] + cifar.SPLIT_FILES["test"]):
        rng = np.random.default_rng(i)
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batch = {b"batch_label": f"batch {i}".encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)]}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = (data, labels)
    return written


def test_cifar_batches_dir(tmp_path):
    written = write_cifar_batches(tmp_path / "cifar10" / cifar.BATCHES_DIR)
    train = load_dataset("cifar10", root=str(tmp_path), download=False)
    assert len(train) == 15 and train.channels == 3 and train.image_size == 32 and train.class_names[0] == "airplane"
    data, labels = written["data_batch_2"]
    # row layout: 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    np.testing.assert_array_equal(train.images[3:6].numpy(), data.reshape(3, 3, 32, 32))
    assert train.labels[3:6].tolist() == labels
    test = load_dataset("cifar10", split="test", root=str(tmp_path), download=False, channels=1)
    assert len(test) == 3 and test.images.shape == (3, 1, 32, 32)


def py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """Hand-assembled opcodes as Python 2's cPickle wrote the official batches: str (bytes)
    keys, numpy.core.multiarray._reconstruct + dtype('u1', 0, 1) + raw data as a str."""
    def s(text: bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING or BINSTRING
        return b"U" + bytes([len(text)]) + text if len(text) < 256 else b"T" + struct.pack("<I", len(text)) + text

    out = b"\x80\x02}(" + s(b"labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    out += s(b"data") + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R("
    out += b"K\x01M" + struct.pack("<H", data.shape[0]) + b"M" + struct.pack("<H", 3072) + b"\x86"
    out += b"cnumpy\ndtype\n" + s(b"u1") + b"\x89\x88\x87R(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    return out + b"\x89" + s(data.tobytes()) + b"tbu."


def test_cifar_python2_pickle(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (2, 3072), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_batch(data, [3, 7]))
    reference = pickle.loads(path.read_bytes(), encoding="bytes")  # numpy agrees it is a valid batch
    np.testing.assert_array_equal(reference[b"data"], data)
    images, labels = cifar.read_batch(path)
    np.testing.assert_array_equal(images.reshape(2, 3072), data)
    assert labels.tolist() == [3, 7] and labels.dtype == np.int64


def make_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def test_cifar_archive(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_cifar_batches(src, n=2)
    archive = tmp_path / "root" / cifar.ARCHIVE
    archive.parent.mkdir()
    make_tar(archive, {f"{cifar.BATCHES_DIR}/{p.name}": p.read_bytes() for p in sorted(src.iterdir())})
    # our fixture is not the canonical archive: its md5 is checked like any canonical name
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("cifar10", root=str(tmp_path / "root"), download=False)
    monkeypatch.setitem(download.SOURCES["cifar10"].md5, cifar.ARCHIVE, download.md5sum(archive))
    ds = load_dataset("cifar10", split="test", root=str(tmp_path / "root"), download=False)
    assert len(ds) == 2 and (tmp_path / "root" / cifar.BATCHES_DIR / "test_batch").is_file()


@pytest.mark.parametrize("evil_name", ["../escaped", "/tmp/genvision-abs-escape", "cifar-10-batches-py/../../x"])
def test_cifar_archive_unsafe_member(tmp_path, evil_name):
    archive = tmp_path / "a" / cifar.ARCHIVE
    archive.parent.mkdir()
    make_tar(archive, {f"{cifar.BATCHES_DIR}/test_batch": b"x", evil_name: b"pwned"})
    with pytest.raises(DataError, match="unsafe path"):
        cifar.extract_archive(archive, archive.parent)
    assert not (tmp_path / "escaped").exists() and not (archive.parent / cifar.BATCHES_DIR).exists()


class WritesFile:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class OpensFile:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("payload", [WritesFile, OpensFile])
def test_malicious_pickle_is_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    batches = tmp_path / cifar.BATCHES_DIR
    batches.mkdir()
    # alone, and hidden inside an otherwise valid batch
    evil = {b"labels": [1], b"data": np.zeros((1, 3072), np.uint8), b"filenames": [payload(marker)]}
    for obj in (payload(marker), evil):
        (batches / "test_batch").write_bytes(pickle.dumps(obj, protocol=2))
        with pytest.raises(DataError, match="refusing to load global") as exc:
            cifar.read_batch(batches / "test_batch")
        assert "test_batch" in one_line(exc)
        assert not marker.exists()
    # sanity: plain pickle.load would really have run it
    if payload is WritesFile:
        pickle.loads(pickle.dumps(payload(marker)))
        assert marker.exists()


@pytest.mark.parametrize("batch, needle", [
    ([1, 2, 3], "top level is list"),
    ({b"labels": [1]}, "needs 'data' and 'labels'"),
    ({b"labels": [1], b"data": np.zeros((1, 3072), np.float32)}, "not a uint8 array"),
    ({b"labels": [1], b"data": np.zeros((1, 100), np.uint8)}, r"must be \(N, 3072\)"),
    ({b"labels": [1, 2], b"data": np.zeros((1, 3072), np.uint8)}, "list of 1 ints"),
    ({b"labels": [11], b"data": np.zeros((1, 3072), np.uint8)}, "in 0..9"),
])
def test_cifar_batch_validation(tmp_path, batch, needle):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=needle):
        cifar.read_batch(path)


# --- folders of images -----------------------------------------------------------------------

def save_png(path: Path, size=(20, 12), color=(200, 30, 30)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def class_folder(tmp_path) -> Path:
    root = tmp_path / "pets"
    for i in range(5):
        save_png(root / "dog" / f"d{i}.png", color=(10 * i, 100, 100))
    for i in range(4):
        save_png(root / "cat" / "nested" / f"c{i}.png", size=(12, 20))
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("ignored")
    (root / "dog" / ".hidden.png").write_bytes(b"ignored too")
    return root


def test_folder_class_subfolders(class_folder):
    ds = load_dataset(f"folder:{class_folder}")
    assert isinstance(ds, FolderImageDataset)
    assert ds.class_names == ["cat", "dog"] and ds.num_classes == 2 and len(ds) == 9
    assert ds.labels.tolist() == [0] * 4 + [1] * 5  # sorted, deterministic
    assert ds.skipped == [] and ds.image_size == 64 and ds.channels == 3
    x, y = ds[5]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.int64 and int(y) == 1
    assert -1 <= x.min() and x.max() <= 1
    small = load_dataset(f"folder:{class_folder}", image_size=16, channels=1, limit=3)
    assert len(small) == 3 and small[0][0].shape == (1, 16, 16)


def test_folder_corrupt_images_skipped_and_named(class_folder):
    (class_folder / "dog" / "broken.png").write_bytes(os.urandom(200))
    with pytest.warns(UserWarning, match="broken.png"):
        ds = FolderImageDataset(class_folder)
    assert len(ds) == 9 and [Path(p).name for p, _ in ds.skipped] == ["broken.png"]
    assert "broken.png" in ds.skipped[0][1]


def test_folder_too_many_corrupt_aborts(tmp_path):
    for i in range(3):
        save_png(tmp_path / f"ok{i}.png")
    for i in range(2):
        (tmp_path / f"bad{i}.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match="2 of 5 images are unreadable") as exc:
        FolderImageDataset(tmp_path)
    assert "bad0.jpg" in one_line(exc)
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):  # a looser threshold accepts it
        assert len(FolderImageDataset(tmp_path, max_bad_fraction=0.5)) == 3


def test_folder_unlabelled_and_splits(tmp_path):
    save_png(tmp_path / "flat" / "a.png")
    save_png(tmp_path / "flat" / "sub" / "b.png")  # not every image in a sub-folder -> unlabelled
    ds = load_dataset(f"folder:{tmp_path / 'flat'}")
    assert ds.num_classes == 0 and ds.class_names == [] and [int(ds[i][1]) for i in range(2)] == [-1, -1]
    with pytest.raises(DataError, match="no 'test' split"):
        load_dataset(f"folder:{tmp_path / 'flat'}", split="test")
    save_png(tmp_path / "split" / "train" / "x" / "a.png")
    save_png(tmp_path / "split" / "train" / "y" / "b.png")
    save_png(tmp_path / "split" / "test" / "y" / "c.png")
    assert len(load_dataset(f"folder:{tmp_path / 'split'}")) == 2
    test = load_dataset(f"folder:{tmp_path / 'split'}", split="test")
    assert len(test) == 1 and test.class_names == ["y"]


def test_folder_empty_or_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(DataError, match="no image files"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")


def test_folder_augmentation_deterministic(class_folder):
    ds = load_dataset(f"folder:{class_folder}", image_size=16, train_augment=True, random_crop=True, hflip=True)
    torch.manual_seed(3)
    a = torch.stack([ds[i][0] for i in range(len(ds))])
    torch.manual_seed(3)
    b = torch.stack([ds[i][0] for i in range(len(ds))])
    assert torch.equal(a, b) and a.shape == (9, 3, 16, 16)


# --- mnist-mini and the in-memory fast path --------------------------------------------------

def test_mnist_mini():
    train = load_dataset("mnist-mini")
    test = load_dataset("mnist-mini", split="test")
    assert (len(train), len(test)) == (5000, 1000)
    assert train.num_classes == 10 and train.channels == 1 and train.image_size == 28
    assert torch.bincount(train.labels).tolist() == [500] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10
    x, _ = train.get_batch(torch.arange(len(train)))
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1


def test_mnist_mini_matches_canonical_selection(shared_mnist):
    labels = read_idx(shared_mnist / "mnist" / "t10k-labels-idx1-ubyte.gz")
    images = read_idx(shared_mnist / "mnist" / "t10k-images-idx3-ubyte.gz")
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:100] for c in range(10)]))
    mini = load_dataset("mnist-mini", split="test")
    np.testing.assert_array_equal(mini.images[:, 0].numpy(), images[keep])


def test_get_batch_equals_getitem_resized_rgb():
    ds = load_dataset("mnist-mini", image_size=32, channels=3, limit=40)
    assert len(ds) == 40 and ds.images.shape == (40, 3, 32, 32) and ds.images.dtype == torch.uint8
    idx = torch.tensor([5, 0, 39, 7])
    xb, yb = ds.get_batch(idx)
    items = [ds[int(i)] for i in idx]
    assert torch.equal(xb, torch.stack([x for x, _ in items]))
    assert torch.equal(yb, torch.stack([y for _, y in items])) and yb.dtype == torch.int64
    assert xb.shape == (4, 3, 32, 32) and torch.equal(xb[:, 0], xb[:, 2])  # grey repeated


def test_luminance_conversion():
    rgb = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    ds = TensorImageDataset(rgb, None, name="t", split="train", channels=1)
    expected = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).round().to(torch.uint8)
    assert torch.equal(ds.images[:, 0], expected) and ds.num_classes == 0 and int(ds[0][1]) == -1


def test_augmentation_determinism_and_content():
    plain = load_dataset("mnist-mini", image_size=32, limit=64)
    aug = load_dataset("mnist-mini", image_size=32, limit=64, train_augment=True, random_crop=True, hflip=True)
    idx = torch.arange(64)
    torch.manual_seed(0)
    a, _ = aug.get_batch(idx)
    torch.manual_seed(0)
    b, _ = aug.get_batch(idx)
    c, _ = aug.get_batch(idx)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (64, 1, 32, 32)
    assert not torch.equal(a, plain.get_batch(idx)[0])
    # every augmented sample is a (possibly mirrored) 32x32 window of the reflect-padded original
    x = torch.nn.functional.pad(plain.get_batch(idx)[0], (4, 4, 4, 4), mode="reflect")
    for i in range(8):
        windows = [x[i, :, r:r + 32, s:s + 32] for r in range(9) for s in range(9)]
        assert any(torch.equal(a[i], w) or torch.equal(a[i], w.flip(-1)) for w in windows)
    # augmentation flags do nothing without train_augment
    off = load_dataset("mnist-mini", image_size=32, limit=64, random_crop=True, hflip=True)
    assert torch.equal(off.get_batch(idx)[0], plain.get_batch(idx)[0])


def test_hflip_only_flips_whole_samples():
    plain = load_dataset("mnist-mini", limit=32)
    aug = load_dataset("mnist-mini", limit=32, train_augment=True, hflip=True)
    torch.manual_seed(1)
    a, _ = aug.get_batch(torch.arange(32))
    p, _ = plain.get_batch(torch.arange(32))
    flipped = [not torch.equal(a[i], p[i]) for i in range(32)]
    assert 0 < sum(flipped) < 32
    assert all(torch.equal(a[i], p[i].flip(-1)) for i in range(32) if flipped[i])


# --- registry ------------------------------------------------------------------------------

def test_list_datasets():
    infos = list_datasets()
    assert all(isinstance(i, DatasetInfo) for i in infos)
    assert [i.name for i in infos] == ["mnist", "fashion-mnist", "cifar10", "mnist-mini", "sklearn-digits",
                                           "folder:PATH"]
    mini = next(i for i in infos if i.name == "mnist-mini")
    assert mini.source == "embedded" and mini.num_classes == 10 and mini.splits == ("train", "test")


def test_bad_names_and_arguments():
    with pytest.raises(DataError, match="did you mean 'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(DataError, match="unknown split 'val'"):
        load_dataset("mnist-mini", split="val")
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        load_dataset("mnist-mini", channels=2)
    with pytest.raises(DataError, match="limit must be a positive integer"):
        load_dataset("mnist-mini", limit=0)
    assert load_dataset("MNIST_mini", limit=2).name == "mnist-mini"


def test_dataset_from_config():
    cfg = DataConfig(name="mnist-mini", image_size=32, channels=3, random_crop=True, hflip=True, limit=16)
    train, test = dataset_from_config(cfg), dataset_from_config(cfg, split="test")
    assert train.augmenting and not test.augmenting
    assert (len(train), len(test), train.channels, test.image_size) == (16, 16, 3, 32)
