"""Asterisk adapters: the ARI client, the Stasis application, trunks."""
