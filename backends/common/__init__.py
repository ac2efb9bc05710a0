"""Shared by every backend: ImageNet preprocessing, the sample library, the LoadGen driver."""
