"""Errors raised by `jaxaug.data`.

Every error derives from `DataError` (a `ValueError`), and every message names the offending path,
file, split or dataset name so that it can be fixed without a debugger.
"""


class DataError(ValueError):
    """Base class of all data-loading errors."""


class UnknownDatasetError(DataError):
    """The name is not `synthetic`, `tfds:<name>` or `imagefolder:<path>`, or tfds lacks it."""


class DatasetPathError(DataError):
    """A dataset path does not exist or is neither a directory nor a readable .zip file."""


class CorruptImageError(DataError):
    """An image file (or zip member) cannot be decoded."""


class EmptyClassError(DataError):
    """A class folder holds no image files."""


class SplitNotFoundError(DataError):
    """A required split is missing; the message lists the available ones."""


class ImageSizeMismatchError(DataError):
    """Images of one dataset differ in size and no `image_size` was given to resize them."""


class CorruptCacheError(DataError):
    """A cache file is truncated or does not match its stored checksums; delete it to rebuild."""
