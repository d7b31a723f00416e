"""Plots and HTML pages for rmteach reports: small generic helpers shared by every command."""
