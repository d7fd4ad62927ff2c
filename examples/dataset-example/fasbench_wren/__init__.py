"""Wren-PAD for fasbench: a made-up face presentation-attack dataset registered as domain W."""
