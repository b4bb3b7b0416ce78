"""The release number (its own module: the lowest layers read it without importing the factory)."""
__version__ = "0.1.0"
