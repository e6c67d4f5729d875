"""Errors that reach users. Each message names the file (or key) at fault and the fix."""

from __future__ import annotations


class VideoMambaError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class CheckpointError(VideoMambaError):
    """A checkpoint that is missing, corrupt, or does not fit the model."""


class VideoDecodeError(VideoMambaError):
    """A video that is missing, corrupt, truncated or has no frames."""


class AnnotationError(VideoMambaError):
    """An annotation file (CSV/JSON/folder tree) that cannot be read; names the file and line."""


class ConfigError(VideoMambaError):
    """A recipe or command-line override that does not make sense."""


class BackendUnavailableError(VideoMambaError):
    """A requested compute or decoding backend is not installed or cannot run here."""
