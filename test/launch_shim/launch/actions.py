"""Stand-in for ``launch.actions``: DeclareLaunchArgument and OpaqueFunction."""


class DeclareLaunchArgument:
    """A launch argument with an optional default."""

    def __init__(self, name, *, default_value=None, description='', choices=None):
        self.name = name
        self.default_value = default_value
        self.description = description
        self.choices = choices


class OpaqueFunction:
    """Calls ``function(context, *args, **kwargs)``, which returns more entities."""

    def __init__(self, *, function, args=None, kwargs=None):
        self.function = function
        self.args = list(args or [])
        self.kwargs = dict(kwargs or {})

    def execute(self, context):
        return list(self.function(context, *self.args, **self.kwargs) or [])
