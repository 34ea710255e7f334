"""Models: SimpleMLP, PhysicsInformedCore, monotone head, deep ensembles, numpy forward pass."""
