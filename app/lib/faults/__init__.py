"""Faults (the nemesis): what breaks a server during a run, and how it is put back."""
