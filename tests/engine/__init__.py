"""Tests of the inference engine."""
