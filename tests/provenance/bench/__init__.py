"""Tests of the attribution benchmark (provenance.bench)."""
