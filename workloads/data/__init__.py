"""Data files shipped with llmsim's workloads (a package so that setuptools ships them)."""
