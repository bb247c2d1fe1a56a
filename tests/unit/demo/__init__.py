"""Tests of the demo data: bulletin, reference set, generated month, expected rows, replay."""
