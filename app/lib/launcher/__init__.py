"""Launchers: start, stop, kill and wait for a stack, as local processes or as compose containers; who owns what."""
