"""The version of casematch, recorded in every index manifest."""

__version__ = "0.1.0"
