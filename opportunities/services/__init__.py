"""Writes. Every change to an opportunity goes through a function in this package."""
