"""Renderers: the standard dump and the findings reports."""
