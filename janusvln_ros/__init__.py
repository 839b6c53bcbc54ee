"""janusvln_ros: JanusVLN vision-and-language navigation as a real-time ROS 2 node.

Layers (each imports only from the ones below it):
    model/  the network, its caches, checkpoint IO, preprocessing, prompt (no rclpy)
    core/   the engine, episode memory policy, worker, motion, configs, errors (no rclpy)
    ros/    the thin ROS 2 adapter (node, parameters, message conversions)
    sim/    the MuJoCo world, episodes, metrics, the simulator bridge node
    cli.py  the ``janusvln`` command
"""

__version__ = '0.1.0'
