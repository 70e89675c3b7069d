"""The recording IVR: a FastAGI server and its conversation. It saves messages through engine.library
(the same path as uploads) and keeps its lockout in the engine's store."""
