"""The JanusVLN network: Qwen2.5-VL, the VGGT aggregator, the fusion MLP, checkpoints."""
