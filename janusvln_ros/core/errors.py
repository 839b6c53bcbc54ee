"""Error hierarchy of janusvln_ros; messages say what was expected and what was got."""


class JanusVLNError(Exception):
    """Base class of every error raised on purpose by janusvln_ros."""


class ConfigError(JanusVLNError, ValueError):
    """A configuration value is invalid (names the field and the bad value)."""


class ModelLoadError(JanusVLNError):
    """A checkpoint or model could not be loaded (missing shard, bad key, wrong type...)."""


class InferenceError(JanusVLNError):
    """A step of the engine failed."""


class InputError(JanusVLNError, ValueError):
    """An input (image, instruction) was rejected; nothing was changed."""
