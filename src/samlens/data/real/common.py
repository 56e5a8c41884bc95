"""Shared pieces of the file-backed loaders: existence checks, image decoding, photo transforms."""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from samlens._optional import require

with require("data"):
    from PIL import Image, UnidentifiedImageError

from samlens.errors import ConfigError, DatasetFormatError

if TYPE_CHECKING:
    import pandas as pd
    from torchvision import transforms as T

# torchvision's IMG_EXTENSIONS: the files an ImageFolder lists (compared in lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def require_dir(path: str | Path | None, expected: str) -> Path:
    if path is None:
        raise DatasetFormatError(f"no root given; expected a folder with {expected} (pass root / --root)")
    path = Path(path)
    if not path.is_dir():
        raise DatasetFormatError(f"{path}: directory not found; expected {expected}")
    return path


def require_file(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found; expected {expected}")
    return path


def first_existing(candidates: Sequence[Path], expected: str) -> Path:
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetFormatError(f"{candidates[0]}: file not found; expected {expected}")


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as RGB; a file that does not decode raises ``DatasetFormatError`` naming it."""
    try:
        with warnings.catch_warnings():
            # A header claiming ~10^8 pixels is a damaged file here, not a photo to allocate for.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.convert("RGB")
    except FileNotFoundError:
        raise DatasetFormatError(f"{path}: image file not found") from None
    except (
        UnidentifiedImageError, OSError, SyntaxError, ValueError,
        Image.DecompressionBombError, Image.DecompressionBombWarning,
    ) as err:  # fmt: skip
        raise DatasetFormatError(
            f"{path}: cannot decode image ({type(err).__name__}); expected JPEG/PNG"
        ) from None


def _kind(entry: os.DirEntry) -> str:
    """ "dir" or "file" (links followed), else "other": a broken link, a link loop, a pipe, a device."""
    try:
        return "dir" if entry.is_dir() else "file" if entry.is_file() else "other"
    except OSError:  # a link loop raises ELOOP from stat instead of reading as "not a folder"
        return "other"


def _check_name(folder: Path, name: str) -> None:
    # A control character, a line separator or bytes that are not UTF-8 (read as lone surrogates)
    # would split or break every message, class list and report that names the entry.
    if name.isprintable() or all(unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp") for c in name):
        return
    raise DatasetFormatError(
        f"{folder}: name {name!r} holds a control character or bytes that are not UTF-8; rename it"
    )


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as err:
        raise DatasetFormatError(f"{folder}: cannot list folder ({err.strerror})") from None


def scan_image_folder(path: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, [(file, class index)])`` of ``path/<class>/**/<image>``, in torchvision's ImageFolder
    order (classes sorted; a class's folders in path order, files sorted; links followed; files without
    an image suffix, such as ``.DS_Store``, skipped), so DomainBed's index-based splits are reproduced.

    Unlike ImageFolder, the structure is checked here, once: a folder reached twice (a link loop, or
    one class linked into another) would list its images many times or under a wrong class; an image
    name that is not a regular file (a broken link, a pipe) would fail or block on access; names must
    be printable. An empty class folder is allowed (DomainBed has domains with a class missing).
    """
    classes = []
    for entry in _entries(path):
        if _kind(entry) == "dir":
            _check_name(path, entry.name)
            classes.append(entry.name)
    if not classes:
        raise DatasetFormatError(f"{path}: no class folders; expected one folder per class holding images")
    st = path.stat()
    seen: dict[tuple[int, int], Path] = {(st.st_dev, st.st_ino): path}
    samples: list[tuple[str, int]] = []
    for index, name in enumerate(classes):
        listing: list[tuple[str, list[str]]] = []
        stack = [path / name]
        while stack:
            folder = stack.pop()
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                raise DatasetFormatError(
                    f"{folder}: folder reached twice, also as {seen[st.st_dev, st.st_ino]} (a symlink loop "
                    "or a second link); each image must be listed once"
                )
            seen[st.st_dev, st.st_ino] = folder
            files = []
            for entry in _entries(folder):
                kind = _kind(entry)
                if kind == "dir":
                    _check_name(folder, entry.name)
                    stack.append(folder / entry.name)
                elif entry.name.lower().endswith(IMAGE_SUFFIXES):
                    _check_name(folder, entry.name)
                    if kind != "file":
                        raise DatasetFormatError(
                            f"{folder / entry.name}: not a regular file (a broken link or a pipe); "
                            "expected an image"
                        )
                    files.append(entry.name)
            listing.append((str(folder), files))
        for folder, files in sorted(listing, key=lambda item: item[0]):
            samples += [(os.path.join(folder, f), index) for f in files]
    return classes, samples


def check_files_exist(folder: Path, names: Sequence[str], listed_in: Path) -> None:
    """Fail on the first listed image that is missing (stat only; decoding happens on access)."""
    for name in names:
        if not (folder / name).is_file():
            raise DatasetFormatError(f"{folder / name}: image file not found (listed in {listed_in})")


def read_csv(path: Path, columns: Sequence[str], **kwargs) -> pd.DataFrame:
    """Read a CSV and check it has ``columns``; errors name the file and the expected columns."""
    with require("data"):
        import pandas as pd

    try:
        table = pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetFormatError(
            f"{path}: cannot parse CSV ({type(err).__name__}); expected columns {', '.join(columns)}"
        ) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DatasetFormatError(
            f"{path}: missing column(s) {', '.join(missing)}; expected columns {', '.join(columns)}"
        )
    return table


def str_column(table: pd.DataFrame, column: str, path: Path) -> list[str]:
    """A column of file names or ids: every value present and non-empty, else a one-line error
    naming the file and the CSV line (pandas reads an empty field as NaN, not as "")."""
    values = table[column].tolist()
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            if isinstance(value, (int, float)) and value == value:  # a number, e.g. an integer id
                continue
            raise DatasetFormatError(f"{path}: column {column} is empty on data row {i + 1}")
    return [str(v) for v in values]


def check_unique(path: Path, names: Sequence[str]) -> None:
    """Each image listed once: a repeated id would silently weight one image twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DatasetFormatError(f"{path}: image {name} is listed twice")
        seen.add(name)


def read_text(path: Path) -> str:
    """A UTF-8 text file; bytes that do not decode are a one-line DatasetFormatError naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetFormatError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def int_column(table: pd.DataFrame, column: str, allowed: Sequence[int], path: Path) -> np.ndarray:
    """An integer column whose values must lie in ``allowed``; otherwise a one-line error."""
    with require("data"):
        import pandas as pd

    values = pd.to_numeric(table[column], errors="coerce")
    bad = ~values.isin(list(allowed))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetFormatError(
            f"{path}: column {column!r} has value {str(table[column].iloc[row])!r} in data row {row + 1}; "
            f"expected one of {sorted(allowed)}"
        )
    return values.to_numpy().astype(np.int64)


def photo_transforms(image_size: int, crop: str, augment: str) -> tuple[T.Compose, T.Compose]:
    """(train, eval) transforms on PIL images, ending in ImageNet normalisation.

    crop="resize-center": Resize(size*256/224) + CenterCrop(size) (group-DRO Waterbirds);
    crop="center178": CenterCrop(178) + Resize(size) (CelebA); crop="resize": Resize((size, size))
    (DomainBed). augment="rrc" adds RandomResizedCrop(0.7-1) + flip; "domainbed" also colour jitter
    and random grayscale, as DomainBed's training-domain augmentation.
    """
    with require("data"):
        from torchvision import transforms as T

    normalize = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if crop == "resize-center":
        resize = int(round(image_size * 256 / 224))
        eval_steps = [T.Resize((resize, resize)), T.CenterCrop(image_size)]
        pre = []
    elif crop == "center178":
        eval_steps = [T.CenterCrop(178), T.Resize(image_size)]
        pre = [T.CenterCrop(178)]
    else:
        eval_steps = [T.Resize((image_size, image_size))]
        pre = []
    train_steps = pre + [T.RandomResizedCrop(image_size, scale=(0.7, 1.0)), T.RandomHorizontalFlip()]
    if augment == "domainbed":
        train_steps += [T.ColorJitter(0.3, 0.3, 0.3, 0.3), T.RandomGrayscale()]
    return T.Compose(train_steps + normalize), T.Compose(eval_steps + normalize)


class FileImages:
    """``i -> decoded image`` for a list of files (decoded on access, as the datasets are large)."""

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self.folder = folder
        self.names = list(names)

    def __call__(self, index: int) -> Image.Image:
        return load_rgb(self.folder / self.names[index])


def split_halves(groups: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of an index set, stratified by group (for probe_train / probe_test)."""
    first, second = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for g in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == g))
        first.append(idx[: len(idx) // 2])
        second.append(idx[len(idx) // 2 :])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def check_image_size(image_size: int) -> int:
    return check_int("image_size", image_size, 8, 1024)


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """An integer option in ``low..high`` (YAML gives ints; strings, floats and booleans are refused)."""
    bounds = f"in {low}..{high}" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer {bounds}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def check_open_fraction(name: str, value: object) -> float:
    """A number strictly between 0 and 1 (a held-out fraction that must leave both parts non-empty)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value < 1:
        raise ConfigError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def require_rows(path: Path, codes: np.ndarray, column: str) -> None:
    """Rows for train (code 0) and val (code 1) must exist: training needs the one, and the probe
    splits are the two halves of the other. An empty test split is allowed (it is skipped)."""
    if len(codes) == 0:
        raise DatasetFormatError(f"{path}: no data rows; expected one row per image")
    for split, code in (("train", 0), ("val", 1)):
        if not np.any(codes == code):
            raise DatasetFormatError(
                f"{path}: no rows with {column} {code} ({split}); expected rows for train (0) and val (1), "
                "whose halves are the probe splits"
            )
