"""Pictures of training state, rendered as image tensors without a plotting library."""
