"""Vendored legal tables, as Python literals (no file is read at run time); each module cites its sources."""
