"""Training of navigators in the built-in world.

Data, geometry pretraining, imitation learning with DAgger, and evaluation (the layer above
``sim/`` and ``core/``, below ``cli/``).
"""
