"""Bytes or a URL in, an upright RGB image out, or a typed error: no HTTP framework, no model.

``images`` decodes (size limits, EXIF orientation, JPEG draft scale, HEIF), ``sniff`` says what a
file really is from its first bytes, and ``fetch`` downloads an image URL without ever reaching a
private address. Imports only the package's settings and exceptions.
"""
