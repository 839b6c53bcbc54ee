"""The thin ROS 2 adapter around the engine."""
