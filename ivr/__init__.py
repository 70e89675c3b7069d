"""FastAGI recording IVR: imports engine.domain, engine.store and engine.settings only."""
