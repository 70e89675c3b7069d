"""vocalcast: a voice-message broadcast engine on Asterisk."""

__version__ = "0.1.0"
