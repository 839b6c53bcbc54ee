"""Stand-in for ``launch_ros.actions.Node``: records what the runner turns into a command."""


class Node:
    def __init__(self, *, executable, package=None, name=None, namespace=None, parameters=None,
                 remappings=None, arguments=None, ros_arguments=None, output='log', **kwargs):
        self.package = package
        self.executable = executable
        self.name = name
        self.namespace = namespace
        self.parameters = list(parameters or [])
        self.remappings = list(remappings or [])
        self.arguments = list(arguments or [])
        self.ros_arguments = list(ros_arguments or [])
        self.output = output
        if kwargs:
            raise NotImplementedError(f'launch shim: Node arguments {sorted(kwargs)} unsupported')
