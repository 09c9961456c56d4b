"""Convert an image folder into an ArrayRecord dataset (format: `jaxaug.data.arrayrecord`).

  python -m jaxaug.data.convert imagefolder:../shared/data/cifar10-jpeg.zip --out=data/cifar10_ar
  python train.py --config=configs/cifar10_wrn.py --config.dataset=arrayrecord:data/cifar10_ar

Every image is decoded once, to check it (a corrupt one is named and nothing is finished) and for
the train split's exact mean and std; the records keep the original encoded bytes. Each shard is
written to a temporary name and renamed when complete, `metadata.json` last. Rerunning after an
interruption removes leftover temporary files, keeps the shards that are complete (their record
count and size match what was recorded when they were written) and writes the rest; an `--out`
holding a conversion of another source, or other settings, is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from absl import app, flags
from array_record.python import array_record_module

from jaxaug.data import arrayrecord
from jaxaug.data.atomic import write_atomic, write_text_atomic
from jaxaug.data.errors import DataError, UnknownDatasetError
from jaxaug.data.imagefolder import ImageFolder, decode_image

DEFAULT_RECORDS_PER_SHARD = 4096
_PROGRESS = ".progress"  # per-shard records of finished shards, removed once metadata.json exists


def _plan(folder: ImageFolder, records_per_shard: int) -> dict:
    splits = {}
    for split, (names, _) in folder.splits.items():
        num_shards = max(1, -(-len(names) // records_per_shard))
        splits[split] = {
            "num_examples": len(names),
            "shards": [arrayrecord.shard_name(split, s, num_shards) for s in range(num_shards)],
        }
    return {
        "format_version": arrayrecord.FORMAT_VERSION,
        "source": folder.identity(None),
        "records_per_shard": records_per_shard,
        "class_names": list(folder.class_names),
        "splits": splits,
    }


def _check_out(out: Path, plan: dict) -> None:
    """Refuse an --out that holds anything but this conversion (finished or not)."""
    if not out.exists() or all(_is_temporary(p) for p in out.iterdir()):
        return
    conversion = out / arrayrecord.CONVERSION
    if not conversion.exists():
        raise DataError(
            f"--out={out} is not empty and holds no {arrayrecord.CONVERSION}: not a conversion "
            "this tool started; pick an empty or new directory"
        )
    held = json.loads(conversion.read_text())
    if held != plan:
        changed = sorted(k for k in plan.keys() | held.keys() if plan.get(k) != held.get(k))
        raise DataError(
            f"--out={out} holds a different conversion (of {held.get('source', {}).get('path')}, "
            f"records_per_shard={held.get('records_per_shard')}; differing: {', '.join(changed)}); "
            "use another --out, or delete it to convert again"
        )


def _is_temporary(path: Path) -> bool:
    """A temporary file of `write_atomic` (`.<name>.<random>.tmp<ext>`), e.g. left by a kill."""
    return path.name.startswith(".") and ".tmp" in path.name and path.is_file()


def _remove_stale_temporaries(out: Path) -> None:
    for directory in (out, out / _PROGRESS):
        if directory.is_dir():
            for path in directory.iterdir():
                if _is_temporary(path):
                    path.unlink()


def _finished_shard(out: Path, name: str, expected: int) -> dict | None:
    """The progress record of a complete shard, or None if it must be (re)written."""
    progress, path = out / _PROGRESS / f"{name}.json", out / name
    if not (progress.exists() and path.exists()):
        return None
    record = json.loads(progress.read_text())
    if record["num_records"] != expected or record["bytes"] != path.stat().st_size:
        return None
    try:
        reader = array_record_module.ArrayRecordReader(str(path), arrayrecord.READER_OPTIONS)
        count = reader.num_records()
        reader.close()
    except RuntimeError:
        return None
    return record if count == expected else None


def _decode_checked(item: tuple[bytes, str]) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """(shape, per-channel sum, per-channel sum of squares) of one encoded image; decoding
    failures name the file."""
    data, location = item
    image = decode_image(data, location, None)
    pixels = image.reshape(-1, image.shape[-1])
    squares = pixels.astype(np.uint32)
    squares *= squares
    return image.shape, pixels.sum(0, dtype=np.uint64), squares.sum(0, dtype=np.uint64)


def _write_shard(out, folder, pool, name, start, names, labels) -> dict:
    """Check-decode and write one shard; returns its progress record (size, shape, sums)."""
    items = [folder.read_encoded(n) for n in names]
    decoded = list(pool.map(_decode_checked, items))  # raises, naming the file, before writing

    def write(tmp):
        writer = array_record_module.ArrayRecordWriter(tmp, arrayrecord.WRITER_OPTIONS)
        for i, (n, (data, _)) in enumerate(zip(names, items, strict=True)):
            writer.write(arrayrecord.encode_record(start + i, int(labels[i]), n, data))
        writer.close()

    write_atomic(out / name, write)
    shapes = {shape for shape, _, _ in decoded}
    record = {
        "num_records": len(names),
        "bytes": (out / name).stat().st_size,
        "image_shape": list(shapes.pop()) if len(shapes) == 1 else None,
        "pixels": sum(shape[0] * shape[1] for shape, _, _ in decoded),
        "sum": [int(v) for v in np.sum([s for _, s, _ in decoded], 0, dtype=np.uint64)],
        "sum_sq": [int(v) for v in np.sum([q for _, _, q in decoded], 0, dtype=np.uint64)],
    }
    write_text_atomic(out / _PROGRESS / f"{name}.json", json.dumps(record))
    return record


def _common_shape(shards: list[dict]) -> list[int] | None:
    """The image shape shared by every shard's images, or None."""
    shapes = {None if r["image_shape"] is None else tuple(r["image_shape"]) for r in shards}
    return list(shapes.pop()) if len(shapes) == 1 and None not in shapes else None


def _mean_std(total: np.ndarray, total_sq: np.ndarray, count: int) -> tuple[list, list]:
    """`dataset.channel_stats`'s arithmetic on the same integer sums, so the values are equal."""
    mean = total / count / 255
    std = np.sqrt(np.maximum(total_sq / count / 255**2 - mean**2, 0))
    return [float(v) for v in mean.astype(np.float32)], [float(v) for v in std.astype(np.float32)]


def convert(
    source: str,
    out: str | os.PathLike,
    records_per_shard: int = DEFAULT_RECORDS_PER_SHARD,
    workers: int | None = None,
    log=print,
) -> dict:
    """Convert `imagefolder:<path>` into an ArrayRecord dataset in `out`; returns its metadata.
    `workers` threads decode (default: all cores)."""
    kind, _, path = source.partition(":")
    if kind != "imagefolder" or not path:
        raise UnknownDatasetError(f"cannot convert {source!r}; expected 'imagefolder:<path>'")
    if records_per_shard < 1:
        raise ValueError(f"records_per_shard must be >= 1, got {records_per_shard}")
    folder = ImageFolder(path)
    out = Path(out).expanduser().resolve()
    plan = _plan(folder, records_per_shard)
    _check_out(out, plan)
    if (out / arrayrecord.METADATA).exists():
        log(f"{out} already holds this conversion")
        shutil.rmtree(out / _PROGRESS, ignore_errors=True)  # if killed right after metadata.json
        return arrayrecord.read_metadata(out)
    _remove_stale_temporaries(out)
    write_text_atomic(out / arrayrecord.CONVERSION, json.dumps(plan, indent=1))  # first
    (out / _PROGRESS).mkdir(exist_ok=True)

    splits_metadata, train_record = {}, None
    with ThreadPoolExecutor(workers or os.cpu_count()) as pool:
        for split, (names, labels) in folder.splits.items():
            shards = []
            for s, name in enumerate(plan["splits"][split]["shards"]):
                start = s * records_per_shard
                chunk = slice(start, start + records_per_shard)
                expected = len(names[chunk])
                record = _finished_shard(out, name, expected)
                if record is None:
                    record = _write_shard(
                        out, folder, pool, name, start, names[chunk], labels[chunk]
                    )
                    log(f"wrote {name} ({expected} records)")
                else:
                    log(f"kept {name} ({expected} records, complete)")
                shards.append(record | {"file": name})
            labels_file = arrayrecord.labels_name(split)
            write_atomic(out / labels_file, lambda tmp, labels=labels: _save_npy(tmp, labels))
            splits_metadata[split] = {
                "num_examples": len(names),
                "shards": [{"file": r["file"], "num_records": r["num_records"]} for r in shards],
                "labels": labels_file,
                "image_shape": _common_shape(shards),
            }
            if split == "train":
                train_record = shards

    count = sum(r["pixels"] for r in train_record)
    total = np.array([sum(r["sum"][c] for r in train_record) for c in range(3)], np.uint64)
    total_sq = np.array([sum(r["sum_sq"][c] for r in train_record) for c in range(3)], np.uint64)
    mean, std = _mean_std(total, total_sq, count)
    metadata = {
        **plan,
        "splits": splits_metadata,
        "train_stats": {"count": count, "sum": total.tolist(), "sum_sq": total_sq.tolist()},
        "mean": mean,
        "std": std,
    }
    write_text_atomic(out / arrayrecord.METADATA, json.dumps(metadata, indent=1))
    shutil.rmtree(out / _PROGRESS)
    return metadata


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append .npy to the temporary name
        np.save(f, array.astype(np.int32))


def _define_flags():
    """Defined when run as a program, not at import, so that importing `convert` cannot clash
    with another module's absl flags (`--out` is a common name)."""
    flags.DEFINE_string("out", None, "Directory to write the ArrayRecord dataset into.")
    flags.DEFINE_integer("records_per_shard", DEFAULT_RECORDS_PER_SHARD, "Records per shard file.")
    flags.DEFINE_integer("workers", None, "Decoding threads (default: all cores).")
    flags.mark_flags_as_required(["out"])


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: python -m jaxaug.data.convert imagefolder:<path> --out=<dir>")
    FLAGS = flags.FLAGS
    start = time.perf_counter()
    metadata = convert(argv[1], FLAGS.out, FLAGS.records_per_shard, FLAGS.workers)
    sizes = ", ".join(f"{s}: {v['num_examples']}" for s, v in metadata["splits"].items())
    print(
        f"Wrote {FLAGS.out} ({sizes}) in {time.perf_counter() - start:.1f} s; "
        f"train mean {metadata['mean']}, std {metadata['std']}"
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
