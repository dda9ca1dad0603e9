"""Frames in, results out: image checks, pre-processing, decoders and annotation."""
