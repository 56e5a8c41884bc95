"""Writers for miniature, format-exact copies of the paper's datasets (used by the loader tests).

Written independently of samlens' readers, following each dataset's published layout.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST IDX: magic 0x00000803/0x00000801 (uint8, ndim), big-endian int32 dims, raw bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def mnist_digit(d: int, i: int) -> np.ndarray:
    """A 28x28 image whose centre holds the value 20*d + 10 (so the digit can be read back)."""
    image = np.zeros((28, 28), np.uint8)
    image[8:20, 8:20] = 20 * d + 10
    image[0, 0] = i % 256  # makes images distinct
    return image


def write_mnist(folder: Path, per_digit: dict[str, int], gz: bool = True) -> None:
    for split, prefix in (("train", "train"), ("test", "t10k")):
        digits = np.repeat(np.arange(10), per_digit[split])
        images = np.stack([mnist_digit(int(d), i) for i, d in enumerate(digits)])
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", digits)


def cifar_image(c: int) -> np.ndarray:
    """A 3x32x32 image (CIFAR's row layout: 1024 R, 1024 G, 1024 B) filled with 20*c + 5 + channel."""
    return np.concatenate([np.full(1024, 20 * c + 5 + ch, np.uint8) for ch in range(3)])


def write_cifar(root: Path, per_class: dict[str, dict[int, int]]) -> None:
    """cifar-10-batches-py/: data_batch_1..5 and test_batch, pickled dicts as in the original."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train = [c for c, n in per_class["train"].items() for _ in range(n)]
    test = [c for c, n in per_class["test"].items() for _ in range(n)]
    batches = {f"data_batch_{i + 1}": train[i::5] for i in range(5)}
    batches["test_batch"] = test
    for name, labels in batches.items():
        entry = {
            "batch_label": name,
            "labels": labels,
            "data": np.stack([cifar_image(c) for c in labels]) if labels else np.zeros((0, 3072), np.uint8),
            "filenames": [f"img_{i}.png" for i in range(len(labels))],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane"] * 10, "num_cases_per_batch": 10000}, f, protocol=2)


def tiny_image(path: Path, value: int, size: tuple[int, int] = (12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, 64)).save(path)


# Waterbirds: (y, place, split) counts for a miniature metadata.csv.
WATERBIRDS_COUNTS = {
    (0, 0, 0): 7, (0, 1, 0): 2, (1, 0, 0): 1, (1, 1, 0): 4,
    (0, 0, 1): 2, (0, 1, 1): 2, (1, 0, 1): 2, (1, 1, 1): 2,
    (0, 0, 2): 3, (0, 1, 2): 3, (1, 0, 2): 1, (1, 1, 2): 1,
}  # fmt: skip


def write_waterbirds(root: Path) -> dict[tuple[int, int, int], int]:
    rows = ["img_id,img_filename,y,split,place,place_filename"]
    i = 0
    for (y, place, split), n in WATERBIRDS_COUNTS.items():
        for _ in range(n):
            i += 1
            species = "001.Black_footed_Albatross" if y else "002.Laysan_Albatross"
            name = f"{species}/bird_{i:04d}.jpg"
            tiny_image(root / name, 40 * y + 10 * place)
            rows.append(f"{i},{name},{y},{split},{place},/l/lake/natural/{i:08d}.jpg")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return WATERBIRDS_COUNTS


CELEBA_ATTRIBUTES = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Blond_Hair", "Male", "Young"]
# (blond, male, partition) counts
CELEBA_COUNTS = {
    (0, 0, 0): 4, (0, 1, 0): 3, (1, 0, 0): 2, (1, 1, 0): 1,
    (0, 0, 1): 2, (0, 1, 1): 2, (1, 0, 1): 2, (1, 1, 1): 2,
    (0, 0, 2): 1, (0, 1, 2): 2, (1, 0, 2): 1, (1, 1, 2): 1,
}  # fmt: skip


def celeba_rows() -> list[tuple[str, list[int], int]]:
    rows, i = [], 0
    for (blond, male, part), n in CELEBA_COUNTS.items():
        for _ in range(n):
            i += 1
            values = [1 if (i % 3 == 0) else -1, -1, 1 if blond else -1, 1 if male else -1, 1]
            rows.append((f"{i:06d}.jpg", values, part))
    return rows


def write_celeba(root: Path, csv: bool = False) -> None:
    rows = celeba_rows()
    for name, _, _ in rows:
        tiny_image(root / "img_align_celeba" / name, 100, size=(178, 218))
    if csv:
        lines = ["image_id," + ",".join(CELEBA_ATTRIBUTES)]
        lines += [f"{n}," + ",".join(str(v) for v in vals) for n, vals, _ in rows]
        (root / "list_attr_celeba.csv").write_text("\n".join(lines) + "\n")
        lines = ["image_id,partition"] + [f"{n},{p}" for n, _, p in rows]
        (root / "list_eval_partition.csv").write_text("\n".join(lines) + "\n")
    else:
        lines = [str(len(rows)), " ".join(CELEBA_ATTRIBUTES) + " "]
        lines += [f"{n} " + " ".join(f"{v:2d}" for v in vals) for n, vals, _ in rows]
        (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        (root / "list_eval_partition.txt").write_text("\n".join(f"{n} {p}" for n, _, p in rows) + "\n")


PACS_DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
PACS_CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")


def write_pacs(root: Path, per_class: dict[str, int]) -> dict[tuple[str, str], int]:
    """PACS/<domain>/<class>/<image>.jpg; returns the number of images per (domain, class)."""
    counts = {}
    for d, domain in enumerate(PACS_DOMAINS):
        for c, cls in enumerate(PACS_CLASSES):
            n = per_class[domain] + (c % 2)
            counts[(domain, cls)] = n
            for i in range(n):
                tiny_image(root / "PACS" / domain / cls / f"pic_{i:03d}.jpg", 30 * d + c)
    return counts
