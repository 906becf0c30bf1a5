"""The I3D classification network."""
