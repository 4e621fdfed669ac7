"""Pictures of training state as uint8 image tensors: the critic map (drawn with matplotlib) and sample grids."""
