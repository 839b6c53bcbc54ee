"""The built-in MuJoCo world: houses, episodes, VLN metrics and the ROS 2 bridge."""
