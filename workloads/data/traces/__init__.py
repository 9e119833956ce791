"""Shipped request traces (gzipped CSV); load them with ``workloads.trace.load_trace(name)``.

See README.md here for sources, license (CC-BY 4.0) and checksums.
"""
