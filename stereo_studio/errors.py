"""Errors that carry a message meant for the user (CLI prints it as one line, the GUI shows it)."""


class StereoStudioError(Exception):
    """Base class: bad input, missing file, mismatched checkpoint... The message is shown as is."""


class DataError(StereoStudioError):
    """A dataset, image or disparity file is missing, unreadable or malformed."""


class ModelError(StereoStudioError):
    """Unknown model name, corrupt or mismatched weights, an architecture that cannot do what was asked."""


class SourceError(StereoStudioError):
    """A camera or video source could not be opened or failed mid-stream."""

