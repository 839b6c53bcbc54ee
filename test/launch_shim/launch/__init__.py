"""Test-only stand-in for ROS 2 ``launch`` (the subset the project's launch files use)."""

SHIM = True


class LaunchContext:
    """Holds the resolved launch configurations (argument values)."""

    def __init__(self, launch_configurations=None):
        self.launch_configurations = dict(launch_configurations or {})


class LaunchDescription:
    """An ordered list of launch entities."""

    def __init__(self, initial_entities=None):
        self.entities = list(initial_entities or [])

    def add_action(self, action):
        self.entities.append(action)


from . import actions, substitutions  # noqa: E402,F401,I100,I202
