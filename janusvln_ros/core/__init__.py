"""The engine layer: episode state, dual memory policy, worker, motion, configs (no rclpy)."""
