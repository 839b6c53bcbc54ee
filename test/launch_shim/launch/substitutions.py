"""Stand-in for ``launch.substitutions``."""

import os


def perform(value, context):
    """Resolve a substitution, a list of them, or a plain value to a string."""
    if isinstance(value, (list, tuple)):
        return ''.join(perform(v, context) for v in value)
    if hasattr(value, 'perform'):
        return value.perform(context)
    return value


class TextSubstitution:
    def __init__(self, *, text):
        self.text = text

    def perform(self, context):
        return self.text


class LaunchConfiguration:
    def __init__(self, variable_name, *, default=None):
        self.variable_name = variable_name
        self.default = default

    def perform(self, context):
        if self.variable_name in context.launch_configurations:
            return context.launch_configurations[self.variable_name]
        if self.default is not None:
            return perform(self.default, context)
        raise KeyError(f'launch configuration {self.variable_name!r} is not set')


class PathJoinSubstitution:
    def __init__(self, substitutions):
        self.substitutions = substitutions

    def perform(self, context):
        return os.path.join(*[perform(s, context) for s in self.substitutions])


class EnvironmentVariable:
    def __init__(self, name, *, default_value=''):
        self.name = name
        self.default_value = default_value

    def perform(self, context):
        return os.environ.get(self.name, perform(self.default_value, context))
