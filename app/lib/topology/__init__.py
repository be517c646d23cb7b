"""Topology: what a stack is made of (the compose files read as services) and a cluster's slot map."""
