"""Turning raw inputs (text, images, audio) into model inputs."""
