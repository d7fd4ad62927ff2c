"""Data: manifests, frame stores, samplers, augmentation and the synthetic world."""
