"""Errors raised for bad input. Each names the file (or key) and the problem."""


class KerasSerError(Exception):
    """Base class of the errors keras_ser raises for bad input or configuration."""


class AudioError(KerasSerError, ValueError):
    """An audio file that cannot be used: unreadable, empty, non-finite or too short."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CorpusError(KerasSerError, ValueError):
    """A corpus folder or manifest that does not fit the expected layout."""


class RecordError(KerasSerError, ValueError):
    """A TFRecord dataset folder that is missing, incomplete or inconsistent."""


class AlignmentError(KerasSerError, ValueError):
    """A word alignment that does not fit its transcript or its audio."""


class ExportError(KerasSerError, ValueError):
    """An export folder that is missing, incomplete, not keras_ser's, or does not load."""


class ConfigError(KerasSerError, ValueError):
    """A configuration with an unknown key, a missing value or a value of the wrong type."""
