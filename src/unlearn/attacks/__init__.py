"""Attacks that try to bring forgotten knowledge back (one file each)."""
