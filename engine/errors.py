"""Exceptions that carry a one-line message meant for a person."""


class EngineError(Exception):
    """Base class: the message is safe to show as-is in the CLI and the app."""


class VideoError(EngineError):
    """A clip cannot be read: not a video, truncated, empty or too large."""


class ImageError(EngineError):
    """An image cannot be read or is unsafe to decode."""


class CatalogueError(EngineError):
    """A catalogue folder is missing, empty or malformed."""


class IndexFileError(EngineError):
    """An index is missing, corrupt, or built with another model."""


class IndexUnreachableError(IndexFileError):
    """The index's server (Milvus) cannot be reached: rebuilding would not help."""


class ModelError(EngineError):
    """A model's weights are missing or unusable."""
