"""Training of JanusVLN navigators in the built-in world: data, geometry pretraining, imitation
learning with DAgger, and evaluation (layer above ``sim/`` and ``core/``; below ``cli/``)."""
