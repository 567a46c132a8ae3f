"""Downloading and resizing post images."""
