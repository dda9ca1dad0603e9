"""Running models on a device: Edge TPUs, backends, executors, their pool and statistics."""
