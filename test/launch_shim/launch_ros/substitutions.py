"""Stand-in for ``launch_ros.substitutions.FindPackageShare``."""

from ament_index_python.packages import get_package_share_directory


class FindPackageShare:
    def __init__(self, package):
        self.package = package

    def perform(self, context):
        from launch.substitutions import perform
        return get_package_share_directory(perform(self.package, context))
